"""The language's one limit on how deeply an expression may nest.

The compiler, the formatter and the explainer walk expressions recursively,
so an expression nested thousands of levels deep (500 ``not``s, a 20,000-term
``+`` chain) would exhaust Python's stack in whichever pass came first.
Rather than every pass guarding itself, the parser measures each expression
once, without recursion, and a declaration whose expression is too deep is
reported at that expression and left out of the module: no later pass ever
sees it.

A level is an operator (``not``, ``and``, ``or``, a comparison, ``is
missing``, arithmetic, a unary minus), a feature call or a list; names and
literals are not levels. ``and`` and ``or`` hold all the operands of a chain
written without parentheses, so ``a or b or c …`` is one level however long
it is, while ``a + b + c …`` nests one level per ``+``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from . import ast
from .diagnostics import Diagnostic, error

MAX_NESTING = 100

NESTING_CODE = "too-deep"

_LEAVES = frozenset({ast.String, ast.Number, ast.Boolean, ast.Duration, ast.Attribute, ast.Name})


def nesting_depth(expr: ast.Expr, names: Mapping[str, int] | None = None) -> int:
    """How many levels deep ``expr`` nests (0 for a name or a literal); no recursion.

    A name in ``names`` nests as many levels as it maps to: the compiler
    measures a segment with the segments it uses inlined.

    The tree is walked one generation at a time, so no node is paired with
    its depth (the parser measures every long expression of a file): the
    depth is the number of generations that hold a level.
    """
    depth = 0
    deepest_name = 0
    generation = [expr]
    while generation:
        below: list[ast.Expr] = []
        extend, append = below.extend, below.append
        leaves = 0
        for node in generation:
            cls = node.__class__
            if cls in _LEAVES:
                leaves += 1
                if names and cls is ast.Name and node.name in names:  # type: ignore[union-attr]
                    deepest_name = max(deepest_name, depth + names[node.name])  # type: ignore[union-attr]
            elif cls is ast.Compare or cls is ast.Arithmetic:
                append(node.left)  # type: ignore[union-attr]
                append(node.right)  # type: ignore[union-attr]
            elif cls is ast.And or cls is ast.Or:
                extend(node.operands)  # type: ignore[union-attr]
            elif cls is ast.Not or cls is ast.Negate or cls is ast.IsMissing:
                append(node.operand)  # type: ignore[union-attr]
            elif cls is ast.Call:
                extend(node.args)  # type: ignore[union-attr]
            elif cls is ast.ListLiteral:
                extend(node.items)  # type: ignore[union-attr]
            else:
                raise TypeError(f"not an expression: {node!r}")
        if leaves < len(generation):
            depth += 1
        generation = below
    return max(depth, deepest_name)


def nesting_problem(expr: ast.Expr) -> Diagnostic | None:
    """The diagnostic for ``expr`` when it nests deeper than ``MAX_NESTING``, else None.

    A parsed expression's span grows by at least one character with each level
    (every operator, call or list spans its operands and a token more), so one
    no longer than the limit cannot exceed it and is not walked.
    """
    span = expr.span
    if span is not None and span.end - span.start <= MAX_NESTING:
        return None
    depth = nesting_depth(expr)
    if depth <= MAX_NESTING:
        return None
    return error(
        f"this expression is nested too deeply: {depth} levels, the limit is {MAX_NESTING}",
        span,
        code=NESTING_CODE,
        hint="split it into segments",
    )


def declaration_expressions(decl: ast.Declaration) -> Iterator[ast.Expr]:
    """The expressions a declaration holds, in source order."""
    if isinstance(decl, ast.SegmentDecl | ast.RuleDecl):
        yield decl.condition
    elif isinstance(decl, ast.TestDecl):
        if decl.at is not None:
            yield decl.at
        for given in decl.given:
            yield given.feature
            yield given.value


def within_nesting_limit(declarations: list[ast.Declaration], problems: list[Diagnostic]) -> list[ast.Declaration]:
    """The declarations whose expressions all nest within the limit; a problem for each too-deep expression."""
    kept = []
    for decl in declarations:
        found = [problem for expr in declaration_expressions(decl) if (problem := nesting_problem(expr))]
        if found:
            problems.extend(found)
        else:
            kept.append(decl)
    return kept
