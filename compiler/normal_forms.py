"""A rule's normal form apart from the rule, and what it depends on outside the rule: what ``FileCache`` keeps.

A rule's normal form depends on its own syntax and on what the whole program
says about the names it uses: segments (inlined), attribute types (a boolean
attribute is a condition by itself) and experiments (a name that is one is
an arm, not a model). That cross-file part is the cache entries' context.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .caps import RuleCap
from .ir import Condition, Predicate

if TYPE_CHECKING:
    from .check import Program


@dataclass(frozen=True, slots=True)
class NormalForm:
    """What normalizing one rule makes, apart from the rule itself."""

    condition: Condition
    disjuncts: tuple[tuple[Predicate, ...], ...] | None
    cap: RuleCap | None


def normal_context(program: Program) -> Hashable:
    """Everything outside a rule that its normal form reads: equal contexts, equal normal forms."""
    return (
        tuple((name, decl.condition) for name, decl in program.segments.items()),
        tuple(sorted(program.attribute_types.items())),
        tuple(sorted(program.experiments)),
    )
