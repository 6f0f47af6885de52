"""The embedded feature store: the bucket scheme of ``buckets.py`` in a dict.

It answers exactly as ``RedisStore`` does for the same events (totals up to
floating-point rounding), so rules tested in process behave the same in
production. Series expire like Redis keys: a write extends a series' life by
its TTL in real (monotonic) time, and a sweep about once a minute drops the
dead ones, so memory stays bounded by recent activity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler.features import FeatureKind, FeatureRef

from .buckets import Scheme, Write, decode_attribute, is_duplicate, plan_batch, split_attributes
from .events import DEDUPE_SECONDS, DEFAULT_RETENTION, Event, RecordResult
from .store import FeatureStore

SWEEP_SECONDS = 60.0

SeriesId = tuple[str, str, str, str]  # user, event type, key, resolution name


@dataclass(slots=True)
class _Series:
    """One series' buckets; mutable, so not frozen, and only touched under the store's lock."""

    buckets: dict[int, list[float]] = field(default_factory=dict)  # bucket -> [count, total]
    last: float | None = None  # latest event time (day series only)
    deadline: float = 0.0  # monotonic time after which the series is gone, like a Redis TTL


class MemoryStore(FeatureStore):
    """The default store: in process, thread-safe, with synchronous twins for the engine."""

    def __init__(self, retention: float = DEFAULT_RETENTION):
        self.scheme = Scheme.for_retention(retention)
        self.round_trips = 0
        self._lock = threading.Lock()
        self._series: dict[SeriesId, _Series] = {}
        self._seen: dict[str, dict[str, float]] = {}  # user -> event id -> when first seen
        self._profiles: dict[str, dict[str, str]] = {}  # user -> attribute -> JSON text
        self._swept = time.monotonic()

    # --- the synchronous twins -------------------------------------------------------

    def fetch_now(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        at = time.time() if at is None else at
        values: dict[str, Any] = {}
        with self._lock:
            self.round_trips += 1
            clock = time.monotonic()
            for ref in features:
                if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
                    resolution, buckets = self.scheme.window(ref.window, at)
                    series = self._live((user_id, ref.event, ref.key, resolution.name), clock)
                    slot = 0 if ref.kind is FeatureKind.COUNT else 1
                    found = [] if series is None else [series.buckets.get(b) for b in buckets]
                    total = sum(cell[slot] for cell in found if cell is not None)
                    values[ref.text] = int(total) if slot == 0 else float(total)
                elif ref.kind is FeatureKind.SINCE:
                    series = self._live((user_id, ref.event, ref.key, self.scheme.day.name), clock)
                    since = self.scheme.since(None if series is None else series.last, at)
                    if since is not None:
                        values[ref.text] = since
                elif ref.kind is FeatureKind.PROFILE:
                    text = self._profiles.get(user_id, {}).get(ref.name)
                    if text is not None:
                        values[ref.text] = decode_attribute(text)
        return values

    def record_now(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        now = time.time() if now is None else now
        planned = plan_batch(events, now, self.scheme)  # raises before anything is stored
        accepted = duplicates = expired = 0
        with self._lock:
            self.round_trips += 1
            clock = time.monotonic()
            for item in planned:
                if item.expired:
                    expired += 1
                    continue
                event = item.event
                if event.id is not None:
                    seen = self._seen.setdefault(event.user_id, {})
                    if is_duplicate(seen.get(event.id), now):
                        duplicates += 1
                        continue
                    seen[event.id] = now
                accepted += 1
                for write in item.writes:
                    self._apply(write, now, clock)
            if clock - self._swept > SWEEP_SECONDS:
                self._sweep(now, clock)
        return RecordResult(accepted, duplicates, expired)

    def set_profile_now(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        sets, deletes = split_attributes(attributes)  # raises before anything changes
        with self._lock:
            self.round_trips += 1
            profile = self._profiles.setdefault(user_id, {})
            profile.update(sets)
            for name in deletes:
                profile.pop(name, None)
            if not profile:
                del self._profiles[user_id]

    # --- the FeatureStore interface ----------------------------------------------------

    async def fetch(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        return self.fetch_now(user_id, features, at)

    async def record(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        return self.record_now(events, now)

    async def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        self.set_profile_now(user_id, attributes)

    async def ping(self) -> bool:
        return True

    # --- internals ---------------------------------------------------------------------

    def _live(self, series_id: SeriesId, clock: float) -> _Series | None:
        series = self._series.get(series_id)
        return series if series is not None and series.deadline > clock else None

    def _apply(self, write: Write, now: float, clock: float) -> None:
        """What the Redis script does for one write: bump, track the latest time, extend the TTL, prune."""
        resolution = write.resolution
        series_id = (write.user_id, write.event, write.key, resolution.name)
        series = self._live(series_id, clock)
        if series is None:
            series = self._series[series_id] = _Series()
        cell = series.buckets.get(write.bucket)
        if cell is None:
            series.buckets[write.bucket] = [1, write.value]
        else:
            cell[0] += 1
            cell[1] += write.value
        if resolution == self.scheme.day and (series.last is None or write.ts > series.last):
            series.last = write.ts
        series.deadline = max(series.deadline, clock + write.ttl)
        if len(series.buckets) > resolution.prune_above:
            oldest = resolution.oldest(now)
            for bucket in [b for b in series.buckets if b < oldest]:
                del series.buckets[bucket]

    def _sweep(self, now: float, clock: float) -> None:
        """Drop dead series and forgotten event ids: nothing grows without bound."""
        self._swept = clock
        for series_id in [k for k, series in self._series.items() if series.deadline <= clock]:
            del self._series[series_id]
        horizon = now - DEDUPE_SECONDS
        for user_id, seen in list(self._seen.items()):
            for event_id in [k for k, at in seen.items() if at <= horizon]:
                del seen[event_id]
            if not seen:
                del self._seen[user_id]
