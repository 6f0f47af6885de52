"""The in-process engine: decisions from a compiled ruleset, supplied values and,
when it has one, a feature store read synchronously (``FeatureStore.fetch_now``).

It runs the decision flow of ``decision_flow.py``, as the server does; only
its fetch is its own: blocking, with no deadline but the store's timeouts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tailor.compiler.decide import Decider, Decision, Outcomes
from tailor.compiler.explain import Explanation, explain
from tailor.compiler.ruleset import Ruleset

from . import decision_flow
from .decision_flow import StoreHealth
from .events import Event, RecordResult
from .inference import DEFAULT_CACHE_TTL, ModelRunner
from .store import FeatureStore, SyncWrites


class Engine:
    """Decides what each slot shows for one request.

    ``features`` maps canonical feature text (``views("Electronics", 24h)``,
    ``user.tier``, ``p_click``) to values; durations are seconds. Supplied
    values override stored ones, and are not fetched. Without a store (or
    without a user), anything not supplied is unknown, except counters and
    totals, which are 0. With one, a store that fails makes the decision
    degraded, as on the server: the store's features are unknown and
    ``Decision.degraded`` is true; it never raises.
    """

    def __init__(self, ruleset: Ruleset, store: FeatureStore | None = None, model_cache_ttl: float = DEFAULT_CACHE_TTL):
        self.ruleset = ruleset
        self.store = store
        self._decider = Decider(ruleset)
        self._models = ModelRunner(ruleset, cache_ttl=model_cache_ttl) if ruleset.models else None
        self._health = StoreHealth()

    def decide(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
        consent: bool | None = None,
    ) -> Decision:
        """``consent`` False: the user declined personalization, so rules that need consent are skipped."""
        return self._outcomes(user_id, context, slots, features, at, consent).decision

    def explain(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
        consent: bool | None = None,
    ) -> Explanation:
        return explain(self._decider, self._outcomes(user_id, context, slots, features, at, consent))

    def record(self, events: Sequence[Event | Mapping[str, Any]], now: float | None = None) -> RecordResult:
        """Apply behavioural events (as the server's POST /v1/events does)."""
        batch = [e if isinstance(e, Event) else Event(**e) for e in events]
        return self._writable().record_now(batch, now)

    def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        """Upsert profile attributes; None deletes one."""
        self._writable().set_profile_now(user_id, attributes)

    def _writable(self) -> SyncWrites:
        """The store to write to: a memory store made on first use when there is none."""
        store = self.store
        if store is None:
            from .memory_store import MemoryStore

            store = self.store = MemoryStore()
        if not isinstance(store, SyncWrites):
            raise TypeError(
                f"{type(store).__name__} takes writes asynchronously: "
                "record events through the server (POST /v1/events) or await the store's record()"
            )
        return store

    def _outcomes(
        self,
        user_id: str | None,
        context: Mapping[str, Any] | None,
        slots: Iterable[str] | None,
        features: Mapping[str, Any] | None,
        at: float | None,
        consent: bool | None = None,
    ) -> Outcomes:
        store = self.store
        given = consent is not False
        pending = decision_flow.begin(
            self._decider, user_id, context, slots, features, store=store is not None, consent=given
        )
        if store is None or user_id is None or not pending.missing:
            return decision_flow.finish(pending, None, self._models, consent=given)
        try:
            fetched = store.fetch_now(user_id, pending.refs(), at)
        except Exception as exc:  # any store failure degrades the decision; it never fails it
            self._health.failed(f"{type(exc).__name__}: {exc}")
            return decision_flow.finish(pending, pending.unknown(), self._models, degraded=True, consent=given)
        self._health.answered()
        return decision_flow.finish(pending, fetched, self._models, consent=given)
