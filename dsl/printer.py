"""Expressions back to source text, in the one canonical spelling.

This is also the canonical text of a feature reference: the runtime and the
tests key feature values by exactly what ``expression_text`` prints, e.g.
``views("Electronics", 24h)`` or ``user.tier``.
"""

from __future__ import annotations

import json
from decimal import Decimal

from . import ast
from .ast import DURATION_UNITS

# Binding strength, loosest first; an operand printed where a stronger one is
# required gets parentheses.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_ARITHMETIC_LEVEL = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}


def number_text(value: int | float) -> str:
    """Positional notation (no exponent), so durations and percentages re-parse."""
    if isinstance(value, (bool, int)):
        return str(int(value))
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def duration_text(seconds: int | float) -> str:
    """Seconds in the largest unit that divides them exactly: 2592000 is 30d."""
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return number_text(int(seconds // size)) + unit
    return number_text(seconds) + "s"


def string_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def level(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Or):
        return _OR
    if isinstance(expr, ast.And):
        return _AND
    if isinstance(expr, ast.Not):
        return _NOT
    if isinstance(expr, ast.Compare | ast.IsMissing):
        return _COMPARE
    if isinstance(expr, ast.Arithmetic):
        return _ARITHMETIC_LEVEL[expr.op]
    if isinstance(expr, ast.Negate):
        return _UNARY
    return _ATOM


def expression_text(expr: ast.Expr, minimum: int = _OR) -> str:
    """The canonical text of ``expr``, parenthesized if it binds looser than ``minimum``."""
    text = _text(expr)
    return f"({text})" if level(expr) < minimum else text


def _text(expr: ast.Expr) -> str:
    match expr:
        case ast.Or(operands):
            return " or ".join(expression_text(operand, _AND) for operand in operands)
        case ast.And(operands):
            return " and ".join(expression_text(operand, _NOT) for operand in operands)
        case ast.Not(operand):
            return "not " + expression_text(operand, _NOT)
        case ast.Compare(op, left, right):
            return f"{expression_text(left, _SUM)} {op} {expression_text(right, _SUM)}"
        case ast.IsMissing(operand, negated):
            return f"{expression_text(operand, _SUM)} is {'not ' if negated else ''}missing"
        case ast.Arithmetic(op, left, right):
            own = _ARITHMETIC_LEVEL[op]
            return f"{expression_text(left, own)} {op} {expression_text(right, own + 1)}"
        case ast.Negate(operand):
            # `-(-x)` rather than `--x`: legal either way, but easier to read.
            return "-" + expression_text(operand, _ATOM if isinstance(operand, ast.Negate) else _UNARY)
        case ast.String(value):
            return string_text(value)
        case ast.Number(value, percent):
            return number_text(value) + ("%" if percent else "")
        case ast.Duration(amount, unit):
            return number_text(amount) + unit
        case ast.Boolean(value):
            return "true" if value else "false"
        case ast.ListLiteral(items):
            return "[" + ", ".join(expression_text(item) for item in items) + "]"
        case ast.Attribute(scope, name):
            return f"{scope}.{name}"
        case ast.Name(name):
            return name
        case ast.Call(function, args):
            return f"{function}(" + ", ".join(expression_text(arg) for arg in args) + ")"
    raise TypeError(f"not an expression: {expr!r}")
