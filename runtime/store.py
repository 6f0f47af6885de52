"""The feature store interface: profiles and windowed behavioural counters.

Two implementations share it: ``MemoryStore`` (the embedded default) and
``RedisStore`` (production). Both keep counters in the same time buckets
(see ``buckets.py``), so the same event sequence gives the same answers.

Every store is read two ways, with the same answers. The server decides in an
event loop and awaits ``fetch``; the in-process ``Engine`` is synchronous and
calls ``fetch_now``. Both are in the protocol, so the engine can decide on
either store: the memory store answers in process anyway, and ``RedisStore``
runs the same script through a blocking client of its own (a notebook, a
replay or a batch job can decide on production data). Writes are
asynchronous in the protocol; only a store that also writes synchronously,
``SyncWrites`` (the memory store), takes the engine's ``record`` and
``set_profile``. Events for Redis go through the server or ``await record``.

Stores also remember first exposures to experiments (``expose``), each
(user, experiment, phase) once, and count them per arm (``exposures``): the
service writes them off the response path (``runtime/exposures.py``).

Everything a store keeps about one user can be read back whole (``export``)
and deleted whole (``erase``): see ``user_data.py`` and docs/privacy.md.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from tailor.compiler.features import FeatureRef

from .consent import ConsentGate
from .events import Event, RecordResult
from .feedback import FeedbackMark, Outcome

if TYPE_CHECKING:
    from .experiment_counts import ArmTotals
    from .feedback import Join, Tally
    from .fleet import Member
    from .kpis import KpiCounts, KpiQuery
    from .prediction_cache import StoredPrediction
    from .user_data import StoreErasure, UserData

EXPOSURE_TTL = 180 * 86400.0  # seconds a first exposure is remembered: longer than an experiment runs


class Exposure(NamedTuple):
    """A user's first exposure to one phase of an experiment, in the arm they were drawn into."""

    user_id: str
    experiment: str
    phase: str
    arm: str


class FeatureStore(Protocol):
    """Everything a decision's stage 1 reads, fetched in one round trip."""

    #: how many round trips (to Redis; calls, for memory) the store has made
    round_trips: int = 0

    @abstractmethod
    async def fetch(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
        predictions: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Values by feature text, as of ``at`` (epoch seconds; now when None), in one round trip.

        Profile attributes: the stored value, absent when not set. Counts and totals: a
        number, 0 when nothing happened. ``since``: seconds since the last such event,
        absent when there was none. Context and model features are not the store's.

        With ``consent``, the store reads the consent attribute first, in the same round
        trip, and answers its value under ``consent.text``; when it is ``false`` it reads
        nothing else but ``consent.allowed(features)``, the public user attributes.

        With ``predictions`` (model versions), the store also reads the user's cached
        predictions of those models in the same round trip, and answers them under
        ``CACHED_PREDICTIONS`` (version -> entry; see ``prediction_cache.py``).
        """

    @abstractmethod
    def fetch_now(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
    ) -> dict[str, Any]:
        """``fetch``, blocking the calling thread: for the synchronous engine, never for the event loop."""

    @abstractmethod
    async def declined(self, user_ids: Sequence[str], attribute: str) -> set[str]:
        """Those of ``user_ids`` whose profile attribute ``attribute`` is ``false``, in one round trip:
        their events and feedback are dropped (``--consent-attribute``)."""

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
    async def expose(self, exposures: Sequence[Exposure]) -> int:
        """Remember each (user, experiment, phase) once and count it under its arm; how many were new.

        Idempotent: an exposure already remembered (within ``EXPOSURE_TTL``) is
        neither stored nor counted again, so a retried batch counts nobody twice.
        """

    @abstractmethod
    async def exposures(self, experiment: str, phase: str) -> dict[str, int]:
        """How many users were exposed to each arm of an experiment's phase (arms nobody saw are absent)."""

    @abstractmethod
    async def ping(self) -> bool:
        """Whether the store answers."""

    # --- feedback and KPIs (see feedback.py and kpis.py) ---

    @abstractmethod
    async def keep_decisions(self, joins: Sequence[Join], keep: float, *, impressions: bool = False) -> None:
        """Keep each served decision's join record for ``keep`` seconds, and count its slots as decisions
        (with ``impressions``, as impressions too, and record each slot's impression event of the user:
        ``feedback.served_impressions``) in the KPI counters, in total and per UTC day."""

    @abstractmethod
    async def joins(self, decision_ids: Sequence[str], *, marks: bool = True) -> dict[str, Join]:
        """The join records still kept, by decision id (the unknown and the expired are absent); without
        ``marks``, with no ``feedback`` marks (judging feedback does not read them, and a record collects
        many)."""

    @abstractmethod
    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        """Count each tally once, atomically across processes; per tally ``ACCEPTED``, ``DUPLICATE``
        (its id with the same fingerprint, or without an id its (decision, slot, type), was counted
        before) or ``CONFLICT`` (its id was counted with another fingerprint). Ids are kept ``keep`` seconds."""

    async def take_feedback(
        self, tallies: Sequence[Tally], events: Sequence[Event], keep: float, now: float
    ) -> list[Outcome]:
        """``count_feedback``, and what a counted tally leaves stored: its event (``events[n]`` is
        ``tallies[n]``'s) recorded, and its join record marked (``mark_feedback``, at the event's time).

        Here in three steps: the events and marks of every tally but a conflict are stored, a duplicate's
        again, since a failure after its count may have lost them (event ids and first-time marks make
        that harmless). ``RedisStore`` on one Redis does all three in one atomic call, and stores nothing
        for a duplicate."""
        counted = await self.count_feedback(tallies, keep)
        kept = [n for n, outcome in enumerate(counted) if outcome is not Outcome.CONFLICT]
        if kept:
            await self.record([events[n] for n in kept], now)
            marks = [
                (tallies[n].decision_id, FeedbackMark(tallies[n].slot, tallies[n].type, events[n].ts)) for n in kept
            ]
            await self.mark_feedback(marks)
        return counted

    @abstractmethod
    async def arm_totals(self, experiment: str, phase: str) -> ArmTotals:
        """An experiment phase's feedback counters per arm, in total and per UTC day (``experiment_counts.py``):
        counted by ``count_feedback`` (and ``keep_decisions``' served impressions) in the same atomic step."""

    @abstractmethod
    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        """The KPI counters ``query`` asks for (its version and days; slots and rules are filtered by the caller)."""

    # --- one user's data (see user_data.py and docs/privacy.md) ---

    @abstractmethod
    async def export(self, user_id: str) -> UserData:
        """Everything the store holds about ``user_id``: profile, counters, event ids, exposures,
        join records and feedback ids (empty for a user it does not know)."""

    @abstractmethod
    async def erase(self, user_id: str) -> StoreErasure:
        """Delete everything ``export`` shows; a first exposure is also taken off its arm's count.

        Idempotent: a second call finds nothing and says so with zeros. Aggregates
        that do not name the user (KPI counters) are left as they are.
        """

    @abstractmethod
    async def mark_feedback(self, marks: Sequence[tuple[str, FeedbackMark]]) -> None:
        """Note each (decision id, mark) in the decision's join record, while it is kept; a (slot, type)
        marked before keeps its first time. ``joins`` answers them: the labels of training from the log."""

    # --- live model counters (see model_monitor.py) ---

    @abstractmethod
    async def add_model_counts(self, counts: Mapping[tuple[str, str, str], float]) -> None:
        """Add to the counters of models, shared by every server process: (model, version, field) -> amount."""

    @abstractmethod
    async def model_counts(self, model: str, version: str) -> dict[str, float]:
        """Every counter of one model version, by field (empty when nothing was counted)."""

    # --- what the server processes share (see prediction_cache.py and fleet.py) ---

    @abstractmethod
    async def keep_predictions(self, predictions: Sequence[StoredPrediction], ttl: float) -> None:
        """Keep each user's latest score per model version for ``ttl`` seconds (read back by ``fetch``)."""

    @abstractmethod
    async def beat(self, member: Member) -> None:
        """Write a server process's heartbeat (it replaces the process's last one)."""

    @abstractmethod
    async def leave(self, process: str) -> None:
        """Forget a server process's heartbeat (it stopped cleanly)."""

    @abstractmethod
    async def fleet(self, now: float) -> list[Member]:
        """The heartbeats of the processes not ``gone`` by ``now`` (epoch seconds); the others' may be deleted."""

    async def close(self) -> None:
        """Release connections."""


@runtime_checkable
class SyncWrites(Protocol):
    """A store that also writes synchronously, so the in-process engine can record into it."""

    def record_now(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        """``record``, blocking the calling thread."""
        ...

    def set_profile_now(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        """``set_profile``, blocking the calling thread."""
        ...
