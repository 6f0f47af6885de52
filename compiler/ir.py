"""The compiler's intermediate form: conditions in negation normal form.

After normalization a condition is a tree of ``All`` / ``Any`` over
predicates, with no negation left: every ``not`` has been pushed into the
predicate it applies to (``not x > 5`` is ``x <= 5``), which is sound under
three-valued logic. Predicates are hash-consed: two equal predicates anywhere
in a ruleset are one object, so the plan can evaluate each one once.

- ``Atom``: a feature compared with a constant (``context.page == "home"``,
  ``views("Books", 24h) > 2``). Atoms are what the index and the predicate
  tables work on.
- ``Test``: any other comparison (arithmetic, two features), evaluated as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tailor.dsl.printer import duration_text, number_text, string_text

from .features import FeatureKind, FeatureRef


class _Unknown:
    """The unknown value of three-valued logic (a constant that folded to unknown)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "unknown"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()

# Comparison operators, and the one each becomes under `not`.
NEGATED_OP = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "in": "not in",
    "not in": "in",
    "missing": "present",
    "present": "missing",
}
# The same comparison with its sides swapped.
MIRRORED_OP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


# --- terms (things with a value) ---


@dataclass(frozen=True, slots=True)
class Const:
    value: Any  # int, float, str, bool, frozenset (a list literal), or UNKNOWN

    def text(self) -> str:
        return value_text(self.value)


@dataclass(frozen=True, slots=True)
class Feature:
    ref: FeatureRef

    def text(self) -> str:
        return self.ref.text


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: Term
    right: Term

    def text(self) -> str:
        return f"({self.left.text()} {self.op} {self.right.text()})"


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Term

    def text(self) -> str:
        return f"-{self.operand.text()}"


@dataclass(frozen=True, slots=True)
class CondTerm:
    """A condition used as a value (``segment is missing``): true, false or unknown.

    Its condition is in exact normal form: unknown stays unknown, never folded to false.
    """

    condition: Condition

    def text(self) -> str:
        return f"({condition_text(self.condition)})"


Term = Const | Feature | Arith | Neg | CondTerm


# --- conditions ---


@dataclass(frozen=True, slots=True)
class Atom:
    """``feature OP constant``; ``missing``/``present`` take no constant."""

    op: str
    feature: FeatureRef
    value: Any = None

    def text(self) -> str:
        if self.op in ("missing", "present"):
            return f"{self.feature.text} is {'not ' if self.op == 'present' else ''}missing"
        if self.feature.kind is FeatureKind.SINCE and isinstance(self.value, int | float):
            return f"{self.feature.text} {self.op} {duration_text(self.value)}"
        return f"{self.feature.text} {self.op} {value_text(self.value)}"


@dataclass(frozen=True, slots=True)
class Test:
    """Any other comparison, e.g. ``views(1h) + clicks(1h) > user.threshold``."""

    op: str
    left: Term
    right: Term | None = None  # None for missing/present

    def text(self) -> str:
        if self.right is None:
            return f"{self.left.text()} is {'not ' if self.op == 'present' else ''}missing"
        return f"{self.left.text()} {self.op} {self.right.text()}"


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Truth:
    """A constant condition: always true, never true, or (in exact form) unknown."""

    value: bool | None


TRUE = Truth(True)
FALSE = Truth(False)
UNKNOWN_TRUTH = Truth(None)

Predicate = Atom | Test
Condition = Atom | Test | All | Any_ | Truth


def value_text(value: Any) -> str:
    if value is UNKNOWN:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted(value_text(v) for v in value)) + "]"
    return repr(value)


def condition_text(condition: Condition) -> str:
    if isinstance(condition, Truth):
        return {True: "true", False: "false", None: "unknown"}[condition.value]
    if isinstance(condition, All | Any_):
        joiner = " and " if isinstance(condition, All) else " or "
        return joiner.join(f"({condition_text(item)})" for item in condition.items)
    return condition.text()


def predicates(condition: Condition) -> list[Predicate]:
    """Every predicate of a condition, in order, with repeats."""
    if isinstance(condition, All | Any_):
        return [p for item in condition.items for p in predicates(item)]
    if isinstance(condition, Atom | Test):
        return [condition]
    return []


def term_features(term: Term | None) -> list[FeatureRef]:
    if isinstance(term, Feature):
        return [term.ref]
    if isinstance(term, Arith):
        return term_features(term.left) + term_features(term.right)
    if isinstance(term, Neg):
        return term_features(term.operand)
    if isinstance(term, CondTerm):
        return [ref for p in predicates(term.condition) for ref in predicate_features(p)]
    return []


def predicate_features(predicate: Predicate) -> list[FeatureRef]:
    if isinstance(predicate, Atom):
        return [predicate.feature]
    return term_features(predicate.left) + term_features(predicate.right)
