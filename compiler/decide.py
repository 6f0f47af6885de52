"""Running a compiled plan for one request: the hot path.

Stage 0 on the context, one fetch of the store features still needed,
stage 1, then per slot a best-first walk over the surviving candidates.
The caller does the fetch (sync or async), so this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from tailor.dsl.collector import collector_paused

from .caps import CapIndex
from .consent import ConsentPlan
from .experiments import NO_ASSIGNMENT, Assigner, Assignment
from .exposure import ExposureIndex
from .features import FeatureKind, FeatureRef
from .ir import Predicate, predicate_features
from .ruleset import Ruleset
from .stage1_native import native_stage1
from .values import Values

NEEDED_CACHE_SIZE = 4096
_REQUEST_KINDS = (FeatureKind.CONTEXT, FeatureKind.EXPERIMENT)  # known from the request: never fetched

RunModel = Callable[[str, Values], Any]  # (model name, the decision's values) -> probability or None


@dataclass(frozen=True, slots=True)
class SlotDecision:
    """What one slot shows: a content and its payload, and the rule that chose it."""

    content: str | None
    payload: dict[str, Any] | None
    rule: str | None = field(metadata={"doc": "the rule that won; null when the slot's default was served"})

    def to_dict(self) -> dict[str, Any] | None:
        """None when the slot shows nothing."""
        if self.content is None:
            return None
        return {"content": self.content, "payload": self.payload, "rule": self.rule}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SlotDecision:
        if data is None:
            return NOTHING
        return cls(data["content"], data["payload"], data["rule"])


NOTHING = SlotDecision(None, None, None)


class Decision(NamedTuple):
    """One decision. A named tuple: immutable, and the cheapest object to build per request
    (a frozen slotted dataclass takes about three times as long)."""

    slots: dict[str, SlotDecision]
    ruleset: str
    version: str
    models_run: tuple[str, ...] = ()
    fetched: tuple[str, ...] = ()
    degraded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "slots": {slot: answer.to_dict() for slot, answer in self.slots.items()},
            "ruleset": self.ruleset,
            "version": self.version,
            "models_run": list(self.models_run),
            "fetched": list(self.fetched),
            "degraded": self.degraded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            {slot: SlotDecision.from_dict(answer) for slot, answer in data["slots"].items()},
            data["ruleset"],
            data["version"],
            tuple(data["models_run"]),
            tuple(data["fetched"]),
            data["degraded"],
        )


class Outcomes:
    """What a decision knew: its values and which candidates survived the tables.

    The values are built only when something reads them (a stage-2 check,
    explain): most decisions are settled by the tables alone.
    """

    __slots__ = ("_factory", "_values", "alive", "assignment", "consent", "decision", "read")

    def __init__(
        self,
        decision: Decision,
        values: Values | None,
        alive: int,
        factory: Callable[[], Values],
        read: Mapping[str, Any],
        assignment: Assignment = NO_ASSIGNMENT,
        consent: bool = True,
    ):
        self.decision = decision
        self.consent = consent  # False: the user declined personalization, and rules needing consent were skipped
        self.alive = alive
        self.read = read  # the store's and the request's feature values stages 1 and 2 read
        self.assignment = assignment  # the arms drawn before stage 0, and whether the user is held out
        self._values = values
        self._factory = factory

    @property
    def known(self) -> Values | None:
        """The values stage 2 built, without building them: None when the tables settled it all."""
        return self._values

    @property
    def values(self) -> Values:
        if self._values is None:
            self._values = self._factory()
        return self._values


class Decider:
    """Precomputed per-ruleset state for deciding fast."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        plan = ruleset.plan
        self._plan = plan
        self._compiled = ruleset.compiled
        self._walk = ruleset.compiled.walk
        self._stage1 = native_stage1(plan, ruleset.compiled.stage1)  # the C helper's when it is built
        self._types = {text: _type_of(plan, text) for text in plan.features}
        self._slot_masks = {name: slot.mask for name, slot in plan.slots.items()}
        # One immutable answer per rule and per default, shared by every decision, indexed as
        # the generated walk's choices are: by bit, then each slot's default. As many objects as
        # rules, all kept: like the compiler's stages, made without the cyclic collector scanning
        # the whole compiled ruleset for them (seconds at 100,000 rules, freeing nothing).
        with collector_paused():
            self._choices = (
                *(
                    SlotDecision(c.rule.content, ruleset.payload(c.rule.content), c.rule.name)
                    for c in plan.conjunctions
                ),
                *(
                    SlotDecision(slot.default, ruleset.payload(slot.default), None) if slot.default else NOTHING
                    for slot in plan.slots.values()
                ),
            )
        self._needed_by_alive: dict[int, tuple[str, ...]] = {}
        self.caps = CapIndex.of(plan)  # which candidates are capped: explain.capped_rules reads it
        # Experiments and the holdout, when the ruleset has any: drawn from the user id before stage 0.
        self.assigner = Assigner(plan.experiments, plan.holdout) if plan.experiments or plan.holdout else None

    @cached_property
    def predicate_index(self) -> list[tuple[Predicate, str, tuple[str, ...]]]:
        """For sampling: each predicate with its text and the store features it reads.

        Built when a decision is first sampled: printing every predicate's text
        takes seconds at 100,000 rules, and most engines never sample.
        """
        return [
            (p, p.text(), tuple(r.text for r in predicate_features(p) if r.kind not in _REQUEST_KINDS))
            for p in self._plan.predicates
        ]

    @property
    def choices(self) -> tuple[SlotDecision, ...]:
        """Every answer a slot can get (each rule's, each default's): shared by all decisions, never copied."""
        return self._choices

    @cached_property
    def consent(self) -> ConsentPlan:
        """Which candidates need consent: built on the first decision for a user who declined."""
        return ConsentPlan.of(self._plan)

    @cached_property
    def exposure_index(self) -> ExposureIndex:
        """What exposure needs of the plan: built on the first record of a decision that drew an arm."""
        return ExposureIndex(self._plan)

    def _needed(self, alive: int) -> tuple[str, ...]:
        """Store features to fetch; requests with the same context share the answer."""
        cache = self._needed_by_alive
        needed = cache.get(alive)
        if needed is None:
            if len(cache) >= NEEDED_CACHE_SIZE:
                cache.clear()
            needed = cache[alive] = tuple(self._compiled.needed(alive))
        return needed

    def assign(self, user_id: str | None, supplied: Mapping[str, Any] | None = None) -> Assignment:
        """The request's experiment arms and holdout (``Assigner.assign``); nothing to draw without experiments."""
        assigner = self.assigner
        return NO_ASSIGNMENT if assigner is None else assigner.assign(user_id, supplied)

    def begin(
        self,
        context: Mapping[str, Any],
        slots: Iterable[str] | None = None,
        assignment: Assignment = NO_ASSIGNMENT,
        consent: bool = True,
    ) -> tuple[int, tuple[str, ...]]:
        """Stage 0: the surviving candidates of the requested slots, and the store features they still need.

        A user in the holdout has none: every slot gets its default, and nothing is fetched.
        For a user without ``consent`` the rules that need it are removed here, so their
        features are not needed.
        """
        if assignment.holdout:
            return 0, ()
        if self._plan.experiments:
            alive = self._compiled.stage0(context, assignment.arms)
        else:
            alive = self._compiled.stage0(context)
        if not consent:
            alive &= ~self.consent.mask
        if slots is not None:
            masks = self._slot_masks
            alive &= sum(masks.get(slot, 0) for slot in set(slots))
        needed = self._needed_by_alive.get(alive)
        return alive, needed if needed is not None else self._needed(alive)

    def refs(self, texts: Iterable[str]) -> list[FeatureRef]:
        features = self._plan.features
        return [features[text] for text in texts]

    def finish(
        self,
        context: Mapping[str, Any],
        alive: int,
        needed: tuple[str, ...],
        fetched: Mapping[str, Any],
        slots: Iterable[str] | None = None,
        run_model: RunModel | None = None,
        degraded: bool = False,
        assignment: Assignment = NO_ASSIGNMENT,
        consent: bool = True,
    ) -> Outcomes:
        """Stages 1 and 2, once the store features have been fetched.

        Without ``consent`` (learnt from the store's answer, when the request did not say) the
        rules that need it are removed before stage 1, and only what was read counts as fetched.
        """
        if not consent:
            plan = self.consent
            alive &= ~plan.mask
            needed = plan.without_personal(needed)
        alive = self._stage1(alive, fetched)

        def make_values() -> Values:
            return Values(context, fetched, self._plan.features, self._types, run_model, assignment.arms)

        result, values = self._walk(alive, make_values, self._choices)
        if slots is not None:
            result = {slot: result.get(slot, NOTHING) for slot in slots}
        ruleset = self.ruleset
        if values is not None:
            models_run = tuple(values.models_run)
            degraded = degraded or bool(values.models_failed)
        else:
            models_run = ()
        decision = Decision(result, ruleset.name, ruleset.version, models_run, needed, degraded)
        return Outcomes(decision, values, alive, make_values, fetched, assignment, consent)


def _type_of(plan: Any, text: str) -> str:
    from .plan import value_type

    return value_type(plan.features[text], plan.attribute_kinds)
