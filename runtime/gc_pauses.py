"""The garbage collector's pauses, as a histogram per generation: what a latency tail is often made of.

A collection stops the whole process, the event loop with it: every request
in flight waits for it. A full collection walks every object the process
holds (the compiled ruleset, the memory store's series), so its pause grows
with what is held, and it shows up as a decision p99 nothing else explains.
``GcPauses`` times each collection from the interpreter's own callbacks
(``gc.callbacks``) and exposes them as ``tailor_gc_pause_seconds``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from .metrics import LoopHistogram

GENERATIONS = ("0", "1", "2")
# Pauses range from microseconds (a young collection) to a second (a full one of a large heap).
PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses(Collector):
    """Times every collection while installed; a Prometheus collector of the pauses by generation."""

    def __init__(self) -> None:
        self.pauses = {generation: LoopHistogram(PAUSE_BUCKETS) for generation in GENERATIONS}
        self._started = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # Called with the GIL held, around each collection, on whichever thread triggered it.
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[str(info["generation"])].observe(time.perf_counter() - self._started)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "tailor_gc_pause_seconds",
            "Pauses of the garbage collector, by generation (2: a full collection); the whole process waits.",
            labels=("generation",),
        )
        for generation, histogram in self.pauses.items():
            family.add_metric((generation,), histogram.cumulative(), histogram.sum)
        yield family
