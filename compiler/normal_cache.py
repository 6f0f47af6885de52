"""Each file's normalized rules, kept between compiles so a reload normalizes only the files that changed.

A rule's normal form depends on its own syntax and on what the whole program
says about the names it uses: segments (inlined), attribute types (a boolean
attribute is a condition by itself) and experiments (a name that is one is
an arm, not a model). That cross-file part is the cache's *context*: when it
differs from the previous compile's in any way, every entry is dropped, so an
entry is never served for a program whose declarations changed its meaning.
Within one context a file's entry is found by its name and the digest of its
text.

Only the current ruleset's files are kept: each compile replaces the entries
with those of its own files, so an edited file's old entry does not linger.
"""

from __future__ import annotations

import threading
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


class NormalCache:
    """Normalized rules by (file name, SHA-256 of its text), for one context at a time."""

    def __init__(self) -> None:
        self._context: Hashable = None
        self._entries: dict[tuple[str, str], tuple[NormalForm, ...]] = {}
        self._lock = threading.Lock()
        self.hits = 0  # files whose rules were not normalized again
        self.misses = 0

    def entries(self, context: Hashable) -> dict[tuple[str, str], tuple[NormalForm, ...]]:
        """The entries made under an equal context; none when the context differs."""
        with self._lock:
            return dict(self._entries) if context == self._context else {}

    def replace(self, context: Hashable, entries: dict[tuple[str, str], tuple[NormalForm, ...]]) -> None:
        """Keep exactly ``entries`` (the compile just done), under ``context``."""
        with self._lock:
            self._context = context
            self._entries = entries
