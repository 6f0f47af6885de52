"""Running a compiled plan for one request, and explaining the result.

``decide`` is the hot path: stage 0 on the context, one fetch of the store
features still needed, stage 1, then per slot a best-first walk over the
surviving candidates. ``explain`` replays the same decision with the same
values and reports, per slot, why each better-ranked rule did not win.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .features import FeatureKind, FeatureRef
from .ir import Atom, Predicate, Test, predicate_features
from .plan import Conjunction, PlannedRule
from .ruleset import Ruleset
from .values import Values, condition_value, predicate_value

NEEDED_CACHE_SIZE = 4096

RunModel = Callable[[str, Values], Any]  # (model name, the decision's values) -> probability or None


@dataclass(frozen=True, slots=True)
class SlotDecision:
    content: str | None
    payload: dict[str, Any] | None
    rule: str | None

    def to_dict(self) -> dict[str, Any] | None:
        if self.content is None:
            return None
        return {"content": self.content, "payload": self.payload, "rule": self.rule}


NOTHING = SlotDecision(None, None, None)


class Decision(NamedTuple):
    """One decision. A named tuple: immutable, and the cheapest object to build per request."""

    slots: dict[str, SlotDecision]
    ruleset: str
    version: str
    models_run: tuple[str, ...] = ()
    fetched: tuple[str, ...] = ()
    degraded: bool = False


class Outcomes:
    """What a decision knew: its values and which candidates survived the tables.

    The values are built only when something reads them (a stage-2 check,
    explain): most decisions are settled by the tables alone.
    """

    __slots__ = ("_factory", "_values", "alive", "decision")

    def __init__(self, decision: Decision, values: Values | None, alive: int, factory: Callable[[], Values]):
        self.decision = decision
        self.alive = alive
        self._values = values
        self._factory = factory

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
        self._types = {text: _type_of(plan, text) for text in plan.features}
        # One immutable answer per rule and per default, shared by every decision.
        self._answers = [
            SlotDecision(c.rule.content, ruleset.payload(c.rule.content), c.rule.name) for c in plan.conjunctions
        ]
        self._slot_masks = {name: slot.mask for name, slot in plan.slots.items()}
        self._defaults = {
            name: SlotDecision(slot.default, ruleset.payload(slot.default), None) if slot.default else NOTHING
            for name, slot in plan.slots.items()
        }
        self._slot_plans = tuple((name, self._slot_masks[name], self._defaults[name]) for name in plan.slots)
        self._needed_by_alive: dict[int, tuple[str, ...]] = {}
        # For sampling: each predicate with its text and the non-context features it reads.
        self.predicate_index = [
            (p, p.text(), tuple(r.text for r in predicate_features(p) if r.kind is not FeatureKind.CONTEXT))
            for p in plan.predicates
        ]

    def _needed(self, alive: int) -> tuple[str, ...]:
        """Store features to fetch; requests with the same context share the answer."""
        cache = self._needed_by_alive
        needed = cache.get(alive)
        if needed is None:
            if len(cache) >= NEEDED_CACHE_SIZE:
                cache.clear()
            needed = cache[alive] = tuple(self._compiled.needed(alive))
        return needed

    def begin(self, context: Mapping[str, Any], slots: Iterable[str] | None = None) -> tuple[int, tuple[str, ...]]:
        """Stage 0: the surviving candidates of the requested slots, and the store features they still need."""
        alive = self._compiled.stage0(context)
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
    ) -> Outcomes:
        """Stages 1 and 2, once the store features have been fetched."""
        alive = self._compiled.stage1(alive, fetched)
        values: Values | None = None

        def make_values() -> Values:
            return Values(context, fetched, self._plan.features, self._types, run_model)

        checks = self._compiled.checks
        answers = self._answers
        result: dict[str, SlotDecision] = {}
        for slot, mask, default in self._slot_plans if slots is None else self._requested(slots):
            candidates = alive & mask
            answer = default
            while candidates:
                lowest = candidates & -candidates
                bit = lowest.bit_length() - 1
                check = checks[bit]
                if check is None:
                    answer = answers[bit]
                    break
                if values is None:
                    values = make_values()
                if check(values):
                    answer = answers[bit]
                    break
                candidates ^= lowest
            result[slot] = answer
        ruleset = self.ruleset
        if values is not None:
            models_run = tuple(values.models_run)
            degraded = degraded or bool(values.models_failed)
        else:
            models_run = ()
        decision = Decision(result, ruleset.name, ruleset.version, models_run, needed, degraded)
        return Outcomes(decision, values, alive, make_values)

    def _requested(self, slots: Iterable[str]) -> list[tuple[str, int, SlotDecision]]:
        masks, defaults = self._slot_masks, self._defaults
        return [(slot, masks.get(slot, 0), defaults.get(slot, NOTHING)) for slot in slots]

    def decide(
        self,
        context: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        run_model: RunModel | None = None,
    ) -> Outcomes:
        """The whole decision with every store feature supplied by the caller."""
        context = context if context is not None else {}
        slots = tuple(slots) if slots is not None else None
        alive, needed = self.begin(context, slots)
        return self.finish(context, alive, needed, features if features is not None else {}, slots, run_model)


def _type_of(plan: Any, text: str) -> str:
    from .plan import value_type

    return value_type(plan.features[text], plan.attribute_types)


# --- explain ---


@dataclass(frozen=True, slots=True)
class CandidateTrace:
    rule: str
    priority: int
    content: str
    won: bool
    reason: str  # e.g. 'p_click = 0.62, needed > 0.7'
    file: str = ""
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "priority": self.priority,
            "content": self.content,
            "won": self.won,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class SlotTrace:
    slot: str
    decision: SlotDecision
    served: str  # "rule", "default" or "nothing"
    candidates: tuple[CandidateTrace, ...]
    outranked: int  # rules ranked below the winner, never looked at

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "served": self.served,
            "decision": self.decision.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "outranked": self.outranked,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    slots: dict[str, SlotTrace]
    values: dict[str, Any] = field(default_factory=dict)  # every feature value the decision read
    model_inputs: dict[str, dict[str, float]] = field(default_factory=dict)  # per model run: input -> value

    def to_dict(self) -> dict[str, Any]:
        return {
            "slots": {name: trace.to_dict() for name, trace in self.slots.items()},
            "fetched": list(self.decision.fetched),
            "models": {name: self.values.get(name) for name in self.decision.models_run},
            "model_inputs": self.model_inputs,
            "values": self.values,
        }

    def render(self) -> str:
        """Plain text for people: per slot, the answer and why better rules lost."""
        lines = []
        for name, trace in self.slots.items():
            answer = trace.decision.content or "nothing"
            how = {"rule": f"rule {trace.decision.rule}", "default": "the slot's default", "nothing": "no rule fired"}
            lines.append(f"{name}: {answer}  (by {how[trace.served]})")
            for candidate in trace.candidates:
                mark = "✓" if candidate.won else "✗"
                where = f"  [{candidate.file}:{candidate.line}]" if candidate.file else ""
                lines.append(
                    f"  {mark} {candidate.rule} (priority {candidate.priority}) -> {candidate.content}: "
                    f"{candidate.reason}{where}"
                )
            if trace.outranked:
                lines.append(f"  … {trace.outranked} lower-ranked rule(s) not considered")
        if self.decision.fetched:
            lines.append("fetched: " + ", ".join(self.decision.fetched))
        for model in self.decision.models_run:
            lines.append(f"model {model} = {_show(self.values.get(model))}")
            for text, value in self.model_inputs.get(model, {}).items():
                lines.append(f"  {text} = {'unknown' if value != value else _show(value)}")
        return "\n".join(lines)


def explain(decider: Decider, outcomes: Outcomes) -> Explanation:
    plan = decider.ruleset.plan
    decision = outcomes.decision
    values = outcomes.values
    traces: dict[str, SlotTrace] = {}
    for slot, answer in decision.slots.items():
        slot_plan = plan.slots.get(slot)
        if slot_plan is None:
            traces[slot] = SlotTrace(slot, answer, "nothing", (), 0)
            continue
        by_rule: dict[str, list[Conjunction]] = {}
        for bit in range(slot_plan.first_bit, slot_plan.last_bit + 1):
            conjunction = plan.conjunctions[bit]
            by_rule.setdefault(conjunction.rule.name, []).append(conjunction)
        candidates = []
        outranked = 0
        won = False
        for conjunctions in by_rule.values():
            rule = conjunctions[0].rule
            if won:
                outranked += 1
                continue
            if answer.rule == rule.name:
                won = True
                candidates.append(_trace(rule, True, _holds_reason(conjunctions, values, outcomes.alive)))
            else:
                candidates.append(_trace(rule, False, _failure_reason(conjunctions, values)))
        served = "rule" if answer.rule else ("default" if answer.content else "nothing")
        traces[slot] = SlotTrace(slot, answer, served, tuple(candidates), outranked)
    return Explanation(decision, traces, dict(values), dict(values.model_inputs))


def _trace(rule: PlannedRule, won: bool, reason: str) -> CandidateTrace:
    return CandidateTrace(rule.name, rule.priority, rule.content, won, reason, rule.file, rule.line)


def _failure_reason(conjunctions: list[Conjunction], values: Values) -> str:
    reasons = []
    for conjunction in conjunctions:
        if conjunction.formula is not None:
            verdict = condition_value(conjunction.formula, values)
            reasons.append("its condition is " + ("unknown" if verdict is None else "false"))
            continue
        # Tables first, as the decision did; a model is only read if the tables let this rule through.
        for predicate in (*conjunction.atoms, *conjunction.residual):
            verdict = predicate_value(predicate, values)
            if verdict is not True:
                reasons.append(_why_not(predicate, values, verdict))
                break
        else:
            reasons.append("its condition holds")
    unique = list(dict.fromkeys(reasons))
    return "; or ".join(unique) if unique else "its condition can never be true"


def _holds_reason(conjunctions: list[Conjunction], values: Values, alive: int) -> str:
    for conjunction in conjunctions:
        if not (alive >> conjunction.bit) & 1:
            continue
        if conjunction.formula is not None:
            return "its condition is true"
        shown = [_shown(p, values) for p in (*conjunction.atoms, *conjunction.residual)]
        return ", ".join(shown) if shown else "it always applies"
    return "its condition is true"


def _shown(predicate: Predicate, values: Values) -> str:
    if isinstance(predicate, Atom):
        return f"{predicate.feature.text} = {_show(values[predicate.feature.text])}"
    return predicate.text()


def _why_not(predicate: Predicate, values: Values, verdict: bool | None) -> str:
    if isinstance(predicate, Atom):
        text = predicate.feature.text
        value = values[text]
        need = predicate.text()[len(text) + 1 :]
        if value is None and predicate.op not in ("missing", "present"):
            return f"{text} is unknown, needed {need}"
        if predicate.feature.kind is FeatureKind.MODEL and isinstance(value, float):
            return f"{text} = {round(value, 4)}, needed {need}"  # a score's float32 tail says nothing
        return f"{text} = {_show(value)}, needed {need}"
    assert isinstance(predicate, Test)
    return f"{predicate.text()} is " + ("unknown" if verdict is None else "false")


def _show(value: Any) -> str:
    from .ir import value_text

    return "unknown" if value is None else value_text(value)


# --- feedback for the optimizer ---


def predicate_outcomes(decider: Decider, outcomes: Outcomes) -> list[tuple[str, bool]]:
    """(predicate text, held) for every predicate this decision could evaluate without new reads.

    The runtime samples decisions through this to learn pass rates; it reads
    only values the decision already had, so it never fetches or runs a model.
    """
    values = outcomes.values
    known = set(outcomes.decision.fetched) | set(values)
    results = []
    for predicate, text, refs in decider.predicate_index:
        if not all(ref in known for ref in refs):
            continue
        verdict = predicate_value(predicate, values)
        if verdict is not None:
            results.append((text, verdict))
    return results
