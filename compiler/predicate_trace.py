"""Each predicate of each rule asked in a decision, with its value and its truth: the explain trace to draw.

``explain`` says what stopped a rule, in one line. The console draws the
trace onto the rule's text instead, so it needs every predicate: true,
false, unknown (a value the store did not have), or unread (the decision
never needed it, and this never fetches it or runs a model for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .decide import Decider, Outcomes
from .features import FeatureKind
from .ir import All, Any_, Atom, Condition, Predicate, Test, value_text
from .values import predicate_value

Truth = Literal["true", "false", "unknown", "unread"]


@dataclass(frozen=True, slots=True)
class PredicateTruth:
    """One predicate as a decision found it: ``p_click 0.62, needed > 0.7`` and false."""

    rule: str
    text: str  # the predicate as the compiler prints it: views("Electronics", 24h) > 2
    feature: str | None  # the feature it compares, when it compares one to a constant
    truth: Truth
    shown: str  # its value and what was needed

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "text": self.text, "feature": self.feature, "truth": self.truth, "shown": self.shown}


def predicate_truths(decider: Decider, outcomes: Outcomes) -> tuple[PredicateTruth, ...]:
    """The predicates of every rule of the slots decided, in rank order, each once per rule."""
    values = dict(outcomes.values)  # the values read: looking up another raises, never fetches
    slots = outcomes.decision.slots
    found: list[PredicateTruth] = []
    for rule in decider.ruleset.plan.rules:
        if rule.slot not in slots:
            continue
        seen: set[str] = set()
        for predicate in _leaves(rule.condition):
            text = predicate.text()
            if text not in seen:
                seen.add(text)
                found.append(_truth(rule.name, predicate, values))
    return tuple(found)


def _leaves(condition: Condition) -> list[Predicate]:
    if isinstance(condition, All | Any_):
        return [leaf for item in condition.items for leaf in _leaves(item)]
    if isinstance(condition, Atom | Test):
        return [condition]
    return []  # a constant truth


def _truth(rule: str, predicate: Predicate, values: dict[str, Any]) -> PredicateTruth:
    text = predicate.text()
    try:
        verdict = predicate_value(predicate, values)
    except KeyError:
        return PredicateTruth(rule, text, _feature(predicate), "unread", f"{text}: not read by this decision")
    truth: Truth = "unknown" if verdict is None else ("true" if verdict else "false")
    if not isinstance(predicate, Atom):
        return PredicateTruth(rule, text, None, truth, f"{text} is {truth}")
    feature = predicate.feature.text
    value = values[feature]
    if isinstance(value, float) and predicate.feature.kind is FeatureKind.MODEL:
        value = round(value, 4)  # a score's float32 tail says nothing
    shown = "unknown" if value is None else value_text(value)
    return PredicateTruth(rule, text, feature, truth, f"{feature} {shown}, needed {text[len(feature) + 1 :]}")


def _feature(predicate: Predicate) -> str | None:
    return predicate.feature.text if isinstance(predicate, Atom) else None
