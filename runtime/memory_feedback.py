"""The memory store's join records, feedback ids and KPI counters, as ``RedisStore`` keeps them in Redis.

Join records and ids live for ``keep`` seconds of real (monotonic) time,
like Redis keys with a TTL. Every record is kept as long, so the oldest are
first in insertion order: each write drops the dead ones from the front,
and at most ``max_joins`` are kept (the oldest go first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .feedback import DECISIONS, IMPRESSION, MEASURES, VALUE, Join, Outcome, Tally
from .kpis import KpiCounts, KpiQuery, add_counts
from .user_data import JoinData, joined_slots

Counters = dict[tuple[str, str, str], dict[str, float]]  # (slot, rule, content) -> measure -> sum


@dataclass(slots=True)
class _Kept:
    deadline: float  # monotonic
    join: Join
    counted: set[tuple[str, str]] = field(default_factory=set)  # (slot, type) counted without an id


class MemoryFeedback:
    """Join records, feedback ids and KPI counters in dicts; thread-safe."""

    def __init__(self, max_joins: int):
        self.max_joins = max_joins
        self._lock = threading.Lock()
        self._joins: OrderedDict[str, _Kept] = OrderedDict()
        self._ids: OrderedDict[str, tuple[float, str, str]] = OrderedDict()  # id -> (deadline, fingerprint, user)
        self._counters: dict[tuple[str, str | None], Counters] = {}  # (version, day or None for the total)

    def keep_decisions(self, joins: Sequence[Join], keep: float, impressions: bool) -> None:
        with self._lock:
            clock = time.monotonic()
            self._expire(clock)
            kept = self._joins
            for join in joins:
                kept[join.decision_id] = _Kept(clock + keep, join)
                kept.move_to_end(join.decision_id)
                for slot, (rule, content) in join.slots.items():
                    self._add(join.version, join.day, (slot, rule, content), DECISIONS, 1)
                    if impressions:
                        self._add(join.version, join.day, (slot, rule, content), MEASURES[IMPRESSION], 1)
            while len(kept) > self.max_joins:
                kept.popitem(last=False)

    def joins(self, decision_ids: Sequence[str]) -> dict[str, Join]:
        with self._lock:
            clock = time.monotonic()
            found = {}
            for decision_id in decision_ids:
                kept = self._joins.get(decision_id)
                if kept is not None and kept.deadline > clock:
                    found[decision_id] = kept.join
            return found

    def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        outcomes = []
        with self._lock:
            clock = time.monotonic()
            self._expire(clock)
            for tally in tallies:
                outcome = self._count_once(tally, clock + keep)
                outcomes.append(outcome)
                if outcome is Outcome.ACCEPTED:
                    key = (tally.slot, tally.rule, tally.content)
                    if tally.measure is not None:
                        self._add(tally.version, tally.day, key, tally.measure, 1)
                    if tally.value:
                        self._add(tally.version, tally.day, key, VALUE, tally.value)
        return outcomes

    def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        found: KpiCounts = {}
        with self._lock:
            for (version, day), counters in self._counters.items():
                if query.version is not None and version != query.version:
                    continue
                if (day is None) == query.by_day or (day is not None and not query.has_day(day)):
                    continue
                for (slot, rule, content), measures in counters.items():
                    for measure, amount in measures.items():
                        add_counts(found, (version, slot, rule, content), measure, amount)
        return found

    def of(self, user_id: str) -> tuple[list[JoinData], list[str]]:
        """The user's live join records and counted feedback ids (a scan: erasure and export are rare)."""
        with self._lock:
            clock = time.monotonic()
            joins = [
                JoinData(join.decision_id, join.version, join.at, joined_slots(join.slots))
                for kept in self._joins.values()
                if (join := kept.join).user_id == user_id and kept.deadline > clock
            ]
            ids = [item for item, (deadline, _, user) in self._ids.items() if user == user_id and deadline > clock]
        return joins, ids

    def erase(self, user_id: str) -> tuple[int, int]:
        """Drop the user's join records and feedback ids; how many of each (live or not) there were."""
        with self._lock:
            decisions = [decision_id for decision_id, kept in self._joins.items() if kept.join.user_id == user_id]
            for decision_id in decisions:
                del self._joins[decision_id]
            ids = [item_id for item_id, (_, _, user) in self._ids.items() if user == user_id]
            for item_id in ids:
                del self._ids[item_id]
        return len(decisions), len(ids)

    def _count_once(self, tally: Tally, deadline: float) -> Outcome:
        if tally.id is not None:
            seen = self._ids.get(tally.id)
            if seen is not None:
                return Outcome.DUPLICATE if seen[1] == tally.fingerprint else Outcome.CONFLICT
            self._ids[tally.id] = (deadline, tally.fingerprint, tally.user_id)
            return Outcome.ACCEPTED
        kept = self._joins.get(tally.decision_id)
        counted = kept.counted if kept is not None else set()  # gone since it was read: count it once now
        if (tally.slot, tally.type) in counted:
            return Outcome.DUPLICATE
        counted.add((tally.slot, tally.type))
        return Outcome.ACCEPTED

    def _add(self, version: str, day: str, key: tuple[str, str, str], measure: str, amount: float) -> None:
        for period in (None, day):
            counters = self._counters.get((version, period))
            if counters is None:
                counters = self._counters[version, period] = {}
            measures = counters.get(key)
            if measures is None:
                measures = counters[key] = {}
            measures[measure] = measures.get(measure, 0) + amount

    def _expire(self, clock: float) -> None:
        """Drop the dead join records and ids from the front (oldest first)."""
        for kept in (self._joins, self._ids):
            while kept:
                first = next(iter(kept.values()))
                deadline = first.deadline if isinstance(first, _Kept) else first[0]
                if deadline > clock:
                    break
                kept.popitem(last=False)
