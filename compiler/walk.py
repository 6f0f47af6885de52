"""Every node of a condition, without recursion: what checks, lints and model inputs look through."""

from __future__ import annotations

from collections.abc import Iterable

from tailor.dsl import ast


def walk(expr: ast.Expr) -> Iterable[ast.Expr]:
    """Every node of an expression, parents before children.

    Dispatched on the node's exact type (the node classes have no subclasses):
    a large ruleset's conditions have millions of nodes, and class patterns
    cost an ``isinstance`` and an attribute read per case tried.
    """
    stack = [expr]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        yield node
        kind = type(node)
        if kind is ast.Compare or kind is ast.Arithmetic:
            push(node.right)
            push(node.left)
        elif kind is ast.And or kind is ast.Or:
            extend(reversed(node.operands))
        elif kind is ast.Call:
            extend(reversed(node.args))
        elif kind is ast.ListLiteral:
            extend(reversed(node.items))
        elif kind is ast.Not or kind is ast.Negate or kind is ast.IsMissing:
            push(node.operand)
