"""Logged decisions replayed against a ruleset: which rules' conditions held, and which of them won.

A logged decision holds the request's context and the feature values it read,
so its rules can be judged again without a store. Not every value is there:
stage 0 fetched only the store features of the candidates the context left
(a rule the context ruled out has a context predicate that is not true, so it
is judged without its store features), and stage 2 ran a model only for
rules ranked above the first that held. A predicate that reads a value the
decision never read is *unread*, never a guess: a missing count is not 0.

A rule's condition is in negation normal form, so it is monotone in its
predicates' truth (false < unknown < true): replayed once with every unread
predicate true and once with every one false, the two answers bound every
answer the decision could have had. The rule *held* when even the low one is
true, did *not hold* when even the high one is not (false or unknown: either
way it could not fire), and is *unjudged* otherwise.

A frequency cap is judged apart from the condition it guards: a rule whose
condition held is *capped* when the impressions its cap counts were read and
at the cap. Which rule won is read from the log when the decision was made by
this very ruleset (same version): a rule that held and ranked above the
logged winner was stopped by its cap. A decision made by another version is
the question "what would these rules have done", answered by replay alone:
the first rule that held and was not capped wins, unless an unjudged rule
ranks above it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .features import FeatureKind, FeatureRef
from .ir import All, Any_, Condition, Predicate, Truth, predicate_features
from .plan import Conjunction, PlannedRule, value_type
from .ruleset import Ruleset
from .values import Values, predicate_value


class Verdict(StrEnum):
    HELD = "held"
    NOT_HELD = "not_held"  # false or unknown: the rule could not fire
    UNJUDGED = "unjudged"  # it turns on a value the decision never read


class Outcome(StrEnum):
    """What became of a rule whose condition held."""

    WON = "won"
    BEATEN = "beaten"  # a higher-ranked rule won
    CAPPED = "capped"  # nothing ranked above it won, yet it did not: its frequency cap stopped it
    UNSETTLED = "unsettled"  # replayed on another version, below a rule that cannot be judged


@dataclass(frozen=True, slots=True)
class RuleReplay:
    """One rule in one replayed decision."""

    rule: str
    verdict: Verdict
    outcome: Outcome | None = None  # None unless it held
    beaten_by: str | None = None


@dataclass(frozen=True, slots=True)
class RuleTally:
    """One rule over many replayed decisions."""

    rule: str
    decisions: int = field(metadata={"doc": "decisions that asked for the rule's slot"})
    judged: int = field(metadata={"doc": "those whose values settle the rule's condition"})
    candidates: int = field(metadata={"doc": "those where its condition held"})
    wins: int
    capped: int
    unsettled: int
    beaten_by: dict[str, int] = field(metadata={"doc": "the rules that won when it held but ranked lower"})

    @property
    def candidate_rate(self) -> float | None:
        return self.candidates / self.judged if self.judged else None

    @property
    def beaten(self) -> int:
        return sum(self.beaten_by.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "decisions": self.decisions,
            "judged": self.judged,
            "candidates": self.candidates,
            "candidate_rate": self.candidate_rate,
            "wins": self.wins,
            "capped": self.capped,
            "unsettled": self.unsettled,
            "beaten_by": dict(self.beaten_by),
        }


_UNREAD: Any = object()  # a predicate that reads a value the decision never read

VerdictOf = Callable[[Predicate], Any]  # a predicate's truth in one decision: True, False, None or _UNREAD


class Replayer:
    """Replays decisions against one ruleset and counts, per rule, what happened."""

    def __init__(self, ruleset: Ruleset):
        plan = ruleset.plan
        self.ruleset = ruleset
        self._refs = plan.features
        self._types = {text: value_type(ref, plan.attribute_kinds) for text, ref in plan.features.items()}
        self._ranked: dict[str, list[PlannedRule]] = {slot: [] for slot in plan.slots}
        for rule in plan.rules:  # in rank order within each slot
            self._ranked[rule.slot].append(rule)
        self._conjunctions: dict[str, list[Conjunction]] = {}
        for conjunction in plan.conjunctions:
            self._conjunctions.setdefault(conjunction.rule.name, []).append(conjunction)
        self._inputs: dict[Predicate, tuple[FeatureRef, ...]] = {}
        self._experiments = tuple(plan.experiments)
        self.replayed = 0
        self.mismatched = 0  # slots replayed whose logged winner did not hold on replay: never, unless a bug
        self._counts: dict[str, Counter[str]] = {rule.name: Counter() for rule in plan.rules}
        self._beaten: dict[str, Counter[str]] = {rule.name: Counter() for rule in plan.rules}

    def replay(
        self,
        context: Mapping[str, Any],
        features: Mapping[str, Any],
        models: Mapping[str, float | None],
        served: Mapping[str, str | None],
        logged: bool = True,
        arms: Mapping[str, str] | None = None,
    ) -> list[RuleReplay]:
        """Every rule of the slots ``served`` names (slot -> the rule that won it, if any), in rank order.

        ``features`` are the store features the decision read by canonical
        text, ``models`` the scores of the models it ran. ``logged`` says the
        decision was made by this ruleset, so the winners are the log's.
        ``arms`` are the experiments' arms the user was drawn into (the
        record's ``experiments``): an experiment absent from it left the user
        outside its coverage, so its arm is missing, not unread.
        """
        read = {**features, **{name: score for name, score in models.items() if name in self._refs}}
        recorded = set(features) | set(models)
        if arms is not None:
            for name in self._experiments:
                read[name] = arms.get(name)
                recorded.add(name)
        values = Values(context, read, self._refs, self._types)
        verdicts: dict[Predicate, Any] = {}

        def verdict_of(predicate: Predicate) -> Any:
            if predicate in verdicts:
                return verdicts[predicate]
            inputs = self._inputs.get(predicate)
            if inputs is None:
                inputs = self._inputs[predicate] = tuple(predicate_features(predicate))
            if all(ref.kind is FeatureKind.CONTEXT or ref.text in recorded for ref in inputs):
                found = predicate_value(predicate, values)
            else:
                found = _UNREAD
            verdicts[predicate] = found
            return found

        results: list[RuleReplay] = []
        for slot, winner in served.items():
            ranked = self._ranked.get(slot)
            if ranked is None:
                continue
            held = [self._verdict(rule, verdict_of) for rule in ranked]
            capped = [
                verdict is Verdict.HELD and self._capped(rule, verdict_of)
                for rule, verdict in zip(ranked, held, strict=True)
            ]
            results.extend(self._outcomes(ranked, held, capped, winner, logged))
        return results

    def add(
        self,
        context: Mapping[str, Any],
        features: Mapping[str, Any],
        models: Mapping[str, float | None],
        served: Mapping[str, str | None],
        logged: bool = True,
        arms: Mapping[str, str] | None = None,
    ) -> list[RuleReplay]:
        """Replay one decision and count it."""
        results = self.replay(context, features, models, served, logged, arms)
        self.replayed += 1
        for result in results:
            counts = self._counts[result.rule]
            counts["decisions"] += 1
            if result.verdict is Verdict.UNJUDGED:
                continue
            counts["judged"] += 1
            if result.verdict is Verdict.HELD:
                counts["candidates"] += 1
                counts[str(result.outcome)] += 1
                if result.beaten_by is not None:
                    self._beaten[result.rule][result.beaten_by] += 1
        return results

    def tallies(self) -> dict[str, RuleTally]:
        """Each rule's counts so far, by rule name."""
        return {
            name: RuleTally(
                name,
                counts["decisions"],
                counts["judged"],
                counts["candidates"],
                counts[Outcome.WON],
                counts[Outcome.CAPPED],
                counts[Outcome.UNSETTLED],
                dict(self._beaten[name].most_common()),
            )
            for name, counts in self._counts.items()
        }

    def _verdict(self, rule: PlannedRule, verdict_of: VerdictOf) -> Verdict:
        """Held when one of its conjunctions holds whatever the unread values were.

        A cap is not part of the condition here: a rule whose condition held
        but whose cap stopped it held, and ``_outcomes`` says it was capped.
        """
        cap = rule.cap.atom if rule.cap is not None else None
        unjudged = False
        for conjunction in self._conjunctions.get(rule.name, ()):
            if conjunction.formula is not None:
                condition: Condition = _without(conjunction.formula, cap)
            else:
                condition = All(tuple(p for p in (*conjunction.atoms, *conjunction.residual) if p != cap))
            low = _truth(condition, verdict_of, False)
            if low is True:
                return Verdict.HELD
            if _truth(condition, verdict_of, True) is True:
                unjudged = True
        return Verdict.UNJUDGED if unjudged else Verdict.NOT_HELD

    def _capped(self, rule: PlannedRule, verdict_of: VerdictOf) -> bool:
        """Its cap stopped it: the impressions it counts are read, and at the cap."""
        return rule.cap is not None and verdict_of(rule.cap.atom) is False

    def _outcomes(
        self, ranked: list[PlannedRule], held: list[Verdict], capped: list[bool], winner: str | None, logged: bool
    ) -> Iterable[RuleReplay]:
        if logged:
            names = [rule.name for rule in ranked]
            won_at = names.index(winner) if winner in names else len(ranked)
            if won_at < len(ranked) and held[won_at] is Verdict.NOT_HELD:
                self.mismatched += 1
        else:
            won_at = len(ranked)
            for index, verdict in enumerate(held):
                if verdict is Verdict.UNJUDGED or (verdict is Verdict.HELD and not capped[index]):
                    won_at = index  # an unjudged rule settles nothing below it
                    break
            settled = won_at < len(ranked) and held[won_at] is Verdict.HELD
            winner = ranked[won_at].name if settled else None
        for index, (rule, verdict) in enumerate(zip(ranked, held, strict=True)):
            if verdict is not Verdict.HELD:
                yield RuleReplay(rule.name, verdict)
            elif index == won_at:
                yield RuleReplay(rule.name, verdict, Outcome.WON)
            elif index > won_at and winner is not None:
                yield RuleReplay(rule.name, verdict, Outcome.BEATEN, winner)
            elif logged or capped[index]:
                yield RuleReplay(rule.name, verdict, Outcome.CAPPED)
            else:
                yield RuleReplay(rule.name, verdict, Outcome.UNSETTLED)


def _without(condition: Condition, atom: Predicate | None) -> Condition:
    """A conjunction's formula less its cap's atom, which the normalizer appended to it."""
    if atom is None or not isinstance(condition, All) or atom not in condition.items:
        return condition
    return All(tuple(item for item in condition.items if item != atom))


def _truth(condition: Condition, verdict_of: VerdictOf, unread: bool) -> bool | None:
    """Kleene truth of a normal-form condition, with every unread predicate taken as ``unread``."""
    if isinstance(condition, Truth):
        return condition.value
    if isinstance(condition, All | Any_):
        results = [_truth(item, verdict_of, unread) for item in condition.items]
        if isinstance(condition, All):
            if False in results:
                return False
            return None if None in results else True
        if True in results:
            return True
        return None if None in results else False
    found = verdict_of(condition)
    return unread if found is _UNREAD else found
