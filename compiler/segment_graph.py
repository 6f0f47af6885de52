"""Segments that use segments: cycles, and how deeply conditions nest once segments are inlined.

The optimizer inlines segments, so a cycle would never end and a long chain
of segments each using the one before would nest without bound. Both are
reported once, where the author can act: a cycle at its first segment, a
chain where it first crosses the limit.
"""

from __future__ import annotations

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, error
from tailor.dsl.nesting import MAX_NESTING, NESTING_CODE, nesting_depth

from .walk import walk


def segment_problems(segments: dict[str, ast.SegmentDecl]) -> list[Diagnostic]:
    """Each cycle of segments once; when there is none, the segments nested too deeply."""
    uses = {name: segment_uses(decl.condition, segments) for name, decl in segments.items()}
    return _cycles(segments, uses) or _too_deep(segments, uses)


def _cycles(segments: dict[str, ast.SegmentDecl], uses: dict[str, list[str]]) -> list[Diagnostic]:
    reported: set[frozenset[str]] = set()
    problems = []
    cyclic = cyclic_components(uses)
    for start in segments:
        if start not in cyclic:
            continue  # on no cycle: searching from it would walk all it uses, for nothing
        path = find_cycle(start, uses, cyclic)
        if path is None or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        problems.append(
            error(
                "segment '" + start + "' depends on itself: " + " → ".join([*path, start]),
                segments[start].name.span,
                code="cycle",
                hint="a segment cannot use itself, directly or through other segments",
            )
        )
    return problems


def _too_deep(segments: dict[str, ast.SegmentDecl], uses: dict[str, list[str]]) -> list[Diagnostic]:
    """A segment counts each segment it uses at that segment's levels plus one; only where a chain first
    crosses the limit is reported, not at every segment above it (the parser bounds each expression alone)."""
    depths = inlined_depths(segments, uses)
    return [
        error(
            f"segment '{name}' is nested too deeply with the segments it uses: {depth} levels,"
            f" the limit is {MAX_NESTING}",
            segments[name].condition.span,
            code=NESTING_CODE,
            hint="each segment used counts with its own levels, plus one: use fewer segments within segments",
        )
        for name, depth in depths.items()
        if depth > MAX_NESTING and all(depths[used] <= MAX_NESTING for used in uses[name])
    ]


def segment_uses(expr: ast.Expr, segments: dict[str, ast.SegmentDecl]) -> list[str]:
    return [node.name for node in walk(expr) if isinstance(node, ast.Name) and node.name in segments]


def inlined_depths(segments: dict[str, ast.SegmentDecl], uses: dict[str, list[str]]) -> dict[str, int]:
    """How deeply each segment nests with the segments it uses inlined; no recursion.

    ``uses`` must have no cycles. A use of a segment counts as one level more
    than that segment's own depth.
    """
    depths: dict[str, int] = {}
    for start in segments:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in depths:
                stack.pop()
                continue
            waiting = [used for used in uses[name] if used not in depths]
            if waiting:
                stack.extend(waiting)
                continue
            levels = {used: depths[used] + 1 for used in uses[name]}
            depths[name] = nesting_depth(segments[name].condition, levels)
            stack.pop()
    return depths


def cyclic_components(uses: dict[str, list[str]]) -> dict[str, int]:
    """The segments that lie on a cycle, each with its strongly connected component.

    Tarjan's algorithm, without recursion: a chain of thousands of segments is
    one pass, where searching for a cycle from every segment would walk the
    rest of the chain from each.
    """
    order: dict[str, int] = {}  # when each segment was first reached
    low: dict[str, int] = {}  # the earliest segment reachable from it that is still open
    open_: list[str] = []
    is_open: set[str] = set()
    found: dict[str, int] = {}
    components = 0
    for root in uses:
        if root in order:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, next_use = work[-1]
            if next_use == 0:
                order[node] = low[node] = len(order)
                open_.append(node)
                is_open.add(node)
            used = uses.get(node, ())
            while next_use < len(used):
                child = used[next_use]
                next_use += 1
                if child not in order:
                    work[-1] = (node, next_use)
                    work.append((child, 0))
                    break
                if child in is_open:
                    low[node] = min(low[node], order[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    members = []
                    while True:
                        member = open_.pop()
                        is_open.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1 or node in used:
                        found.update(dict.fromkeys(members, components))
                    components += 1
    return found


def find_cycle(start: str, uses: dict[str, list[str]], cyclic: dict[str, int]) -> list[str] | None:
    """The path of a cycle through ``start``, or None.

    Only segments of ``start``'s component can lead back to it; leaving the
    others out changes no path found.
    """
    component = cyclic[start]
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in uses.get(node, ()):
            if nxt == start:
                return path
            if nxt not in seen and cyclic.get(nxt) == component:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
