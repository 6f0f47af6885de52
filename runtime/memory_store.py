"""The embedded feature store: the bucket scheme of ``buckets.py`` in dicts, one per user.

It answers exactly as ``RedisStore`` does for the same events (totals up to
floating-point rounding), so rules tested in process behave the same in
production. Series expire like Redis keys: a write extends a series' life by
its TTL in real (monotonic) time, and a sweep drops the dead ones.

Two bounds keep a long-running server healthy. Memory: at most ``max_users``
users are kept; a new user beyond that evicts the least recently written one
(reads do not count: they must stay cheap), and ``EVICTIONS`` counts them for
the service's metrics. Pauses: the event loop is never held for a whole batch
or a whole sweep; ``record`` applies ``EVENTS_PER_STEP`` events at a time and
yields between, and a sweep looks at ``SWEEP_USERS`` users per step, one step
per applied chunk of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler.features import FeatureKind, FeatureRef

from .buckets import (
    Planned,
    Scheme,
    Write,
    decode_attribute,
    is_duplicate,
    plan_batch,
    plan_in_chunks,
    split_attributes,
)
from .consent import DECLINED, ConsentGate
from .events import DEDUPE_SECONDS, DEFAULT_RETENTION, Event, EventRejected, RecordResult
from .experiment_counts import ArmTotals
from .feedback import FeedbackMark, Join, Outcome, Tally, served_impressions
from .fleet import Member, MemoryFleet
from .kpis import KpiCounts, KpiQuery
from .memory_exposures import MemoryExposures
from .memory_feedback import MemoryFeedback
from .memory_predictions import MemoryPredictions
from .prediction_cache import CACHED_PREDICTIONS, StoredPrediction
from .store import Exposure, FeatureStore
from .user_data import StoreErasure, UserData, decoded_series

DEFAULT_MAX_USERS = 1_000_000  # about 2.3 GB of users with one event each
SWEEP_SECONDS = 60.0  # a sweep over every user starts at most this often
SWEEP_USERS = 500  # users one sweep step looks at: 2 to 4 ms, under 8 ms at a million users
EVENTS_PER_STEP = 50  # events ``record`` applies before it lets the event loop run (2 to 3 ms)

SeriesId = tuple[str, str, str]  # event type, key, resolution name


@dataclass(slots=True)
class Evictions:
    """Users evicted to stay within ``max_users``, by every memory store of the process.

    Process-wide because the service's metrics read it and a store does not know
    the service reporting on it; a server process has one store.
    """

    users: int = 0


EVICTIONS = Evictions()


# One series, flat, in a plain tuple: ``(deadline, last, bucket, count, total, bucket, count, total, ...)``.
#
# ``deadline`` is the monotonic time after which the series is gone, like a
# Redis TTL; ``last`` the latest event time (day series only, else None); then
# the buckets that saw events, oldest first. An update makes a new tuple (most
# series hold a few buckets). A tuple, not a list: the garbage collector stops
# tracking a tuple of numbers the first time it sees it, so a store of millions
# of series adds nothing to the full collections that pause the whole server
# (``tailor_gc_pause_seconds``), where lists made them grow with the store.
Series = tuple[Any, ...]
DEADLINE, LAST = 0, 1  # a series' first two cells; its buckets follow


def series_add(series: Series, bucket: int, value: float) -> Series:
    """The series with one event of ``value`` added to ``bucket``."""
    at = _find(series, bucket)
    if at < len(series) and series[at] == bucket:
        return (*series[: at + 1], series[at + 1] + 1, series[at + 2] + value, *series[at + 3 :])
    return (*series[:at], bucket, 1, value, *series[at:])


def series_sum(series: Series, first: int, last: int, slot: int) -> float:
    """The counts (slot 1) or totals (slot 2) of buckets ``first`` to ``last``, oldest first."""
    total = 0
    for at in range(_find(series, first), len(series), 3):
        if series[at] > last:
            break
        total += series[at + slot]
    return total


def bucket_count(series: Series) -> int:
    return (len(series) - 2) // 3


def series_pruned(series: Series, oldest: int) -> Series:
    """The series without the buckets before ``oldest``."""
    return series[:2] + series[_find(series, oldest) :]


def _find(series: Series, bucket: int) -> int:
    """The index of the cell of ``bucket`` or of the first later one (the length if none)."""
    end = len(series)
    if end == 2 or series[end - 3] < bucket:  # the usual cases: events arrive in order
        return end
    if series[end - 3] == bucket:
        return end - 3
    low, high = 0, (end - 2) // 3
    while low < high:
        middle = (low + high) // 2
        if series[2 + 3 * middle] < bucket:
            low = middle + 1
        else:
            high = middle
    return 2 + 3 * low


@dataclass(slots=True)
class _User:
    """Everything kept for one user; only touched under the store's lock."""

    series: dict[SeriesId, Series] = field(default_factory=dict)
    seen: dict[str, tuple[float, str | None]] | None = None  # event id -> (first seen, payload fingerprint)
    profile: dict[str, str] | None = None  # attribute -> JSON text
    listed: int = 0  # the sweep pass whose list holds this user (see ``MemoryStore._sweep_step``)


class MemoryStore(FeatureStore):
    """The default store: in process, thread-safe, with synchronous twins for the engine."""

    def __init__(self, retention: float = DEFAULT_RETENTION, *, max_users: int = DEFAULT_MAX_USERS):
        if not max_users >= 1:
            raise ValueError(f"max_users must be at least 1, not {max_users}")
        self.scheme = Scheme.for_retention(retention)
        self.max_users = max_users
        self.round_trips = 0
        self._lock = threading.Lock()
        self._users: OrderedDict[str, _User] = OrderedDict()  # least recently written first
        # The sweep walks lists of user ids, not the dict, which changes between its steps.
        self._sweeping: list[str] = []  # the pass under way: the users it has yet to look at
        self._unswept: list[str] = []  # the next pass's: users kept by this one, and new users
        self._pass = 0  # the number of the pass walking ``_sweeping``
        self._listing = 1  # the pass whose list new users join: the next one (one shared int)
        self._swept = time.monotonic()  # when the last pass ended
        self.feedback = MemoryFeedback(max_joins=max_users)  # join records, feedback ids, KPI counters
        self._exposures = MemoryExposures(max_users)  # first exposures, at most ``max_users`` per phase
        self._model_counts: dict[tuple[str, str], dict[str, float]] = {}  # (model, version) -> field -> count
        self._predictions = MemoryPredictions(max_users)  # cached model scores, with --prediction-cache store
        self._fleet = MemoryFleet()  # this process's heartbeat: the fleet of a memory store is one process

    @property
    def users(self) -> int:
        """How many users the store holds (at most ``max_users``)."""
        return len(self._users)

    # --- the synchronous twins -------------------------------------------------------

    def fetch_now(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
    ) -> dict[str, Any]:
        at = time.time() if at is None else at
        values: dict[str, Any] = {}
        with self._lock:
            self.round_trips += 1
            user = self._users.get(user_id)
            if consent is not None:  # the consent attribute first: a user who declined gets only public reads
                stored = user.profile.get(consent.attribute) if user is not None and user.profile else None
                if stored is not None:
                    values[consent.text] = decode_attribute(stored)
                if stored == DECLINED:
                    features = consent.allowed(features)
            kept = {} if user is None else user.series
            clock = time.monotonic()
            for ref in features:
                if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
                    resolution, buckets = self.scheme.window(ref.window, at)
                    series = kept.get((ref.event, ref.key, resolution.name))
                    live = series is not None and series[DEADLINE] > clock
                    if ref.kind is FeatureKind.COUNT:
                        values[ref.text] = int(series_sum(series, buckets.start, buckets.stop - 1, 1)) if live else 0
                    else:
                        values[ref.text] = (
                            float(series_sum(series, buckets.start, buckets.stop - 1, 2)) if live else 0.0
                        )
                elif ref.kind is FeatureKind.SINCE:
                    series = kept.get((ref.event, ref.key, self.scheme.day.name))
                    live = series is not None and series[DEADLINE] > clock
                    since = self.scheme.since(series[LAST] if live else None, at)
                    if since is not None:
                        values[ref.text] = since
                elif ref.kind is FeatureKind.PROFILE and user is not None and user.profile is not None:
                    text = user.profile.get(ref.name)
                    if text is not None:
                        values[ref.text] = decode_attribute(text)
        return values

    def record_now(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        now = time.time() if now is None else now
        planned = plan_batch(events, now, self.scheme)  # raises before anything is stored
        with self._lock:
            self.round_trips += 1
        return self._apply(planned, now)

    def set_profile_now(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        sets, deletes = split_attributes(attributes)  # raises before anything changes
        with self._lock:
            self.round_trips += 1
            if not sets and user_id not in self._users:
                return  # deleting from nobody: no need to make them somebody
            user = self._written(user_id)
            profile = user.profile or {}
            profile.update(sets)
            for name in deletes:
                profile.pop(name, None)
            user.profile = profile or None

    # --- the FeatureStore interface ----------------------------------------------------

    async def fetch(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
        predictions: Sequence[str] = (),
    ) -> dict[str, Any]:
        values = self.fetch_now(user_id, features, at, consent=consent)
        if predictions:
            with self._lock:
                values[CACHED_PREDICTIONS] = self._predictions.read(user_id, predictions)
        return values

    async def declined(self, user_ids: Sequence[str], attribute: str) -> set[str]:
        with self._lock:
            self.round_trips += 1
            found = set()
            for user_id in set(user_ids):
                user = self._users.get(user_id)
                if user is not None and user.profile and user.profile.get(attribute) == DECLINED:
                    found.add(user_id)
            return found

    async def record(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        """Apply the batch ``EVENTS_PER_STEP`` events at a time, letting the event loop run between.

        The whole batch is checked first, so a bad event still stores nothing.
        """
        now = time.time() if now is None else now
        chunks = plan_in_chunks(events, now, self.scheme, EVENTS_PER_STEP)  # raises before anything is stored
        with self._lock:
            self.round_trips += 1
        result = RecordResult()
        for index, planned in enumerate(chunks):
            if index:
                await asyncio.sleep(0)  # decisions waiting for the loop go first
            result += self._apply(planned, now)
        return result

    async def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        self.set_profile_now(user_id, attributes)

    async def expose(self, exposures: Sequence[Exposure]) -> int:
        with self._lock:
            self.round_trips += 1
        return self._exposures.expose(exposures)

    async def exposures(self, experiment: str, phase: str) -> dict[str, int]:
        return self._exposures.counts(experiment, phase)

    async def ping(self) -> bool:
        return True

    async def keep_decisions(self, joins: Sequence[Join], keep: float, *, impressions: bool = False) -> None:
        self.feedback.keep_decisions(joins, keep, impressions)
        if impressions:
            try:
                await self.record([event for join in joins for event in served_impressions(join)])
            except EventRejected:  # a decision "at" a time too far ahead: kept, its impressions not recorded
                for join in joins:
                    with contextlib.suppress(EventRejected):
                        await self.record(served_impressions(join))

    async def joins(self, decision_ids: Sequence[str], *, marks: bool = True) -> dict[str, Join]:
        return self.feedback.joins(decision_ids, marks=marks)

    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        return self.feedback.count_feedback(tallies, keep)

    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        return self.feedback.kpi_counts(query)

    async def export(self, user_id: str) -> UserData:
        widths = {resolution.name: resolution.width for resolution in self.scheme.resolutions}
        with self._lock:
            self.round_trips += 1
            user = self._users.get(user_id)
            clock, now = time.monotonic(), time.time()
            series = []
            event_ids: list[str] = []
            profile: dict[str, Any] = {}
            if user is not None:
                for (event, key, resolution), kept in user.series.items():
                    if kept[DEADLINE] > clock:
                        cells = [kept[at : at + 3] for at in range(2, len(kept), 3)]
                        series.append(decoded_series(event, key, resolution, widths[resolution], cells, kept[LAST]))
                if user.seen is not None:
                    event_ids = [event_id for event_id, (at, _) in user.seen.items() if is_duplicate(at, now)]
                profile = {name: decode_attribute(text) for name, text in (user.profile or {}).items()}
        joins, feedback_ids, values = self.feedback.of(user_id)
        return UserData(
            profile,
            tuple(sorted(series, key=lambda s: (s.event, s.key, s.resolution))),
            tuple(event_ids),
            tuple(self._exposures.of(user_id)),
            tuple(values),
            tuple(joins),
            tuple(feedback_ids),
        )

    async def erase(self, user_id: str) -> StoreErasure:
        with self._lock:
            self.round_trips += 1
            user = self._users.pop(user_id, None)  # the sweep's lists skip an id whose user is gone
            self._predictions.erase(user_id)
        joins, feedback_ids, values = self.feedback.erase(user_id)
        return StoreErasure(
            len(user.profile or ()) if user is not None else 0,
            len(user.series) if user is not None else 0,
            len(user.seen or ()) if user is not None else 0,
            self._exposures.erase(user_id),
            values,
            joins,
            feedback_ids,
        )

    async def arm_totals(self, experiment: str, phase: str) -> ArmTotals:
        return self.feedback.arm_totals(experiment, phase)

    async def mark_feedback(self, marks: Sequence[tuple[str, FeedbackMark]]) -> None:
        self.feedback.mark_feedback(marks)

    async def add_model_counts(self, counts: Mapping[tuple[str, str, str], float]) -> None:
        with self._lock:
            for (model, version, name), amount in counts.items():
                found = self._model_counts.setdefault((model, version), {})
                found[name] = found.get(name, 0) + amount

    async def model_counts(self, model: str, version: str) -> dict[str, float]:
        with self._lock:
            return dict(self._model_counts.get((model, version), {}))

    async def keep_predictions(self, predictions: Sequence[StoredPrediction], ttl: float) -> None:
        with self._lock:
            self._predictions.keep(predictions, ttl)

    async def beat(self, member: Member) -> None:
        self._fleet.beat(member)

    async def leave(self, process: str) -> None:
        self._fleet.leave(process)

    async def fleet(self, now: float) -> list[Member]:
        return self._fleet.fleet(now)

    # --- internals ---------------------------------------------------------------------

    def _apply(self, planned: Sequence[Planned], now: float) -> RecordResult:
        """Store checked events, then take a step of the sweep if one is due."""
        accepted = duplicates = expired = conflicts = 0
        with self._lock:
            clock = time.monotonic()
            for item in planned:
                if item.expired:
                    expired += 1
                    continue
                event = item.event
                user = self._written(event.user_id)
                if event.id is not None:
                    seen = user.seen
                    if seen is None:
                        seen = user.seen = {}
                    first = seen.get(event.id)
                    if first is not None and is_duplicate(first[0], now):
                        if first[1] == item.fingerprint:
                            duplicates += 1
                        else:
                            conflicts += 1
                        continue
                    seen[event.id] = (now, item.fingerprint)
                accepted += 1
                for write in item.writes:
                    self._add(user, write, now, clock)
            self._sweep_step(now, clock)
        return RecordResult(accepted, duplicates, expired, conflicts)

    def _written(self, user_id: str) -> _User:
        """The user a write is for, now the most recently written; a new one may evict the least."""
        users = self._users
        user = users.get(user_id)
        if user is not None:
            users.move_to_end(user_id)
            return user
        while len(users) >= self.max_users:
            users.popitem(last=False)
            EVICTIONS.users += 1
        user = users[user_id] = _User(listed=self._listing)
        self._unswept.append(user_id)
        return user

    def _add(self, user: _User, write: Write, now: float, clock: float) -> None:
        """What the Redis script does for one write: bump, track the latest time, extend the TTL, prune."""
        resolution = write.resolution
        series_id = (write.event, write.key, resolution.name)
        series = user.series.get(series_id)
        day = resolution is self.scheme.day
        if series is None or series[DEADLINE] <= clock:
            # Interned: a type or key sent in JSON is a new string per event, and users share them.
            series_id = (sys.intern(write.event), sys.intern(write.key), resolution.name)
            user.series[series_id] = (clock + write.ttl, write.ts if day else None, write.bucket, 1, write.value)
            return
        series = series_add(series, write.bucket, write.value)
        last = series[LAST]
        if day and (last is None or write.ts > last):
            last = write.ts
        series = (max(series[DEADLINE], clock + write.ttl), last, *series[2:])
        if bucket_count(series) > resolution.prune_above:
            series = series_pruned(series, resolution.oldest(now))
        user.series[series_id] = series

    def _sweep_step(self, now: float, clock: float) -> None:
        """Look at up to ``SWEEP_USERS`` users: drop their dead series and forgotten ids, and the
        users left with nothing. A pass over every user starts at most every ``SWEEP_SECONDS``.

        A pass takes the ids of the users the previous one kept and of those made
        since, and pops them a step at a time (so their memory goes a step at a time
        too); an id whose user was evicted, dropped or made again is skipped, as
        ``listed`` tells, so each user is looked at once per pass.
        """
        if not self._sweeping:
            if clock - self._swept <= SWEEP_SECONDS:
                return
            self._sweeping, self._unswept = self._unswept, []
            self._pass, self._listing = self._listing, self._listing + 1
        users, sweeping, this, following = self._users, self._sweeping, self._pass, self._listing
        for _ in range(min(SWEEP_USERS, len(sweeping))):
            user_id = sweeping.pop()
            user = users.get(user_id)
            if user is None or user.listed != this:
                continue
            if self._forget(user, now, clock):
                del users[user_id]
            else:
                user.listed = following
                self._unswept.append(user_id)
        if not sweeping:
            self._swept = clock

    @staticmethod
    def _forget(user: _User, now: float, clock: float) -> bool:
        """Drop the user's dead series and the ids older than a day; whether nothing is left."""
        series = user.series
        for series_id in [key for key, kept in series.items() if kept[DEADLINE] <= clock]:
            del series[series_id]
        seen = user.seen
        if seen is not None:
            horizon = now - DEDUPE_SECONDS
            for event_id in [key for key, (at, _) in seen.items() if at <= horizon]:
                del seen[event_id]
            if not seen:
                user.seen = None
        return not series and user.seen is None and user.profile is None
