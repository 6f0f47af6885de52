"""The feature store interface: profiles and windowed behavioural counters.

Two implementations share it: ``MemoryStore`` (the embedded default) and
``RedisStore`` (production). Both keep counters in the same time buckets
(see ``buckets.py``), so the same event sequence gives the same answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from tailor.compiler.features import FeatureRef

from .events import Event, RecordResult


class FeatureStore(ABC):
    """Everything a decision's stage 1 reads, fetched in one round trip."""

    #: how many round trips (to Redis; calls, for memory) the store has made
    round_trips: int = 0

    @abstractmethod
    async def fetch(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        """Values by feature text, as of ``at`` (epoch seconds; now when None), in one round trip.

        Profile attributes: the stored value, absent when not set. Counts and totals: a
        number, 0 when nothing happened. ``since``: seconds since the last such event,
        absent when there was none. Context and model features are not the store's.
        """

    @abstractmethod
    async def record(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        """Apply a batch, checked whole first: ``EventRejected`` (storing nothing) on a bad event.

        Stores apply it in chunks, so decisions are not held up by a batch: a
        failure part way leaves the chunks before it stored, and a retry with ids
        counts each event once.
        """

    @abstractmethod
    async def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        """Upsert profile attributes; a None value deletes the attribute."""

    @abstractmethod
    async def ping(self) -> bool:
        """Whether the store answers."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
