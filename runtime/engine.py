"""The in-process engine: decisions from a compiled ruleset, supplied values and,
once events or profiles are recorded, an embedded memory store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tailor.compiler.decide import Decider, Decision, Outcomes
from tailor.compiler.explain import Explanation, explain
from tailor.compiler.ruleset import Ruleset

from .events import Event, RecordResult
from .inference import DEFAULT_CACHE_TTL, ModelRunner


class Engine:
    """Decides what each slot shows for one request.

    ``features`` maps canonical feature text (``views("Electronics", 24h)``,
    ``user.tier``, ``p_click``) to values; durations are seconds. Supplied
    values override stored ones. Without a store, anything not supplied is
    unknown, except counters and totals, which are 0.
    """

    def __init__(self, ruleset: Ruleset, store: Any | None = None, model_cache_ttl: float = DEFAULT_CACHE_TTL):
        self.ruleset = ruleset
        self.store = store  # a MemoryStore (anything with fetch_now/record_now/set_profile_now)
        self._decider = Decider(ruleset)
        self._models = ModelRunner(ruleset, cache_ttl=model_cache_ttl) if ruleset.models else None

    def decide(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> Decision:
        return self._outcomes(user_id, context, slots, features, at).decision

    def explain(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> Explanation:
        return explain(self._decider, self._outcomes(user_id, context, slots, features, at))

    def record(self, events: Sequence[Event | Mapping[str, Any]], now: float | None = None) -> RecordResult:
        """Apply behavioural events (as the server's POST /v1/events does)."""
        batch = [e if isinstance(e, Event) else Event(**e) for e in events]
        return self._memory().record_now(batch, now)

    def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        """Upsert profile attributes; None deletes one."""
        self._memory().set_profile_now(user_id, attributes)

    def _memory(self) -> Any:
        if self.store is None:
            from .memory_store import MemoryStore

            self.store = MemoryStore()
        return self.store

    def _outcomes(
        self,
        user_id: str | None,
        context: Mapping[str, Any] | None,
        slots: Iterable[str] | None,
        features: Mapping[str, Any] | None,
        at: float | None,
    ) -> Outcomes:
        decider = self._decider
        context = context if context is not None else {}
        slots = tuple(slots) if slots is not None else None  # read twice: by stage 0 and by stage 2
        alive, needed = decider.begin(context, slots)
        if self.store is not None and user_id is not None and needed:
            fetched = self.store.fetch_now(user_id, decider.refs(needed), at)
            if features:
                fetched.update(features)
        else:
            fetched = features if features is not None else {}
        run_model = self._models.for_decision(user_id) if self._models is not None else None
        return decider.finish(context, alive, needed, fetched, slots, run_model)
