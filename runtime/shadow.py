"""Shadow serving: a candidate version decides on live requests beside the served one, and is never served.

The shadow listens to the served decisions' records (``DecisionService.listen``,
after each response is ready) and keeps a sampled share of them. It decides
them later on the event loop, off the response path, a batch at a time: the
candidate replays each record exactly as ``tailor diff`` does, from the values
the live decision fetched, so it never asks the store for anything. A feature
only the candidate needs is "not replayable", as in ``tailor diff``, and the
running diff (``GET /v1/shadow``) has ``tailor diff --format json``'s shape:
the old side is what was served, the new side the candidate.

The candidate is a ``DecisionService`` of its own that nothing asks to
decide: hot reload keeps it in step with its files like the served one
(``Reloader``), and a new candidate version starts a new diff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tailor.compiler.ruleset_changes import DeclarationChange, changes

from .decision_diff import DecisionDiff, DiffCounter
from .decision_record import DecisionRecord
from .decision_replay import Replayer, logged
from .service import DecisionService

log = logging.getLogger("tailor.runtime")

DEFAULT_SHADOW_SAMPLE = 1.0  # the share of served decisions the candidate decides too
MAX_PENDING = 4096  # records waiting for the shadow; beyond it they are dropped, and counted
BATCH = 256  # records decided per turn of the event loop


class Shadow:
    """A candidate ``DecisionService`` decided on a sample of the live service's records."""

    def __init__(self, live: DecisionService, candidate: DecisionService, sample: float = DEFAULT_SHADOW_SAMPLE):
        self.live = live
        self.candidate = candidate
        self.sample = sample
        self._pending: deque[DecisionRecord] = deque()
        self._scheduled = False
        self._replayer: Replayer | None = None
        self._counter: DiffCounter | None = None
        # The declarations that differ, by (live version, candidate version): a served ruleset rebuilds its
        # program from source to compare them, so they are worked out once per pair, not per report.
        self._declared: tuple[tuple[str, str], tuple[DeclarationChange, ...]] | None = None
        self.dropped = 0  # sampled records the shadow fell too far behind to decide
        self.disagreements: Counter[str] = Counter()  # by slot, since the process started
        self.decided = 0
        self._random = random.Random()
        live.metrics.registry.register(_ShadowMetrics(self))
        live.listen(self.observe)

    def observe(self, record: DecisionRecord) -> None:
        """A served decision's record: keep it for the shadow (sampled), never decide it now."""
        if self.sample < 1.0 and self._random.random() >= self.sample:
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(record)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Decide a batch; the loop serves requests between batches."""
        pending = self._pending
        for _ in range(min(BATCH, len(pending))):
            self.decide(pending.popleft())
        if pending:
            asyncio.get_running_loop().call_soon(self._drain)
        else:
            self._scheduled = False

    def decide(self, record: DecisionRecord) -> None:
        """The candidate's answer to one served decision, counted against what was served."""
        replayer, counter = self._current()
        if replayer is None or counter is None:
            return
        before = logged(record)
        after = replayer.replay(record)
        if counter.add(record, before, after, served_by_old=False):
            known = replayer.decider.ruleset.plan.slots  # other slot names are the caller's text: never a label
            for slot, answer in after.slots.items():
                if slot in known and before.slots.get(slot, (None, None)) != answer:
                    self.disagreements[slot] += 1
        self.decided += 1

    def flush(self) -> None:
        """Decide every record waiting (tests, and a report that must include everything served)."""
        while self._pending:
            self.decide(self._pending.popleft())

    def _current(self) -> tuple[Replayer | None, DiffCounter | None]:
        served = self.candidate.current
        if served is None:
            return None, None
        if self._replayer is None or self._replayer.decider is not served.decider:
            live = self.live.current
            logged_models = (
                {name: model.version for name, model in live.ruleset.models.items()} if live is not None else {}
            )
            self._replayer = Replayer(served.decider, logged_models)
            old = live.version if live is not None else ""
            self._counter = DiffCounter(old, served.version)
            log.info("shadow: comparing candidate %s with the served version", served.version)
        return self._replayer, self._counter

    def report(self) -> DecisionDiff | None:
        """The running diff for the current candidate; None before it is loaded."""
        self.flush()
        _, counter = self._current()
        if counter is None:
            return None
        live, candidate = self.live.current, self.candidate.current
        declared: tuple[DeclarationChange, ...] = ()
        if live is not None and candidate is not None:
            pair = (live.version, candidate.version)
            if self._declared is None or self._declared[0] != pair:
                self._declared = (pair, changes(live.ruleset, candidate.ruleset))
            declared = self._declared[1]
        return counter.report(declared)

    def to_dict(self) -> dict[str, Any]:
        """``tailor diff --format json``'s shape, with the shadow's own figures under ``shadow``."""
        diff = self.report()
        status = {
            "sample": self.sample,
            "dropped": self.dropped,
            "candidate_error": self.candidate.last_error,
        }
        body: dict[str, Any] = {"old_path": str(self.live.path), "new_path": str(self.candidate.path)}
        body.update(diff.to_dict() if diff is not None else {"decisions": 0, "changed": 0, "slots": []})
        body["shadow"] = status
        return body


class _ShadowMetrics(Collector):
    """Shadow disagreements per slot and decisions the shadow decided, read at scrape time."""

    def __init__(self, shadow: Shadow):
        self._shadow = shadow

    def collect(self) -> Iterator[Metric]:
        shadow = self._shadow
        family = CounterMetricFamily(
            "tailor_shadow_disagreements",
            "Slots where the shadow candidate would have served something else than was served.",
            labels=("slot",),
        )
        for slot, count in list(shadow.disagreements.items()):
            family.add_metric((slot,), count)
        yield family
        yield CounterMetricFamily(
            "tailor_shadow_decisions", "Served decisions the shadow candidate decided too.", value=shadow.decided
        )
        yield CounterMetricFamily(
            "tailor_shadow_dropped", "Sampled decisions the shadow fell too far behind to decide.", value=shadow.dropped
        )
