"""Frequency caps: ``cap N per WINDOW`` at the end of a rule.

A rule capped at N per WINDOW fires only while the user has had fewer than N
impressions of its content in the window: the cap is the predicate
``count("impression", CONTENT, WINDOW) < N``, added to every conjunction of
the rule's condition after normalization. It is an ordinary store-feature
atom with the very text of that call written by hand, so it is fetched in the
decision's one round trip with every other store feature, settled by the
same predicate table, and a rule test can give it like any other feature.

The normalizer adds the cap's atom to the rule's conjunctions without merging
it with the condition's own atoms, so that explain can tell "the condition
held but the cap stopped it" from "the condition did not hold".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, error
from tailor.dsl.printer import expression_text, number_text

from .features import FeatureRef, call_ref
from .ir import Atom, value_text

if TYPE_CHECKING:
    from .plan import DecisionPlan

IMPRESSION_EVENT = "impression"  # the event type a served (or reported) impression is recorded as

CAP_USAGE = "cap 3 per 24h"


@dataclass(frozen=True, slots=True)
class RuleCap:
    """A checked cap: the rule fires only while ``atom`` (impressions < limit) holds."""

    limit: int
    window_text: str  # as written, e.g. "24h"
    atom: Atom  # count("impression", CONTENT, WINDOW) < limit

    @property
    def feature(self) -> FeatureRef:
        return self.atom.feature

    @property
    def text(self) -> str:
        return f"cap {self.limit} per {self.window_text}"

    def reason(self, impressions: Any) -> str:
        """Why it stopped the rule, e.g. ``capped: 3 impressions in 24h, cap 3``."""
        shown = "unknown" if impressions is None else value_text(impressions)
        noun = "impression" if impressions == 1 else "impressions"
        return f"capped: {shown} {noun} in {self.window_text}, cap {self.limit}"


def impressions_call(content: str, cap: ast.Cap) -> ast.Call:
    """The call a cap stands for: ``count("impression", CONTENT, WINDOW)``, window as written."""
    return ast.Call("count", (ast.String(IMPRESSION_EVENT), ast.String(content), cap.window))


def check_cap(cap: ast.Cap) -> list[Diagnostic]:
    """A cap's number must be a whole number, not negative; its window longer than zero."""
    problems = []
    limit = cap.limit.value
    if type(limit) is not int or limit < 0:
        written = number_text(limit)
        problems.append(
            error(
                f"a cap must be a whole number of impressions, 0 or more, not {written}",
                cap.limit.span,
                code="cap",
                hint=f"write it like {CAP_USAGE}",
            )
        )
    if cap.window.seconds <= 0:
        problems.append(
            error(
                "the window of a cap must be longer than zero",
                cap.window.span,
                code="window",
                hint=f"write it like {CAP_USAGE}",
            )
        )
    return problems


def rule_cap(decl: ast.RuleDecl, intern: Callable[[Any], Any] = lambda node: node) -> RuleCap | None:
    """The cap of a checked rule (None without one); ``intern`` shares its atom with equal ones."""
    cap = decl.cap
    if cap is None:
        return None
    ref, _problems = call_ref(impressions_call(decl.content.name, cap))
    assert ref is not None, "checked caps have a valid window"
    atom = intern(Atom("<", intern(ref), cap.limit.value))
    return RuleCap(cap.limit.value, expression_text(cap.window), atom)


@dataclass(frozen=True, slots=True)
class CapIndex:
    """The candidate bits of capped rules, by slot: a decision finds its capped rules without a scan."""

    masks: dict[str, int]  # slot -> bits of the conjunctions of its capped rules

    @classmethod
    def of(cls, plan: DecisionPlan) -> CapIndex:
        masks: dict[str, int] = {}
        if any(rule.cap is not None for rule in plan.rules):
            for conjunction in plan.conjunctions:
                if conjunction.rule.cap is not None:
                    slot = conjunction.rule.slot
                    masks[slot] = masks.get(slot, 0) | (1 << conjunction.bit)
        return cls(masks)
