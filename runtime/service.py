"""The decision service: the ruleset being served, the store, and one decision's flow.

A ``Served`` bundles one compiled version with everything derived from it
(the ``Decider``, the ``{"name", "version"}`` every response repeats, the
rule list ``GET /v1/ruleset`` shows), built once when the version is loaded.
``DecisionService.current`` is swapped whole, so a request reads it once and
finishes on the version it started with, however many reloads happen
meanwhile.

A decision never fails because the store does: when the fetch misses the
deadline or raises, the store's features are unknown (None), rules that need
them do not fire, defaults apply, and the response says ``degraded``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tailor.compiler.decide import Decider, Outcomes
from tailor.compiler.explain import explain
from tailor.compiler.feedback import predicate_outcomes
from tailor.compiler.pickled import compacted
from tailor.compiler.plan import PredicateStats
from tailor.compiler.ruleset import RuleInfo, Ruleset
from tailor.dsl.diagnostics import Diagnostic, RulesError, render_all
from tailor.dsl.loader import ParseCache

from . import decision_flow, heap
from .consent import ConsentGate, decision_id_without_consent, declined
from .decision_flow import Pending, StoreHealth
from .decision_record import DecisionRecord, RecordedValues
from .events import Event, EventRejected, RecordResult
from .exposures import ExposureLog
from .fleet import process_name
from .inference import DEFAULT_CACHE_TTL, ModelRunner
from .metrics import DEFAULT_RULE, NO_RULE, Metrics
from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits
from .prediction_cache import CACHED_PREDICTIONS, DEFAULT_PREDICTION_CACHE, PredictionCache, SharedPredictions
from .ruleset_loader import Prepared, prepare, sized_cache
from .store import FeatureStore

if TYPE_CHECKING:
    from .canary import Canary

log = logging.getLogger("tailor.runtime")

DEFAULT_DEADLINE_MS = 50.0
DEFAULT_SAMPLE_EVERY = 16  # one decision in 16 feeds the predicate statistics
KEEP_VERSIONS = 5  # previous good versions kept for rollback (each holds its compiled ruleset)
WRITE_TIMEOUT = 5.0  # seconds an event batch or profile write may take
PING_TIMEOUT = 1.0
MAX_PENDING_SAMPLES = 64


class Decided(NamedTuple):
    """A decision the service made, on the version it started with."""

    served: Served
    outcomes: Outcomes
    reason: str | None  # why it was degraded by the store ("timeout", "store_error"); None otherwise


class NotReady(RuntimeError):
    """No ruleset has been loaded yet."""


class StoreUnavailable(RuntimeError):
    """A write could not reach the feature store (a decision degrades instead)."""


class InvalidInput(ValueError):
    """The store refused a write's values (the API's models normally catch them first)."""


@dataclass(frozen=True, slots=True, eq=False)
class Served:
    """One compiled version and what serving it needs, computed at load time."""

    ruleset: Ruleset
    decider: Decider
    loaded_at: datetime
    ref: dict[str, str]  # {"name", "version"}: shared by every response, never mutated
    rules: tuple[RuleInfo, ...]  # built once: the property on Ruleset builds them anew
    slots: frozenset[str]
    models: ModelRunner
    priorities: dict[str, int]  # by rule name: what a decision record says of the winner
    recorded: RecordedValues  # where each feature value goes in a decision record
    model_versions: tuple[str, ...]  # the models' versions: the store's cached predictions read with a fetch

    @classmethod
    def of(cls, ruleset: Ruleset, shared: SharedPredictions | None = None) -> Served:
        """``shared``: the store keeps the models' predictions (``--prediction-cache store``)."""
        ref = {"name": ruleset.name, "version": ruleset.version}
        return cls(
            ruleset,
            Decider(ruleset),
            datetime.now(UTC),
            ref,
            ruleset.rules,
            frozenset(ruleset.slots),
            ModelRunner(ruleset, shared=shared),
            {rule.name: rule.priority for rule in ruleset.rules},
            RecordedValues.of(ruleset.plan.features),
            tuple(dict.fromkeys(model.version for model in ruleset.models.values())),
        )

    @property
    def version(self) -> str:
        return self.ruleset.version


class DecisionService:
    """Holds the served versions and the store; decides, records, reloads, rolls back."""

    def __init__(
        self,
        path: str | Path,
        store: FeatureStore,
        *,
        deadline_ms: float = DEFAULT_DEADLINE_MS,
        stats: PredicateStats | None = None,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
        keep: int = KEEP_VERSIONS,
        metrics: Metrics | None = None,
        freeze_heap: bool = False,
        model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
        consent_attribute: str | None = None,
        prediction_cache: PredictionCache = DEFAULT_PREDICTION_CACHE,
    ):
        self.path = Path(path)
        # With the store's prediction cache, what this process computes is written there for the others.
        self.shared_predictions = (
            SharedPredictions(store, DEFAULT_CACHE_TTL) if prediction_cache is PredictionCache.STORE else None
        )
        # The profile attribute whose false means the user declined (``consent`` for user.consent), or None.
        self.consent_attribute = consent_attribute
        self._gate: tuple[Decider, ConsentGate] | None = None
        self.model_limits = model_limits
        self.freeze_heap = freeze_heap  # see runtime/heap.py: for a server process, not a library user
        self.store = store
        self.deadline = deadline_ms / 1000.0
        self.stats = stats
        self.cache = ParseCache()
        self.current: Served | None = None
        self.previous: deque[Served] = deque(maxlen=keep)
        self.last_error: list[dict[str, Any]] | None = None
        # Hot reload's status: when the files were last known to be in step with what is served
        # (time.monotonic()), and the model files to watch besides the ruleset's own.
        self.reload_checked_at: float | None = None
        self.model_files: tuple[Path, ...] = ()
        self.metrics = metrics or Metrics(
            lambda: self.store.round_trips,
            self._ruleset_labels,
            reload_check_age=self.reload_check_age,
            predictions=self._predictions,
        )
        self.predicates: dict[str, list[int]] = {}  # text -> [evaluated, held]
        self._sample_every = max(0, sample_every)
        self._until_sample = self._sample_every
        self._sampled: list[tuple[Decider, Outcomes]] = []
        self._health = StoreHealth()
        self._id_prefix = secrets.token_hex(8)  # per process: ids stay unique across workers
        self._ids = itertools.count()
        self.process = process_name(self._id_prefix)  # as the fleet's heartbeats name this process
        self._on_change: list[Callable[[], None]] = []
        self._listeners: list[Callable[[DecisionRecord], None]] = []
        # First exposures to experiments: it listens from the first version that has experiments on.
        self.exposures = ExposureLog(store)
        self._exposing = False
        self.canary: Canary | None = None  # set by the server for --canary

    def _ruleset_labels(self) -> tuple[str, str] | None:
        current = self.current
        return (current.ruleset.name, current.version) if current is not None else None

    def _predictions(self) -> tuple[int, int]:
        """Model predictions computed and taken from the cache, by the versions kept (current and previous)."""
        kept = [self.current, *self.previous] if self.current is not None else list(self.previous)
        return sum(served.models.runs for served in kept), sum(served.models.cache_hits for served in kept)

    def forget(self, user_id: str) -> None:
        """Drop what this process holds of the user in memory: cached predictions, queued exposures (an erasure)."""
        for served in (self.current, *self.previous):
            if served is not None:
                served.models.forget(user_id)
        self.exposures.forget(user_id)
        if self.shared_predictions is not None:
            self.shared_predictions.forget(user_id)

    # --- versions ---

    def prepare(self) -> Served:
        """Compile the ruleset on disk in this process (raises ``RulesError``): the first load, and
        library use. Hot reload compiles in a worker process instead (see ``compile_worker``).

        A server process (``freeze_heap``) keeps no parse trees: its reloads parse in the worker, which
        keeps its own cache. Its ruleset is laid out compactly once the compile's garbage is freed."""
        if self.freeze_heap:  # the throwaway cache is freed as prepare returns, before the copy is made
            fresh = partial(prepare, self.path, stats=self.stats, model_limits=self.model_limits)
            return self.served(compacted(fresh(cache=sized_cache(None, self.path))))
        self.cache = sized_cache(self.cache, self.path)  # shared by these compiles: only changed files re-parse
        return self.served(prepare(self.path, stats=self.stats, cache=self.cache, model_limits=self.model_limits))

    def served(self, prepared: Prepared) -> Served:
        """A compile's outcome as a version to install; raises ``RulesError`` when it did not compile."""
        if prepared.model_files is not None:  # None: the rules did not check, so the models declared are unknown
            self.model_files = prepared.model_files
        if prepared.ruleset is None:
            raise RulesError(list(prepared.errors))
        return Served.of(prepared.ruleset, self.shared_predictions)

    def open(self) -> Served:
        """Load the first version; raises ``RulesError`` so a broken ruleset stops startup."""
        served = self.prepare()
        self.install(served)
        return served

    def install(self, served: Served) -> bool:
        """Serve ``served`` from the next request on; False when it is the version already served."""
        self.last_error = None
        self.reload_checked()
        current = self.current
        if current is not None and current.version == served.version:
            return False
        if current is not None:
            self.previous.append(current)
            for slot in sorted(current.slots - served.slots):  # often a file caught half-written, or deleted
                log.warning(
                    "ruleset %s %s no longer serves slot %s, which %s served: requests for it get nothing",
                    served.ruleset.name,
                    served.version,
                    slot,
                    current.version,
                )
        self.current = served  # one assignment: requests see the old pair or the new one, never a mix
        self._expose(served)
        self._changed()
        if self.freeze_heap:
            first = current is None
            seconds = heap.settle(first=first)
            what = "collected in full" if first else "collected since the last reload"
            log.debug("heap %s and frozen in %.1f ms", what, seconds * 1000)
        return True

    def _expose(self, served: Served) -> None:
        """Record first exposures once a served version has experiments (records are built only for listeners)."""
        if served.ruleset.plan.experiments and not self._exposing:
            self._exposing = True
            self.listen(self.exposures.note)

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever the version served changes: the fleet's heartbeat."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()

    def failed(self, diagnostics: Sequence[Diagnostic]) -> None:
        """An edit did not compile: keep serving, and remember why for ``GET /v1/ruleset``."""
        self.last_error = [d.to_dict() for d in diagnostics]
        version = self.current.version if self.current is not None else "nothing"
        log.error("ruleset reload failed, still serving %s:\n%s", version, render_all(diagnostics))

    def reload_checked(self) -> None:
        """The files on disk were found in step with what is served (or a reload just ran)."""
        self.reload_checked_at = time.monotonic()

    def reload_check_age(self) -> float | None:
        """Seconds since the newest reload check; None before the first. Growing: hot reload is stuck."""
        checked = self.reload_checked_at
        return None if checked is None else time.monotonic() - checked

    def rollback(self) -> Served | None:
        """Serve the previous good version again; None when there is none."""
        if not self.previous:
            return None
        served = self.previous.pop()
        self.current = served
        self._expose(served)
        self._changed()
        self.metrics.reloads["rollback"].inc()
        log.warning("rolled back to ruleset %s %s", served.ruleset.name, served.version)
        return served

    # --- decisions ---

    async def decide(
        self,
        user_id: str,
        context: Mapping[str, Any],
        slots: Sequence[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
        consent: bool | None = None,
    ) -> Decided:
        """One decision on the version current when it started: the flow of ``decision_flow.py``,
        its fetch awaited within the deadline, timed stage by stage.

        ``consent`` False: the user declined, and rules needing consent are removed in stage 0.
        Otherwise, with a consent attribute, the store reads it first in the same round trip
        (``ConsentGate``); a user whose attribute is false, or whose consent could not be read,
        is decided on as one who declined.
        """
        served = self.serving()
        if self.canary is not None:  # a share of users gets the candidate (see canary.py)
            return await self.canary.decide(self._decide, served, user_id, context, slots, features, at, consent)
        return await self._decide(served, user_id, context, slots, features, at, consent)

    def serving(self) -> Served:
        """The version being served; ``NotReady`` (a 503) before one is loaded."""
        served = self.current
        if served is None:
            raise NotReady("no ruleset is loaded")
        return served

    async def decide_with(
        self,
        served: Served,
        user_id: str,
        context: Mapping[str, Any],
        slots: Sequence[str] | None = None,
        features: Mapping[str, Any] | None = None,
        consent: bool | None = None,
    ) -> Decided:
        """A decision by ``served``, a version that is not being served (the console's scratch rules):
        read from the store as a served one would, never published."""
        return await self._decide(served, user_id, context, slots, features, None, consent)

    async def _decide(
        self,
        served: Served,
        user_id: str,
        context: Mapping[str, Any],
        slots: Sequence[str] | None,
        features: Mapping[str, Any] | None,
        at: float | None,
        consent: bool | None,
    ) -> Decided:
        metrics = self.metrics
        clock = time.perf_counter
        start = clock()
        given = consent is not False
        pending = decision_flow.begin(served.decider, user_id, context, slots, features, consent=given)
        gate = self._consent_gate(served.decider) if given and self.consent_attribute is not None else None
        planned = fetch_done = clock()
        metrics.plan.observe(planned - start)
        fetched: dict[str, Any] | None = None
        stored = None
        reason = None
        shared = served.model_versions if self.shared_predictions is not None else ()
        if pending.missing or gate is not None:
            remaining = self.deadline - (planned - start)
            fetched, reason = await self._fetch(user_id, pending, at, remaining, gate, shared)
            if shared:
                stored = fetched.pop(CACHED_PREDICTIONS, None)
            fetch_done = clock()
            metrics.fetch.observe(fetch_done - planned)
            if gate is not None:
                given = reason is None and not declined(fetched, gate)
                if gate.text not in pending.missing:
                    fetched.pop(gate.text, None)
        models = served.models if served.ruleset.models else None
        degraded = reason is not None
        outcomes = decision_flow.finish(pending, fetched, models, start + self.deadline, degraded, given, stored)
        if not given:
            metrics.no_consent["decisions"].inc()
        if outcomes.decision.degraded and not degraded:
            metrics.degraded_model.inc()
        done = clock()
        metrics.finish.observe(done - fetch_done)
        metrics.total.observe(done - start)
        self._count(served, outcomes)
        return Decided(served, outcomes, reason)

    def _consent_gate(self, decider: Decider) -> ConsentGate:
        """The consent gate of the version served: the attribute, and the user attributes it declares public."""
        gate = self._gate
        if gate is None or gate[0] is not decider:
            assert self.consent_attribute is not None
            gate = self._gate = (decider, ConsentGate(self.consent_attribute, decider.consent.public))
        return gate[1]

    async def _fetch(
        self,
        user_id: str,
        pending: Pending,
        at: float | None,
        remaining: float,
        gate: ConsentGate | None = None,
        predictions: tuple[str, ...] = (),
    ) -> tuple[dict[str, Any], str | None]:
        """One store round trip within the deadline; on failure every missing feature is unknown,
        and the reason says why. ``predictions``: the model versions whose cached scores to read too."""
        try:
            async with asyncio.timeout(remaining):
                if gate is None and not predictions:
                    fetched = await self.store.fetch(user_id, pending.refs(), at)
                elif not predictions:
                    fetched = await self.store.fetch(user_id, pending.refs(), at, consent=gate)
                else:
                    fetched = await self.store.fetch(user_id, pending.refs(), at, consent=gate, predictions=predictions)
        except TimeoutError:
            self.metrics.degraded_timeout.inc()
            self._health.failed(f"no answer within {self.deadline * 1000:g} ms")
            return pending.unknown(), "timeout"
        except Exception as exc:  # any store failure degrades the decision; it never fails it
            self.metrics.degraded_error.inc()
            self._health.failed(f"{type(exc).__name__}: {exc}")
            return pending.unknown(), "store_error"
        if self._health.down:
            self._health.answered()
        return fetched, None

    def _count(self, served: Served, outcomes: Outcomes) -> None:
        decision = outcomes.decision
        tally = self.metrics.decisions
        slots = served.slots
        for slot, answer in decision.slots.items():
            if slot in slots:  # unknown slots are the caller's text: never a label
                tally[slot, answer.rule or (DEFAULT_RULE if answer.content is not None else NO_RULE)] += 1
        for model in decision.models_run:
            self.metrics.model_calls.labels(model).inc()
        if self._sample_every and not decision.degraded and outcomes.consent:
            self._until_sample -= 1
            if self._until_sample <= 0:
                self._until_sample = self._sample_every
                self._sample(served.decider, outcomes)

    def _sample(self, decider: Decider, outcomes: Outcomes) -> None:
        """Queue a decision for the statistics; they are counted once the response is on its way.

        Evaluating every predicate of a large ruleset costs many times a
        decision, so the sampled request must not wait for it.
        """
        pending = self._sampled
        if len(pending) >= MAX_PENDING_SAMPLES:
            return  # falling behind under load: a statistic can skip a few samples
        pending.append((decider, outcomes))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._learn)

    def _learn(self) -> None:
        predicates = self.predicates
        pending, self._sampled = self._sampled, []
        for decider, outcomes in pending:
            for text, held in predicate_outcomes(decider, outcomes):
                entry = predicates.get(text)
                if entry is None:
                    entry = predicates[text] = [0, 0]
                entry[0] += 1
                entry[1] += held

    def response(
        self, served: Served, outcomes: Outcomes, decision_id: str, *, explained: bool = False
    ) -> dict[str, Any]:
        """The JSON body of a decision (and its explanation)."""
        decision = outcomes.decision
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "ruleset": served.ref,
            "slots": {slot: answer.to_dict() for slot, answer in decision.slots.items()},
            "degraded": decision.degraded,
        }
        if explained:
            body["explain"] = explain(served.decider, outcomes).to_dict()
        return body

    def new_decision_id(self, consent: bool = True) -> str:
        """Unique across the server's processes and restarts: a random per-process prefix and a counter.

        A decision without consent says so in its id, so feedback on it is dropped unread.
        """
        decision_id = f"{self._id_prefix}{next(self._ids):016x}"
        return decision_id if consent else decision_id_without_consent(decision_id)

    def listen(self, listener: Callable[[DecisionRecord], None]) -> None:
        """Call ``listener`` with the record of every served decision.

        It runs on the event loop once the response is ready, so it must not
        block: a sink queues the record and writes it elsewhere.
        """
        self._listeners.append(listener)

    def publish(
        self, decided: Decided, decision_id: str, user_id: str, context: Mapping[str, Any], at: float | None
    ) -> None:
        """A decision was served (``/v1/decide``): tell the listeners, when there are any.

        Not for a user without consent: nothing about the decision is kept (no join record,
        no exposure, no decision log record).
        """
        if not self._listeners or not decided.outcomes.consent:
            return
        served, outcomes, reason = decided
        when = at if at is not None else time.time()
        record = DecisionRecord.of(decision_id, when, user_id, context, served, outcomes, reason)
        for listener in self._listeners:
            listener(record)

    def statistics(self) -> dict[str, Any]:
        """What ``PredicateStats.load`` reads: pass rates observed since the process started."""
        self._learn()
        return {
            "predicates": {
                text: {"evaluated": evaluated, "held": held}
                for text, (evaluated, held) in sorted(self.predicates.items())
            }
        }

    # --- writes and health ---

    async def without_consent(self, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` whose consent attribute is false (none without ``--consent-attribute``)."""
        if self.consent_attribute is None or not user_ids:
            return set()
        try:
            return await asyncio.wait_for(self.store.declined(user_ids, self.consent_attribute), WRITE_TIMEOUT)
        except Exception as exc:
            raise StoreUnavailable(_unavailable(exc)) from exc

    async def record(self, events: Sequence[Event], declined: Sequence[bool] = ()) -> RecordResult:
        """Apply a batch in one round trip; ``EventRejected`` passes through, store failures become 503s.

        Events of users without consent (``declined[i]``, or the consent attribute) are counted
        in ``dropped_no_consent`` and never reach the store.
        """
        refused = await self.without_consent([event.user_id for event in events])
        kept = [
            event
            for index, event in enumerate(events)
            if event.user_id not in refused and not (index < len(declined) and declined[index])
        ]
        dropped = len(events) - len(kept)
        if dropped:
            self.metrics.no_consent["events"].inc(dropped)
        if not kept:
            return RecordResult(dropped_no_consent=dropped)
        events = kept
        try:
            result = await asyncio.wait_for(self.store.record(events), WRITE_TIMEOUT)
        except EventRejected:
            self.metrics.events["rejected"].inc(len(events))
            raise
        except Exception as exc:
            raise StoreUnavailable(_unavailable(exc)) from exc
        events_metric = self.metrics.events
        events_metric["accepted"].inc(result.accepted)
        events_metric["duplicate"].inc(result.duplicates)
        events_metric["conflict"].inc(result.conflicts)
        events_metric["expired"].inc(result.expired)
        return replace(result, dropped_no_consent=dropped) if dropped else result

    async def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        try:
            await asyncio.wait_for(self.store.set_profile(user_id, attributes), WRITE_TIMEOUT)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        except Exception as exc:
            raise StoreUnavailable(_unavailable(exc)) from exc

    async def ready(self) -> str | None:
        """None when ready to serve, else why not."""
        if self.current is None:
            return "no ruleset is loaded"
        try:
            answers = await asyncio.wait_for(self.store.ping(), PING_TIMEOUT)
        except Exception:
            answers = False
        return None if answers else "the feature store does not answer"

    async def close(self) -> None:
        await self.exposures.flush()
        if self.shared_predictions is not None:
            await self.shared_predictions.flush()
        await self.store.close()


def _unavailable(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "the feature store did not answer in time; retry (events with ids are not counted twice)"
    return f"the feature store is unavailable ({type(exc).__name__})"
