"""The reference interpreter: what a ruleset means, by a plain walk of its AST.

This module *defines* the meaning of a decision for the property tests; the
engine, however it optimizes, must agree with it. It is deliberately naive:
no caching, no short-circuits, no reordering. Every condition of every rule of
a requested slot is evaluated in full, segments are evaluated inline each time
they are named, and unknown is the Python value ``None``.

Where a value comes from:

* ``user.ATTR`` is ``features["user.ATTR"]``; ``context.ATTR`` is ``context["ATTR"]``;
* a model's name is ``features[NAME]`` (its prediction, a number);
* a feature call is ``features[canonical text]``, e.g. ``features['views("Electronics", 24h)']``.
  The counters (views, clicks, add_to_carts, purchases, count, total) are 0 when
  absent; ``since(...)`` is a duration in seconds and unknown when absent.
* a rule's ``cap N per WINDOW`` reads ``features['count("impression", "CONTENT", WINDOW)']``
  (0 when absent): the rule fires only if its condition is true and that count is less than N.

A supplied value whose type does not fit how the ruleset uses it is unknown;
so is an explicit ``None`` (for a counter too) and a NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.compiler.check import CheckedRule, Program, check
from tailor.dsl import ast
from tailor.dsl.diagnostics import RulesError, Severity
from tailor.dsl.parser import parse
from tailor.dsl.printer import expression_text

# A three-valued truth: True, False, or None for unknown.
Truth = bool | None

COUNTER_FUNCTIONS: frozenset[str] = frozenset({"views", "clicks", "add_to_carts", "purchases", "count", "total"})
DURATION_FUNCTIONS: frozenset[str] = frozenset({"since"})

_ABSENT = object()


def load(text: str, name: str = "shop") -> Program:
    """Parse and check one file of rules; raise ``RulesError`` if it has any error.

    The file is called ``NAME.rules``, so an unnamed rule on line 7 is ``NAME:7``.
    """
    module = parse(text, f"{name}.rules")
    program, problems = check([module], name)
    errors = [d for d in problems if d.severity is Severity.ERROR]
    if errors:
        raise RulesError(errors)
    return program


# --- values ------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """int or float, not bool, not NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def fits(type_name: str | None, value: Any) -> bool:
    """Whether a supplied (non-None) value has the type the ruleset uses it as."""
    if type_name is None:
        return True
    if type_name in ("number", "duration"):
        return is_number(value)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    return True


def equal(left: Any, right: Any) -> bool:
    """Equality of two known values: numbers numerically (2 == 2.0), the rest by type and value."""
    if is_number(left) and is_number(right):
        return left == right
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return type(left) is type(right) and left == right


def kleene_not(value: Truth) -> Truth:
    return None if value is None else not value


def kleene_and(values: Iterable[Truth]) -> Truth:
    values = list(values)
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True


def kleene_or(values: Iterable[Truth]) -> Truth:
    values = list(values)
    if any(v is True for v in values):
        return True
    if any(v is None for v in values):
        return None
    return False


# --- evaluation ----------------------------------------------------------------


class Interpreter:
    """Evaluates expressions of one program for one request."""

    def __init__(self, program: Program, context: Mapping[str, Any], features: Mapping[str, Any]) -> None:
        self.program = program
        self.context = context
        self.features = features

    def truth(self, expr: ast.Expr) -> Truth:
        """The truth of a condition: True, False or None (unknown)."""
        value = self.value(expr)
        return value if isinstance(value, bool) else None

    def under_cap(self, rule: ast.RuleDecl) -> Truth:
        """Whether the user has had fewer impressions of the rule's content than its cap allows (True uncapped)."""
        if rule.cap is None:
            return True
        impressions = ast.Call("count", (ast.String("impression"), ast.String(rule.content.name), rule.cap.window))
        return compare("<", self.value(impressions), rule.cap.limit.value)

    def value(self, expr: ast.Expr) -> Any:
        match expr:
            case ast.String(value):
                return value
            case ast.Number():
                return expr.amount
            case ast.Duration():
                return expr.seconds
            case ast.Boolean(value):
                return value
            case ast.ListLiteral(items):
                return tuple(self.value(item) for item in items)
            case ast.Attribute(scope, name):
                text = expression_text(expr)
                supplied = self.features.get(text, _ABSENT) if scope == "user" else self.context.get(name, _ABSENT)
                attribute_type = self.program.attribute_types.get(text)
                return self._checked(supplied, attribute_type.name if attribute_type is not None else None)
            case ast.Name(name):
                if name in self.program.segments:
                    return self.truth(self.program.segments[name].condition)
                if name in self.program.models:
                    return self._checked(self.features.get(name, _ABSENT), "number")
                raise KeyError(f"unknown name {name!r}")
            case ast.Call(function):
                supplied = self.features.get(expression_text(expr), _ABSENT)
                if function in COUNTER_FUNCTIONS:
                    return 0 if supplied is _ABSENT else self._checked(supplied, "number")
                if function in DURATION_FUNCTIONS:
                    return self._checked(supplied, "duration")
                raise KeyError(f"unknown function {function!r}")
            case ast.Not(operand):
                return kleene_not(self.truth(operand))
            case ast.And(operands):
                return kleene_and([self.truth(operand) for operand in operands])
            case ast.Or(operands):
                return kleene_or([self.truth(operand) for operand in operands])
            case ast.Negate(operand):
                value = self.value(operand)
                return None if value is None else -value
            case ast.Arithmetic(op, left, right):
                return arithmetic(op, self.value(left), self.value(right))
            case ast.Compare(op, left, right):
                return compare(op, self.value(left), self.value(right))
            case ast.IsMissing(operand, negated):
                missing = self.value(operand) is None
                return not missing if negated else missing
        raise TypeError(f"not an expression: {expr!r}")

    @staticmethod
    def _checked(supplied: Any, type_name: str | None) -> Any:
        if supplied is _ABSENT or supplied is None:
            return None
        if isinstance(supplied, float) and math.isnan(supplied):
            return None
        return supplied if fits(type_name, supplied) else None


def arithmetic(op: str, left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    elif op == "/":
        if right == 0:
            return None
        result = left / right
    else:
        raise ValueError(f"unknown operator {op!r}")
    if isinstance(result, float) and math.isnan(result):
        return None
    return result


def compare(op: str, left: Any, right: Any) -> Truth:
    if left is None or right is None:
        return None
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op == "in":
        return any(equal(left, item) for item in right)
    if op == "not in":
        return not any(equal(left, item) for item in right)
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise ValueError(f"unknown operator {op!r}")


# --- decisions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotOutcome:
    """What one slot serves: a content and its payload, and the rule that chose it."""

    content: str | None
    payload: dict[str, Any] | None
    rule: str | None

    @property
    def is_default(self) -> bool:
        return self.content is not None and self.rule is None


NOTHING = SlotOutcome(None, None, None)


def rank(rule: CheckedRule) -> tuple[int, int]:
    """Smaller ranks first: the highest priority, then the first in the ruleset."""
    return (-rule.priority, rule.order)


def slot_rules(program: Program, slot: str) -> list[CheckedRule]:
    return [rule for rule in program.rules if rule.slot == slot]


def fired_rules(
    program: Program, slot: str, context: Mapping[str, Any], features: Mapping[str, Any]
) -> list[CheckedRule]:
    """The rules of ``slot`` whose condition is true, best first."""
    interpreter = Interpreter(program, context, features)
    fired = [
        rule
        for rule in slot_rules(program, slot)
        if interpreter.truth(rule.decl.condition) is True and interpreter.under_cap(rule.decl) is True
    ]
    return sorted(fired, key=rank)


def winner(program: Program, slot: str, context: Mapping[str, Any], features: Mapping[str, Any]) -> CheckedRule | None:
    fired = fired_rules(program, slot, context, features)
    return fired[0] if fired else None


def requested_slots(program: Program, slots: Sequence[str] | None) -> tuple[str, ...]:
    return program.slots if slots is None else tuple(slots)


def decide_slot(program: Program, slot: str, context: Mapping[str, Any], features: Mapping[str, Any]) -> SlotOutcome:
    rule = winner(program, slot, context, features)
    if rule is not None:
        content = rule.decl.content.name
        return SlotOutcome(content, program.contents[content].payload, rule.name)
    default = program.defaults.get(slot)
    if default is not None:
        content = default.content.name
        return SlotOutcome(content, program.contents[content].payload, None)
    return NOTHING


def decide(
    program: Program,
    context: Mapping[str, Any] | None = None,
    features: Mapping[str, Any] | None = None,
    slots: Sequence[str] | None = None,
) -> dict[str, SlotOutcome]:
    """Every requested slot's outcome (every slot the ruleset targets when ``slots`` is None)."""
    context = context or {}
    features = features or {}
    return {slot: decide_slot(program, slot, context, features) for slot in requested_slots(program, slots)}


# --- what a rule refers to -------------------------------------------------------


def subexpressions(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of an expression, itself included."""
    yield expr
    match expr:
        case ast.And(operands) | ast.Or(operands):
            for operand in operands:
                yield from subexpressions(operand)
        case ast.Not(operand) | ast.Negate(operand) | ast.IsMissing(operand):
            yield from subexpressions(operand)
        case ast.Arithmetic(_, left, right) | ast.Compare(_, left, right):
            yield from subexpressions(left)
            yield from subexpressions(right)
        case ast.Call(_, args):
            for arg in args:
                yield from subexpressions(arg)
        case ast.ListLiteral(items):
            for item in items:
                yield from subexpressions(item)


def mentions(program: Program, expr: ast.Expr, name: str) -> bool:
    """Whether ``expr`` names ``name``, directly or through the segments it uses."""
    for node in subexpressions(expr):
        if isinstance(node, ast.Name):
            if node.name == name:
                return True
            segment = program.segments.get(node.name)
            if segment is not None and mentions(program, segment.condition, name):
                return True
    return False


def model_is_skippable(program: Program, model: str, outcome_rules: Mapping[str, CheckedRule | None]) -> bool:
    """Whether a decision can be made without ever evaluating ``model``.

    ``outcome_rules`` maps each requested slot to its winning rule (or None).
    True when, in every requested slot, the winner ranks above every rule that
    mentions the model (vacuously so for a slot with no such rule).
    """
    for slot, best in outcome_rules.items():
        users = [rule for rule in slot_rules(program, slot) if mentions(program, rule.decl.condition, model)]
        if not users:
            continue
        if best is None or any(rank(best) >= rank(rule) for rule in users):
            return False
    return True
