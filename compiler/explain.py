"""Why a decision came out as it did: per slot, the better-ranked rules and what stopped each.

``explain`` replays a decision with the values it read (it never fetches
more) and reports the winner, the rules ranked above it that did not fire
with the value that stopped each one, and how many lower rules were never
looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .caps import RuleCap
from .consent import SKIPPED
from .decide import Decider, Decision, Outcomes, SlotDecision
from .experiments import ArmDraw, HoldoutDraw, arm_draws, holdout_draw
from .features import FeatureKind
from .ir import All, Atom, Predicate, Test, value_text
from .plan import Conjunction, PlannedRule
from .values import Values, condition_value, predicate_value

# How a candidate came out: it won its slot; its condition did not hold (false or
# unknown); its condition held but its cap stopped it; or the user declined
# personalization and the rule reads personal data, so it was skipped unevaluated.
Outcome = Literal["won", "unmet", "capped", "needs_consent"]


@dataclass(frozen=True, slots=True)
class CandidateTrace:
    """A rule ranked at or above the winner of its slot, and why it won or lost."""

    rule: str
    priority: int
    content: str
    won: bool
    reason: str  # e.g. 'p_click = 0.62, needed > 0.7', or 'capped: 3 impressions in 24h, cap 3'
    file: str = ""
    line: int = 0
    outcome: Outcome = field(
        default="unmet",
        metadata={
            "doc": "won; unmet: its condition was false or unknown; capped: it held, but its cap stopped it;"
            " needs_consent: the user declined and the rule reads personal data, so it was skipped"
        },
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "priority": self.priority,
            "content": self.content,
            "won": self.won,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateTrace:
        return cls(
            data["rule"],
            data["priority"],
            data["content"],
            data["won"],
            data["reason"],
            data.get("file", ""),
            data.get("line", 0),
            data.get("outcome", "won" if data["won"] else "unmet"),
        )


@dataclass(frozen=True, slots=True)
class SlotTrace:
    """One slot's answer and the candidates that were looked at for it, best first."""

    slot: str
    decision: SlotDecision
    served: Literal["rule", "default", "nothing"]
    candidates: tuple[CandidateTrace, ...]
    outranked: int = field(metadata={"doc": "rules ranked below the winner, never looked at"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "served": self.served,
            "decision": self.decision.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "outranked": self.outranked,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotTrace:
        return cls(
            data["slot"],
            SlotDecision.from_dict(data.get("decision")),
            data.get("served", "nothing"),
            tuple(CandidateTrace.from_dict(c) for c in data.get("candidates", ())),
            data.get("outranked", 0),
        )


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a decision came out as it did. Its fields are what ``POST /v1/explain`` sends.

    ``decision`` is the decision explained, for callers in the same process;
    it takes no part in equality, since the JSON does not carry its ruleset,
    version or degraded flag (the response around it does).
    """

    slots: dict[str, SlotTrace]
    fetched: tuple[str, ...]  # the store features the decision read
    models: dict[str, Any]  # each model run, in the order it ran, with its score
    model_inputs: dict[str, dict[str, float | None]]  # per model run: input -> value (NaN, null in JSON: unknown)
    values: dict[str, Any] = field(metadata={"doc": "every feature value the decision read, by feature text"})
    decision: Decision = field(compare=False, repr=False)
    experiments: dict[str, ArmDraw] = field(
        default_factory=dict,
        metadata={"optional": True, "doc": "each experiment's arm for this user, and how it was drawn"},
    )
    holdout: HoldoutDraw | None = field(
        default=None, metadata={"optional": True, "doc": "whether the user is in the ruleset's holdout, and why"}
    )

    def to_dict(self) -> dict[str, Any]:
        """``experiments`` and ``holdout`` only when the ruleset declares them."""
        out = {
            "slots": {name: trace.to_dict() for name, trace in self.slots.items()},
            "fetched": list(self.fetched),
            "models": self.models,
            "model_inputs": self.model_inputs,
            "values": self.values,
        }
        if self.experiments:
            out["experiments"] = {name: draw.to_dict() for name, draw in self.experiments.items()}
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, ruleset: str = "", version: str = "", degraded: bool = False
    ) -> Explanation:
        """``ruleset``, ``version`` and ``degraded`` are not in the explanation's JSON: give them for ``decision``."""
        slots = {name: SlotTrace.from_dict({"slot": name, **trace}) for name, trace in data.get("slots", {}).items()}
        fetched = tuple(data.get("fetched", ()))
        models = dict(data.get("models", {}))
        answers = {name: trace.decision for name, trace in slots.items()}
        decision = Decision(answers, ruleset, version, tuple(models), fetched, degraded)
        experiments = {name: ArmDraw.from_dict(draw) for name, draw in data.get("experiments", {}).items()}
        holdout = HoldoutDraw.from_dict(data["holdout"]) if data.get("holdout") else None
        return cls(
            slots,
            fetched,
            models,
            dict(data.get("model_inputs", {})),
            dict(data.get("values", {})),
            decision,
            experiments,
            holdout,
        )

    def render(self) -> str:
        """Plain text for people: per slot, the answer and why better rules lost."""
        lines = []
        if self.holdout is not None:
            lines.append(self.holdout.render())
        lines.extend(draw.render(name) for name, draw in self.experiments.items())
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
        if self.fetched:
            lines.append("fetched: " + ", ".join(self.fetched))
        for model, score in self.models.items():
            lines.append(f"model {model} = {_show(score)}")
            for text, value in self.model_inputs.get(model, {}).items():
                lines.append(f"  {text} = {'unknown' if value != value else _show(value)}")
        return "\n".join(lines)


def explain(decider: Decider, outcomes: Outcomes) -> Explanation:
    plan = decider.ruleset.plan
    decision = outcomes.decision
    values = outcomes.values
    assignment = outcomes.assignment
    traces: dict[str, SlotTrace] = {}
    for slot, answer in decision.slots.items():
        slot_plan = plan.slots.get(slot)
        if slot_plan is None or assignment.holdout:  # held out: no rule is looked at, so none is evaluated here
            served_as = "default" if answer.content is not None and slot_plan is not None else "nothing"
            traces[slot] = SlotTrace(slot, answer, served_as, (), 0)
            continue
        by_rule: dict[str, list[Conjunction]] = {}
        for bit in range(slot_plan.first_bit, slot_plan.last_bit + 1):
            conjunction = plan.conjunctions[bit]
            by_rule.setdefault(conjunction.rule.name, []).append(conjunction)
        candidates = []
        outranked = 0
        won = False
        skipped = decider.consent.rules if not outcomes.consent else {}
        for conjunctions in by_rule.values():
            rule = conjunctions[0].rule
            if won:
                outranked += 1
                continue
            if rule.name in skipped:  # never evaluated: its values were not read, and are not read here
                reads = ", ".join(skipped[rule.name][:3]) + (", …" if len(skipped[rule.name]) > 3 else "")
                candidates.append(_trace(rule, "needs_consent", f"{SKIPPED} (reads {reads})"))
            elif answer.rule == rule.name:
                won = True
                candidates.append(_trace(rule, "won", _holds_reason(conjunctions, values, outcomes.alive)))
            elif rule.cap is not None and any(_held_but_for_cap(c, rule.cap, values) for c in conjunctions):
                candidates.append(_trace(rule, "capped", rule.cap.reason(values[rule.cap.feature.text])))
            else:
                candidates.append(_trace(rule, "unmet", _failure_reason(conjunctions, values, rule.cap)))
        served = "rule" if answer.rule else ("default" if answer.content else "nothing")
        traces[slot] = SlotTrace(slot, answer, served, tuple(candidates), outranked)
    models = {name: values.get(name) for name in decision.models_run}
    return Explanation(
        traces,
        decision.fetched,
        models,
        dict(values.model_inputs),
        dict(values),
        decision,
        arm_draws(plan.experiments, assignment),
        holdout_draw(plan.holdout, assignment),
    )


def capped_rules(decider: Decider, outcomes: Outcomes) -> tuple[str, ...]:
    """The rules this decision's caps stopped: each held, but for its cap, ranked above what its slot served.

    What the rule-health report counts per rule: a capped rule ranked below the
    winner would not have been shown anyway, so it is not counted. Cheap when
    nothing was capped (a mask test per slot); it never fetches, and never runs
    a model: only the atoms the tables settle are asked (see ``_held_but_for_cap``).
    """
    masks = decider.caps.masks
    if not masks:
        return ()
    plan = decider.ruleset.plan
    alive = outcomes.alive
    found: list[str] = []
    for slot, answer in outcomes.decision.slots.items():
        capped = masks.get(slot, 0) & ~alive
        if not capped:
            continue
        if answer.rule is not None:
            capped &= (1 << _winning_bit(plan.conjunctions, alive, plan.slots[slot].mask, answer.rule)) - 1
        while capped:
            lowest = capped & -capped
            capped ^= lowest
            conjunction = plan.conjunctions[lowest.bit_length() - 1]
            rule = conjunction.rule
            assert rule.cap is not None
            if (not found or found[-1] != rule.name) and _held_but_for_cap(conjunction, rule.cap, outcomes.values):
                found.append(rule.name)
    return tuple(found)


def _winning_bit(conjunctions: tuple[Conjunction, ...], alive: int, mask: int, rule: str) -> int:
    """The bit that won for ``rule``: its best surviving conjunction (no check of a better one held)."""
    candidates = alive & mask
    while candidates:
        lowest = candidates & -candidates
        bit = lowest.bit_length() - 1
        if conjunctions[bit].rule.name == rule:
            return bit
        candidates ^= lowest
    return 0


def _held_but_for_cap(conjunction: Conjunction, cap: RuleCap, values: Values) -> bool:
    """Whether the cap is what stopped this conjunction: its cap fails and everything else the tables settle holds.

    Only the atoms are asked, never the stage-2 checks: a capped candidate never
    reaches stage 2, so no model runs to tell. A condition too large to expand is
    evaluated as a whole, without its cap.
    """
    if predicate_value(cap.atom, values) is not False:
        return False
    if conjunction.formula is not None:
        items = conjunction.formula.items if isinstance(conjunction.formula, All) else ()
        return all(condition_value(item, values) is True for item in items if item != cap.atom)
    return all(predicate_value(atom, values) is True for atom in conjunction.atoms if atom != cap.atom)


def _trace(rule: PlannedRule, outcome: Outcome, reason: str) -> CandidateTrace:
    won = outcome == "won"
    return CandidateTrace(rule.name, rule.priority, rule.content, won, reason, rule.file, rule.line, outcome)


def _failure_reason(conjunctions: list[Conjunction], values: Values, cap: RuleCap | None) -> str:
    reasons = []
    for conjunction in conjunctions:
        if conjunction.formula is not None:
            verdict = condition_value(conjunction.formula, values)
            reasons.append("its condition is " + ("unknown" if verdict is None else "false"))
            continue
        atoms = conjunction.atoms
        if cap is not None:  # the condition's own atoms first: the cap is to blame only if they hold
            atoms = (*(atom for atom in atoms if atom != cap.atom), cap.atom)
        # Tables first, as the decision did; a model is only read if the tables let this rule through.
        for predicate in (*atoms, *conjunction.residual):
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
    return "unknown" if value is None else value_text(value)
