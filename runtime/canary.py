"""Canary serving: a candidate version served to a fixed share of users, rolled back when it does worse.

A user is in the canary when the hash of their id under the seed
``<ruleset>-canary`` (the experiments' hashing, ``bucketing.hash_after``)
falls below the share: the same users every time, in every process, and a
user's answers never flip between versions from one page to the next.

The canary watches itself against the live version over the same period:
each side's decisions, and those that were degraded (the store or a model
failed) or failed outright (the candidate raised: that request is answered
by the live version). Once the candidate has ``MIN_DECISIONS`` decisions and
its share of bad ones exceeds the live share by more than ``MARGIN``, it is
rolled back: logged, counted, and its users are served the live version
again. An edit to the candidate (hot reload, as for the served version) is a
new candidate, served to the share again with fresh counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailor.compiler.bucketing import fnv1a32, hash_after

from .service import Decided, DecisionService, Served

Decide = Callable[..., Awaitable[Decided]]  # (served, user_id, context, slots, features, at) -> Decided

log = logging.getLogger("tailor.runtime")

DEFAULT_CANARY_SHARE = 0.05  # the share of users served the candidate
MIN_DECISIONS = 50  # canary decisions before its rate is judged
MARGIN = 0.02  # how far above the live share of bad decisions the candidate's may be


def canary_seed(ruleset: str) -> str:
    return f"{ruleset}-canary"


@dataclass(frozen=True, slots=True)
class CanaryRollback:
    version: str
    at: float = field(metadata={"doc": "epoch seconds"})
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CanaryStatus:
    """What ``GET /v1/canary`` answers."""

    path: str
    version: str | None = field(metadata={"doc": "the candidate's version; null before it compiled"})
    share: float = field(metadata={"doc": "the share of users served the candidate, from 0 to 1"})
    seed: str
    serving: bool = field(metadata={"doc": "false once the candidate was rolled back (until it is edited)"})
    decisions: int
    bad: int = field(metadata={"doc": "candidate decisions degraded or failed"})
    errors: int = field(metadata={"doc": "candidate decisions that failed: the live version answered them"})
    live_decisions: int
    live_bad: int = field(metadata={"doc": "live decisions degraded, over the same period"})
    rollbacks: tuple[CanaryRollback, ...]
    last_error: list[dict[str, Any]] | None = field(metadata={"doc": "why the candidate's last edit did not compile"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version,
            "share": self.share,
            "seed": self.seed,
            "serving": self.serving,
            "decisions": self.decisions,
            "bad": self.bad,
            "errors": self.errors,
            "live_decisions": self.live_decisions,
            "live_bad": self.live_bad,
            "rollbacks": [r.to_dict() for r in self.rollbacks],
            "last_error": self.last_error,
        }


class Canary:
    """Routes a share of users to a candidate ``DecisionService``'s version, and judges it."""

    def __init__(self, live: DecisionService, candidate: DecisionService, share: float):
        self.live = live
        self.candidate = candidate
        self.share = share
        name = live.current.ruleset.name if live.current is not None else live.path.stem
        self.seed = canary_seed(name)
        self._state = fnv1a32(self.seed)
        self._version: str | None = None  # the candidate version the counts are about
        self._stopped: str | None = None  # the version rolled back
        self.rollbacks: list[CanaryRollback] = []
        self._reset()
        live.metrics.registry.register(_CanaryMetrics(self))

    def _reset(self) -> None:
        self.decisions = self.bad = self.errors = 0
        self.live_decisions = self.live_bad = 0

    def in_canary(self, user_id: str | None) -> bool:
        return user_id is not None and hash_after(self._state, user_id) < self.share

    def route(self, user_id: str | None, live: Served) -> Served:
        """The version to serve ``user_id``: the candidate for the canary's share, while it is not rolled back."""
        candidate = self.candidate.current
        if candidate is None or not self.in_canary(user_id):
            return live
        if candidate.version != self._version:  # a new candidate (or the first): fresh counts
            self._version = candidate.version
            self._stopped = None
            self._reset()
        if self._stopped == candidate.version:
            return live
        return candidate

    async def decide(self, decide: Decide, live: Served, user_id: str, *args: Any) -> Decided:
        """One decision on the version ``route`` picks: ``decide(served, user_id, *args)`` is the service's flow.

        A candidate that raises is counted as failed, and the live version answers.
        """
        chosen = self.route(user_id, live)
        if chosen is live:
            decided = await decide(live, user_id, *args)
            self.counted(False, decided.outcomes.decision.degraded)
            return decided
        try:
            decided = await decide(chosen, user_id, *args)
        except Exception:
            if not self.errors:
                log.exception("canary %s %s failed on a request; the live version answers", self.seed, chosen.version)
            self.failed()
            return await decide(live, user_id, *args)
        self.counted(True, decided.outcomes.decision.degraded)
        return decided

    def counted(self, canary: bool, degraded: bool) -> None:
        if canary:
            self.decisions += 1
            self.bad += degraded
            self._judge()
        else:
            self.live_decisions += 1
            self.live_bad += degraded

    def failed(self) -> None:
        """The candidate raised on a request (the live version answers it)."""
        self.decisions += 1
        self.bad += 1
        self.errors += 1
        self._judge()

    def _judge(self) -> None:
        if self.decisions < MIN_DECISIONS or self._stopped == self._version:
            return
        rate = self.bad / self.decisions
        live_rate = self.live_bad / self.live_decisions if self.live_decisions else 0.0
        if rate <= live_rate + MARGIN:
            return
        version = self._version or ""
        self._stopped = version
        reason = (
            f"{self.bad} of {self.decisions} canary decisions degraded or failed ({rate:.1%}, {self.errors} failed), "
            f"live {self.live_bad} of {self.live_decisions} ({live_rate:.1%})"
        )
        self.rollbacks.append(CanaryRollback(version, time.time(), reason))
        log.warning("canary %s %s rolled back: %s; its users get the live version", self.seed, version, reason)

    def status(self) -> CanaryStatus:
        candidate = self.candidate.current
        version = candidate.version if candidate is not None else None
        return CanaryStatus(
            str(self.candidate.path),
            version,
            self.share,
            self.seed,
            candidate is not None and self._stopped != version,
            self.decisions,
            self.bad,
            self.errors,
            self.live_decisions,
            self.live_bad,
            tuple(self.rollbacks),
            self.candidate.last_error,
        )


class _CanaryMetrics(Collector):
    def __init__(self, canary: Canary):
        self._canary = canary

    def collect(self) -> Iterator[Metric]:
        canary = self._canary
        decisions = GaugeMetricFamily(
            "tailor_canary_decisions",
            "Decisions since the current candidate was loaded (it restarts with each candidate), by side "
            "(canary, live) and outcome (ok, bad: degraded or failed).",
            labels=("side", "outcome"),
        )
        decisions.add_metric(("canary", "ok"), canary.decisions - canary.bad)
        decisions.add_metric(("canary", "bad"), canary.bad)
        decisions.add_metric(("live", "ok"), canary.live_decisions - canary.live_bad)
        decisions.add_metric(("live", "bad"), canary.live_bad)
        yield decisions
        yield CounterMetricFamily(
            "tailor_canary_rollbacks", "Candidates rolled back for doing worse than live.", value=len(canary.rollbacks)
        )
        yield GaugeMetricFamily(
            "tailor_canary_serving", "1 while the candidate is served to its share.", value=int(canary.status().serving)
        )
