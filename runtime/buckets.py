"""The time-bucket scheme and the batch rules both feature stores share.

Both ``MemoryStore`` and ``RedisStore`` call these pure functions, so the same
events give the same answers whichever store keeps them. A *series* is one
(user, event type, key) at one resolution: a map from bucket number to the
count and the total of the events that fell in it. Every event updates its own
key's series and the ``"any"`` key's, at every resolution that still keeps its
bucket, so an any-key query costs the same as a keyed one.

A window ``W`` ending at ``at`` is answered from the finest resolution whose
kept span covers it (W <= 2 h: minutes; <= 72 h: hours; else days) by summing
the buckets that overlap ``(at - W, at]``. The oldest of them is counted whole,
so a count never misses an event of the window and over-counts by at most the
events of one bucket at the window's old edge (those at or before ``at - W``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.compiler.features import ANY_KEY

from .events import DEDUPE_SECONDS, DEFAULT_RETENTION, FUTURE_TOLERANCE, Event, EventRejected

MINUTE_KEEP = 2 * 3600.0
HOUR_KEEP = 72 * 3600.0
MAX_BATCH = 1000
# Buckets a series may hold beyond its live span before a write prunes it: pruning
# on every write would rescan a hot series each minute; this amortizes it.
PRUNE_SLACK = 16


@dataclass(frozen=True, slots=True)
class Resolution:
    """One bucket width and how long its buckets are kept."""

    name: str  # "m", "h" or "d": the last part of a series' Redis key
    width: int  # seconds per bucket
    keep: float  # seconds of history a window may read at this resolution

    def bucket(self, ts: float) -> int:
        return math.floor(ts / self.width)

    def oldest(self, now: float) -> int:
        """The oldest bucket still kept at ``now``: a window of ``keep`` seconds starts in it."""
        return self.bucket(now - self.keep)

    def ttl(self, bucket: int, now: float) -> float:
        """Seconds a series must outlive a write to ``bucket`` at ``now``: until the bucket leaves
        every window, plus one bucket of slack for clocks that differ; so always > ``width``."""
        return (bucket + 2) * self.width + self.keep - now

    @property
    def prune_above(self) -> int:
        """The bucket count past which a write drops the buckets older than ``oldest(now)``."""
        live = int(self.keep // self.width) + 2 + math.ceil(FUTURE_TOLERANCE / self.width)
        return live + PRUNE_SLACK


@dataclass(frozen=True, slots=True)
class Scheme:
    """The three resolutions for one retention, and how windows map onto them."""

    retention: float
    minute: Resolution
    hour: Resolution
    day: Resolution

    @classmethod
    def for_retention(cls, retention: float = DEFAULT_RETENTION) -> Scheme:
        if not retention >= 86400:
            raise ValueError(f"the retention must be at least one day (86400 s), not {retention}")
        return cls(
            retention,
            Resolution("m", 60, MINUTE_KEEP),
            Resolution("h", 3600, min(HOUR_KEEP, retention)),
            Resolution("d", 86400, retention),
        )

    @property
    def resolutions(self) -> tuple[Resolution, Resolution, Resolution]:
        return (self.minute, self.hour, self.day)

    def window(self, window: float, at: float) -> tuple[Resolution, range]:
        """The resolution and the buckets that answer ``window`` seconds ending at ``at``.

        Windows longer than the retention see the retention. At most 121 minute,
        73 hour or retention/1 d + 1 day buckets: bounded whatever the traffic.
        """
        span = min(max(window, 0.0), self.retention)
        resolution = next((r for r in self.resolutions if span <= r.keep), self.day)
        return resolution, range(resolution.bucket(at - span), resolution.bucket(at) + 1)

    def since(self, last: float | None, at: float) -> float | None:
        """Seconds from the latest event to ``at``: None when there was none within the retention.

        Only the latest event time is kept, so a replay with ``at`` before it answers 0.
        """
        if last is None or last < at - self.retention:
            return None
        return max(0.0, at - last)


@dataclass(frozen=True, slots=True)
class Write:
    """One event's increment of one series' bucket."""

    user_id: str
    event: str
    key: str
    resolution: Resolution
    bucket: int
    value: float
    ts: float
    ttl: float  # seconds the series must live after this write


@dataclass(frozen=True, slots=True)
class Planned:
    """An event that passed the checks, and what storing it writes (nothing when expired)."""

    event: Event
    ts: float
    expired: bool
    writes: tuple[Write, ...]
    fingerprint: str | None = None  # of the payload, for an event with an id: tells a retry from a conflict


def plan_batch(events: Sequence[Event], now: float, scheme: Scheme) -> list[Planned]:
    """Check a whole batch, then say what each event writes.

    Raises ``EventRejected`` before anything is stored: a store applies a batch
    whole or not at all. An event older than the retention is ``expired``: it is
    accepted and ignored, so replaying old logs is not an error.
    """
    return plan_events(events, check_batch(events, now), now, scheme)


def plan_in_chunks(events: Sequence[Event], now: float, scheme: Scheme, size: int) -> Iterator[list[Planned]]:
    """Check the whole batch now, then plan it ``size`` events at a time, as the chunks are taken.

    Raises ``EventRejected`` before the first chunk, so a bad event still stores
    nothing; planning lazily lets a store yield to its event loop between chunks
    instead of preparing 1,000 events in one go.
    """
    times = check_batch(events, now)
    return (
        plan_events(events[start : start + size], times[start : start + size], now, scheme)
        for start in range(0, len(events), size)
    )


def check_batch(events: Sequence[Event], now: float) -> list[float]:
    """Each event's time, or ``EventRejected`` for the first bad event (or an oversized batch)."""
    if len(events) > MAX_BATCH:
        raise EventRejected(f"a batch holds at most {MAX_BATCH} events; this one has {len(events)}")
    return [_check(index, event, now) for index, event in enumerate(events)]


def plan_events(events: Sequence[Event], times: Sequence[float], now: float, scheme: Scheme) -> list[Planned]:
    """What each checked event (at its time from ``check_batch``) writes."""
    planned: list[Planned] = []
    for event, ts in zip(events, times, strict=True):
        kept = kept_buckets(ts, now, scheme)
        if kept is None:
            planned.append(Planned(event, ts, True, ()))
            continue
        value = 1.0 if event.value is None else float(event.value)
        writes = tuple(
            Write(event.user_id, event.type, key, resolution, bucket, value, ts, ttl)
            for key in series_keys(event.key)
            for resolution, bucket, ttl in kept
        )
        planned.append(Planned(event, ts, False, writes, None if event.id is None else fingerprint(event)))
    return planned


def kept_buckets(ts: float, now: float, scheme: Scheme) -> list[tuple[Resolution, int, float]] | None:
    """The buckets an event at ``ts`` (checked) writes, each kept one once with its number and TTL (shared
    by the event's keys); None when it is older than the retention: accepted, and ignored."""
    if ts < now - scheme.retention:
        return None
    return [
        (resolution, bucket, resolution.ttl(bucket, now))
        for resolution in scheme.resolutions
        if (bucket := resolution.bucket(ts)) >= resolution.oldest(now)
    ]


def series_keys(key: str | None) -> tuple[str, ...]:
    """The keys whose series an event with ``key`` updates: its own and the ``"any"`` key's."""
    return (key, ANY_KEY) if key and key != ANY_KEY else (ANY_KEY,)


def fingerprint(event: Event) -> str:
    """A short digest of what the event says, so a retry (the same) tells from a conflict (another
    payload under the same id). Spellings that store the same thing (no key and ``"any"``; no value
    and 1) agree; a missing ``ts`` stays missing, since it means "when it arrives"."""
    key = event.key if event.key and event.key != ANY_KEY else ANY_KEY
    value = 1.0 if event.value is None else float(event.value)
    ts = None if event.ts is None else float(event.ts)
    return hashlib.blake2b(repr((event.type, key, value, ts)).encode(), digest_size=8).hexdigest()


def _check(index: int, event: Event, now: float) -> float:
    """The event's time, or ``EventRejected`` naming the event and what is wrong with it."""

    def reject(problem: str) -> EventRejected:
        return EventRejected(f"event {index} {problem}; nothing of the batch was stored")

    if not isinstance(event, Event):
        raise reject(f"is a {type(event).__name__}, not an Event")
    if not isinstance(event.user_id, str) or not event.user_id:
        raise reject("has no user_id")
    if not isinstance(event.type, str) or not event.type:
        raise reject("has no type")
    if event.key is not None and not isinstance(event.key, str):
        raise reject(f"has a key that is not text: {event.key!r}")
    if event.id is not None and not isinstance(event.id, str):
        raise reject(f"has an id that is not text: {event.id!r}")
    for name, number in (("value", event.value), ("ts", event.ts)):
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number)
        ):
            raise reject(f"has a {name} that is not a finite number: {number!r}")
    ts = now if event.ts is None else float(event.ts)
    if ts > now + FUTURE_TOLERANCE:
        raise reject(
            f"is from the future: its ts {ts:.3f} is {ts - now:.0f} s after the store's clock ({now:.3f}), "
            f"more than the {FUTURE_TOLERANCE:.0f} s tolerated"
        )
    return ts


def is_duplicate(seen_at: float | None, now: float) -> bool:
    """Whether an id first seen at ``seen_at`` makes an event at ``now`` a duplicate."""
    return seen_at is not None and seen_at > now - DEDUPE_SECONDS


# --- profile attributes ---------------------------------------------------------------


def encode_attribute(name: str, value: Any) -> str:
    """JSON text, so str/int/float/bool/lists come back with their types from either store."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"profile attribute {name!r} must be JSON text, a number, a bool or a list: {exc}") from None


def decode_attribute(text: str | bytes) -> Any:
    return json.loads(text)


def split_attributes(attributes: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The attributes to set (encoded) and the names to delete (their value is None)."""
    sets = {name: encode_attribute(name, value) for name, value in attributes.items() if value is not None}
    return sets, [name for name, value in attributes.items() if value is None]
