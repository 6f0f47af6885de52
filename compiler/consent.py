"""Consent by construction: which rules personalize, so a user who declined never meets them.

A rule *needs consent* when it reads personal data: a behavioural feature
(``views``, ``count``, ``since``, ..., and a cap, which counts the user's
impressions), a model's prediction, or a ``user.*`` attribute not declared
``public``. Segments are inlined into rules, so a rule that uses a segment
reading ``views()`` needs consent too. Context attributes and experiment arms
(drawn from a hash of the user id, never stored nor learnt from) do not.

For a user without consent, stage 0 clears every candidate of such a rule, as
the holdout clears them all: those rules are skipped, never evaluated against
unknown values, so none of their features is fetched and no model runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .features import FeatureKind, FeatureRef
from .ir import predicate_features, predicates
from .plan import Conjunction, DecisionPlan

# Feature kinds that are personal data whatever the ruleset declares.
_PERSONAL_KINDS = frozenset({FeatureKind.COUNT, FeatureKind.TOTAL, FeatureKind.SINCE, FeatureKind.MODEL})

SKIPPED = "skipped: needs consent"  # what explain says of such a rule


def is_personal(ref: FeatureRef, public: frozenset[str]) -> bool:
    """Whether reading ``ref`` needs the user's consent (``public``: the user attributes declared public)."""
    if ref.kind in _PERSONAL_KINDS:
        return True
    return ref.kind is FeatureKind.PROFILE and ref.text not in public


@dataclass(frozen=True, slots=True)
class ConsentPlan:
    """What a plan's rules need consent for, computed once per compiled ruleset."""

    mask: int  # the candidates (bits) of every rule that needs consent
    rules: dict[str, tuple[str, ...]]  # rule name -> the personal features it reads, in first-read order
    personal: frozenset[str]  # the texts of every personal feature the plan reads
    public: frozenset[str]  # the user attributes declared public

    @classmethod
    def of(cls, plan: DecisionPlan) -> ConsentPlan:
        public = plan.public_attributes
        personal = frozenset(text for text, ref in plan.features.items() if is_personal(ref, public))
        rules: dict[str, dict[str, None]] = {}
        for conjunction in plan.conjunctions:
            reads = rules.setdefault(conjunction.rule.name, {})
            for ref in _features(conjunction):
                if ref.text in personal:
                    reads.setdefault(ref.text)
        needing = {name: tuple(reads) for name, reads in rules.items() if reads}
        mask = 0
        for conjunction in plan.conjunctions:
            if conjunction.rule.name in needing:
                mask |= 1 << conjunction.bit
        return cls(mask, needing, personal, public)

    def without_personal(self, texts: Iterable[str]) -> tuple[str, ...]:
        """``texts`` less the personal features: what may be read for a user without consent."""
        personal = self.personal
        return tuple(text for text in texts if text not in personal)


def _features(conjunction: Conjunction) -> Iterable[FeatureRef]:
    formula = predicates(conjunction.formula) if conjunction.formula is not None else ()
    for predicate in (*conjunction.atoms, *conjunction.residual, *formula):
        yield from predicate_features(predicate)
