"""Each served model's drift over time: a point every ``interval`` seconds, the last day of them kept.

``GET /v1/models`` gives drift as it stands now; a person opening the console
wants to see how it got there. ``DriftRecorder`` reads the models' report
(``ModelMonitor.report``) every ``DEFAULT_DRIFT_INTERVAL`` seconds and keeps a
``DriftPoint`` per model in a ring of ``DEFAULT_DRIFT_KEPT`` points.

The figures are read from the store's counters, which every server process
adds to (with ``--redis``, the fleet's); the history itself is held in this
process's memory: a process started an hour ago has an hour of it. A model's
points are of one version: a new model file starts a new history, as it
starts new counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model_monitor import ModelMonitor
    from .model_report import ModelsReport

log = logging.getLogger("tailor.runtime")

DEFAULT_DRIFT_INTERVAL = 60.0  # seconds between two points of a model's drift history
DEFAULT_DRIFT_KEPT = 24 * 60  # points kept per model: a day at the default interval


@dataclass(frozen=True, slots=True)
class DriftPoint:
    """A model's drift at one moment, as ``GET /v1/models`` said it then."""

    at: str = field(metadata={"doc": "when it was read (UTC, ISO 8601)"})
    version: str = field(metadata={"doc": "the model file's version then"})
    psi: float | None = field(metadata={"doc": "population stability index; null below the minimum of live scores"})
    js: float | None = field(metadata={"doc": "Jensen-Shannon distance (base 2)"})
    scored: int = field(metadata={"doc": "live scores counted for this version so far"})

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "version": self.version, "psi": self.psi, "js": self.js, "scored": self.scored}


@dataclass(frozen=True, slots=True)
class DriftHistory:
    """``GET /v1/models/{name}/drift/history``: a served model's drift points, oldest first."""

    name: str
    version: str = field(metadata={"doc": "the version being served; every point is of it"})
    interval_seconds: float = field(metadata={"doc": "seconds between two points"})
    kept: int = field(metadata={"doc": "points kept at most (older ones are dropped)"})
    next_in_seconds: float = field(metadata={"doc": "seconds until the next point is read"})
    points: tuple[DriftPoint, ...] = field(
        metadata={"doc": "held in this process's memory: since it started or the version changed"}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "interval_seconds": self.interval_seconds,
            "kept": self.kept,
            "next_in_seconds": self.next_in_seconds,
            "points": [point.to_dict() for point in self.points],
        }


class DriftRecorder:
    """Reads the models' report every ``interval`` seconds and keeps each model's last ``kept`` points."""

    def __init__(
        self,
        monitor: ModelMonitor,
        interval: float = DEFAULT_DRIFT_INTERVAL,
        kept: int = DEFAULT_DRIFT_KEPT,
        clock: Callable[[], float] = time.time,
    ):
        if interval <= 0 or kept < 1:
            raise ValueError("the drift history needs an interval above 0 and at least one point kept")
        self.monitor = monitor
        self.interval = interval
        self.kept = kept
        self.clock = clock
        self._points: dict[str, deque[DriftPoint]] = {}
        self._next = clock() + interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def record(self, report: ModelsReport) -> None:
        """A point for each model of ``report``, now; a model's history restarts with a new version."""
        now = self.clock()
        at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        served = set()
        for model in report.models:
            served.add(model.name)
            points = self._points.get(model.name)
            if points is None or (points and points[-1].version != model.version):
                points = self._points[model.name] = deque(maxlen=self.kept)
            points.append(DriftPoint(at, model.version, model.psi, model.js, model.scored))
        for gone in set(self._points) - served:  # models no longer served are not kept
            del self._points[gone]
        self._next = now + self.interval

    def history(self, name: str, version: str) -> DriftHistory:
        """``name``'s points of ``version`` (none when the history holds another version)."""
        points = tuple(point for point in self._points.get(name, ()) if point.version == version)
        wait = max(0.0, self._next - self.clock())
        return DriftHistory(name, version, self.interval, self.kept, round(wait, 3), points)

    async def sample(self) -> None:
        """Read the report and record it; a failing store is logged once and the next interval retries."""
        from .service import NotReady

        try:
            report = await self.monitor.report()
        except NotReady:
            self._next = self.clock() + self.interval
            return
        except Exception as exc:  # history is monitoring: a failed read is a missing point, never fatal
            self._next = self.clock() + self.interval
            if not self._failing:
                self._failing = True
                log.warning("drift history could not read the model counters (%s: %s)", type(exc).__name__, exc)
            return
        self._failing = False
        self.record(report)

    def start(self) -> None:
        self._next = self.clock() + self.interval
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._next - self.clock()))
            with contextlib.suppress(Exception):
                await self.sample()
