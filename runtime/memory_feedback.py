"""The memory store's join records, feedback ids and KPI counters, as ``RedisStore`` keeps them in Redis.

Join records and ids live for ``keep`` seconds of real (monotonic) time,
like Redis keys with a TTL. Every record is kept as long, so the oldest are
first in insertion order: each write drops the dead ones from the front,
and at most ``max_joins`` are kept (the oldest go first).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from . import experiment_counts as arm_counts
from .experiment_counts import ArmMeasures, ArmTotals
from .feedback import DECISIONS, IMPRESSION, MEASURES, VALUE, FeedbackMark, Join, Outcome, Tally
from .kpis import KpiCounts, KpiQuery, add_counts
from .user_data import ExperimentValue, JoinData

Counters = dict[tuple[str, str, str], dict[str, float]]  # (slot, rule, content) -> measure -> sum


@dataclass(slots=True)
class _Kept:
    """A join record while it lives. Most never see feedback, so the two collections feedback fills are
    made by the first item that needs them: fewer objects held for the collector to walk."""

    deadline: float  # monotonic
    join: Join
    counted: set[tuple[str, str]] | None = None  # (slot, type) counted without an id
    marks: dict[tuple[str, str], float] | None = None  # (slot, type) -> when, first time only

    def marked(self) -> Join:
        """The join record with its feedback marks, as ``joins`` answers it."""
        if not self.marks:
            return self.join
        marks = tuple(FeedbackMark(slot, kind, ts) for (slot, kind), ts in self.marks.items())
        return dataclasses.replace(self.join, feedback=marks)


class MemoryFeedback:
    """Join records, feedback ids and KPI counters in dicts; thread-safe."""

    def __init__(self, max_joins: int):
        self.max_joins = max_joins
        self._lock = threading.Lock()
        self._joins: OrderedDict[str, _Kept] = OrderedDict()
        self._ids: OrderedDict[str, tuple[float, str, str]] = OrderedDict()  # id -> (deadline, fingerprint, user)
        self._counters: dict[tuple[str, str | None], Counters] = {}  # (version, day or None for the total)
        # Experiments' counters by (experiment, phase): per period (None: the total) and arm; and each
        # converted user's value, at most ``max_joins`` users per phase (the oldest converter is forgotten).
        self._arms: dict[tuple[str, str], dict[str | None, ArmMeasures]] = {}
        self._arm_users: dict[tuple[str, str], OrderedDict[str, float]] = {}

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
                if impressions:
                    for experiment, phase, arm in arm_counts.served_impressions(join):
                        self._add_arm(experiment, phase, arm, join.day, MEASURES[IMPRESSION], 1)
            while len(kept) > self.max_joins:
                kept.popitem(last=False)

    def joins(self, decision_ids: Sequence[str], marks: bool = True) -> dict[str, Join]:
        with self._lock:
            clock = time.monotonic()
            found = {}
            for decision_id in decision_ids:
                kept = self._joins.get(decision_id)
                if kept is not None and kept.deadline > clock:
                    found[decision_id] = kept.marked() if marks else kept.join
            return found

    def mark_feedback(self, marks: Sequence[tuple[str, FeedbackMark]]) -> None:
        with self._lock:
            clock = time.monotonic()
            for decision_id, mark in marks:
                kept = self._joins.get(decision_id)
                if kept is not None and kept.deadline > clock:
                    if kept.marks is None:
                        kept.marks = {}
                    kept.marks.setdefault((mark.slot, mark.type), mark.ts)

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
                    for experiment, phase, arm in tally.arms:
                        self._count_arm(experiment, phase, arm, tally)
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

    def of(self, user_id: str) -> tuple[list[JoinData], list[str], list[ExperimentValue]]:
        """The user's live join records, counted feedback ids and converted values per experiment phase
        (a scan: erasure and export are rare)."""
        with self._lock:
            clock = time.monotonic()
            joins = [
                JoinData.of(kept.marked())
                for kept in self._joins.values()
                if kept.join.user_id == user_id and kept.deadline > clock
            ]
            ids = [item for item, (deadline, _, user) in self._ids.items() if user == user_id and deadline > clock]
            values = [
                ExperimentValue(experiment, phase, users[user_id])
                for (experiment, phase), users in sorted(self._arm_users.items())
                if user_id in users
            ]
        return joins, ids, values

    def erase(self, user_id: str) -> tuple[int, int, int]:
        """Drop the user's join records (their feedback marks with them), feedback ids and converted values;
        how many of each (live or not) there were. The per-arm counters are aggregates and stay."""
        with self._lock:
            decisions = [decision_id for decision_id, kept in self._joins.items() if kept.join.user_id == user_id]
            for decision_id in decisions:
                del self._joins[decision_id]
            ids = [item_id for item_id, (_, _, user) in self._ids.items() if user == user_id]
            for item_id in ids:
                del self._ids[item_id]
            values = sum(users.pop(user_id, None) is not None for users in self._arm_users.values())
        return len(decisions), len(ids), values

    def arm_totals(self, experiment: str, phase: str) -> ArmTotals:
        with self._lock:
            periods = self._arms.get((experiment, phase), {})
            total = {arm: dict(measures) for arm, measures in periods.get(None, {}).items()}
            days = {
                day: {arm: dict(measures) for arm, measures in arms.items()}
                for day, arms in sorted(periods.items(), key=lambda item: item[0] or "")
                if day is not None
            }
        return ArmTotals(total, days)

    def _count_arm(self, experiment: str, phase: str, arm: str, tally: Tally) -> None:
        for measure, amount in arm_counts.tally_counts(tally):
            self._add_arm(experiment, phase, arm, tally.day, measure, amount)
        if not arm_counts.is_conversion(tally):
            return
        users = self._arm_users.get((experiment, phase))
        if users is None:
            users = self._arm_users[experiment, phase] = OrderedDict()
        after, converters, squares = arm_counts.per_user_step(users.get(tally.user_id), tally.value)
        users[tally.user_id] = after
        users.move_to_end(tally.user_id)
        if len(users) > self.max_joins:
            users.popitem(last=False)
        totals = self._arms[experiment, phase].setdefault(None, {})
        arm_counts.add(totals, arm, arm_counts.CONVERTERS, converters)
        arm_counts.add(totals, arm, arm_counts.VALUE_SQUARES, squares)

    def _add_arm(self, experiment: str, phase: str, arm: str, day: str, measure: str, amount: float) -> None:
        periods = self._arms.get((experiment, phase))
        if periods is None:
            periods = self._arms[experiment, phase] = {}
        for period in (None, day):
            arm_counts.add(periods.setdefault(period, {}), arm, measure, amount)

    def _count_once(self, tally: Tally, deadline: float) -> Outcome:
        if tally.id is not None:
            seen = self._ids.get(tally.id)
            if seen is not None:
                return Outcome.DUPLICATE if seen[1] == tally.fingerprint else Outcome.CONFLICT
            self._ids[tally.id] = (deadline, tally.fingerprint, tally.user_id)
            return Outcome.ACCEPTED
        kept = self._joins.get(tally.decision_id)
        if kept is None:  # gone since it was read: count it once now
            return Outcome.ACCEPTED
        if kept.counted is None:
            kept.counted = set()
        elif (tally.slot, tally.type) in kept.counted:
            return Outcome.DUPLICATE
        kept.counted.add((tally.slot, tally.type))
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
