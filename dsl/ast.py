"""The typed syntax tree of the rules language.

Nodes are frozen, slotted dataclasses. Spans never take part in equality, so
two trees that say the same thing compare equal wherever they came from; this
is what lets the formatter be tested by round-tripping random trees.
Literal nodes keep the form the author wrote (``70%``, ``24h``) so that the
formatter can print it back; their meaning is a derived property.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .source import Span

DURATION_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

COMPARISON_OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
ARITHMETIC_OPERATORS = ("+", "-", "*", "/")

DEFAULT_SLOT = "main"


def _span() -> Any:
    return field(default=None, compare=False, repr=False)


# --- names -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written, with where it was written."""

    name: str
    span: Span | None = _span()

    def __str__(self) -> str:
        return self.name


# --- expressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Number:
    """A number as written; ``percent`` marks ``70%``, whose meaning is 0.7."""

    value: int | float
    percent: bool = False
    span: Span | None = _span()

    @property
    def amount(self) -> int | float:
        return self.value / 100 if self.percent else self.value


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration as written (``24h``); its meaning is ``seconds``."""

    amount: int | float
    unit: str
    span: Span | None = _span()

    @property
    def seconds(self) -> int | float:
        return self.amount * DURATION_UNITS[self.unit]


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Attribute:
    """``user.tier`` or ``context.page``; ``scope`` is checked by the compiler."""

    scope: str
    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name: a segment or a model, resolved by the compiler."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """A feature function such as ``views("Electronics", 24h)``."""

    function: str
    args: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: str
    left: Expr
    right: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class IsMissing:
    operand: Expr
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span | None = _span()


Literal = String | Number | Boolean | Duration | ListLiteral
Expr = (
    String
    | Number
    | Boolean
    | Duration
    | ListLiteral
    | Attribute
    | Name
    | Call
    | Not
    | Negate
    | Arithmetic
    | Compare
    | IsMissing
    | And
    | Or
)


# --- declarations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RulesetDecl:
    name: Ident
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ContentDecl:
    """``content NAME = {...}``; ``payload`` is the JSON object, in source order."""

    name: Ident
    payload: dict[str, Any]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ModelDecl:
    """``model NAME = "path"``; the path is relative to the declaring file."""

    name: Ident
    path: String
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SegmentDecl:
    name: Ident
    condition: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Cap:
    """``cap N per WINDOW``: a frequency cap as written.

    ``limit`` keeps the number as written, sign included (``cap -1 per 1d``
    parses, and the checker says why it is wrong), so that a file the
    checker rejects still formats.
    """

    limit: Number
    window: Duration
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class RuleDecl:
    """A rule. ``slot``, ``priority`` and ``cap`` are None when the author left them out."""

    name: Ident | None
    condition: Expr
    content: Ident
    slot: Ident | None = None
    priority: int | None = None
    cap: Cap | None = None
    span: Span | None = _span()

    @property
    def slot_name(self) -> str:
        return self.slot.name if self.slot is not None else DEFAULT_SLOT

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else 0


@dataclass(frozen=True, slots=True)
class DefaultDecl:
    content: Ident
    slot: Ident | None = None
    span: Span | None = _span()

    @property
    def slot_name(self) -> str:
        return self.slot.name if self.slot is not None else DEFAULT_SLOT


@dataclass(frozen=True, slots=True)
class Given:
    """One ``FEATURE = VALUE`` of a test's ``given`` clause."""

    feature: Expr
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Expectation:
    """``SLOT = CONTENT``; ``content`` is a name, or ``nothing`` / ``default``."""

    slot: Ident
    content: Ident
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class TestDecl:
    """A rule test (only in ``*_test.rules`` files)."""

    __test__ = False  # not a pytest test class

    title: String
    given: tuple[Given, ...]
    expect: tuple[Expectation, ...]
    at: Expr | None = None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm of an experiment and its weight, a percentage (``model 50%``)."""

    name: Ident
    weight: Number
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ExperimentDecl:
    """``experiment NAME`` with its ``arms``, and optionally a ``seed`` and a ``coverage``.

    ``seed`` and ``coverage`` are None when the author left them out: the seed
    is then the experiment's name, and coverage 100%.
    """

    name: Ident
    arms: tuple[Arm, ...]
    seed: String | None = None
    coverage: Number | None = None
    span: Span | None = _span()

    @property
    def seed_text(self) -> str:
        return self.seed.value if self.seed is not None else self.name.name

    @property
    def coverage_share(self) -> float:
        """The share of users who enter, as a fraction."""
        return float(self.coverage.amount) if self.coverage is not None else 1.0


@dataclass(frozen=True, slots=True)
class HoldoutDecl:
    """``holdout 5%``: the share of users kept out of every rule; ``seed`` None for the default."""

    share: Number
    seed: String | None = None
    span: Span | None = _span()


# The types an attribute can be declared with, as written, and the name of each in messages.
ATTRIBUTE_TYPES: dict[str, str] = {"number": "number", "text": "string", "boolean": "bool", "duration": "duration"}
PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class AttributeDecl:
    """``attribute user.age number``, optionally ``public``: a profile or context attribute's type.

    ``type`` is the word as written (the checker knows the words, see ``ATTRIBUTE_TYPES``);
    ``public`` marks an attribute that is not personal data, so rules may read it without consent.
    """

    attribute: Attribute
    type: Ident
    public: bool = False
    span: Span | None = _span()


Declaration = (
    RulesetDecl
    | ContentDecl
    | ModelDecl
    | SegmentDecl
    | RuleDecl
    | DefaultDecl
    | TestDecl
    | ExperimentDecl
    | HoldoutDecl
    | AttributeDecl
)


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment; kept beside the tree so the formatter can put it back."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file."""

    declarations: tuple[Declaration, ...]
    name: str = field(default="<string>", compare=False)
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)

    @property
    def ruleset_name(self) -> str | None:
        for decl in self.declarations:
            if isinstance(decl, RulesetDecl):
                return decl.name.name
        return None
