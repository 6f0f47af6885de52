"""Behavioural events and the checks every store applies to them."""

from __future__ import annotations

from dataclasses import dataclass

from tailor.compiler.lint import DEFAULT_RETENTION as DEFAULT_RETENTION  # defined where lint flags longer windows

FUTURE_TOLERANCE = 300.0  # seconds: events further ahead than this are rejected
DEDUPE_SECONDS = 86400.0  # an event id seen in the last 24 h is ignored


@dataclass(frozen=True, slots=True)
class Event:
    user_id: str
    type: str
    key: str | None = None
    value: float | None = None  # dwell seconds, revenue: what total() sums; 1 when absent
    ts: float | None = None  # epoch seconds; the store's clock when absent
    id: str | None = None  # for de-duplication of retried batches


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What a store did with a batch."""

    accepted: int = 0
    duplicates: int = 0  # ids already seen in the last 24 h, with the same payload
    expired: int = 0  # older than the retention horizon: accepted, ignored
    conflicts: int = 0  # ids already seen in the last 24 h with another payload: ignored, the first stands
    dropped_no_consent: int = 0  # events of users without consent: counted, never stored

    def __add__(self, other: RecordResult) -> RecordResult:
        """The result of two parts of a batch (stores apply a batch in chunks)."""
        return RecordResult(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.expired + other.expired,
            self.conflicts + other.conflicts,
            self.dropped_no_consent + other.dropped_no_consent,
        )


class EventRejected(ValueError):
    """A batch with an event that must not be stored (e.g. from the future); nothing was stored."""
