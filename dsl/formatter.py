"""The canonical layout of ``.rules`` files (``tailor fmt``).

A file is laid out as a sequence of items, declarations and stand-alone
comments, in source order. Blank lines between items are kept (collapsed to
one) and multi-line declarations always stand apart. Comments inside or at
the end of a declaration are put back at the end of the output line that
covers their position; when several land on one line, all but the last move
to their own lines just above the declaration. Formatting is idempotent and
never changes the tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import ast
from .diagnostics import RulesError
from .parser import parse_source
from .printer import expression_text, string_text
from .source import Source

WIDTH = 100
INDENT = "  "


@dataclass(slots=True)
class _Line:
    text: str
    source_start: int  # offset of the first source token this line prints; -1 without a source
    comment: str = ""  # a trailing comment, printed after the text


@dataclass(slots=True)
class _Item:
    lines: list[_Line]
    start: int
    end: int
    is_comment: bool = False


def format_text(text: str, filename: str = "<string>") -> str:
    """Format one file's text; raises ``RulesError`` if it does not parse."""
    module, problems = parse_source(Source(filename, text))
    if problems:
        raise RulesError(problems)
    return format_module(module, text)


def format_module(module: ast.Module, text: str | None = None) -> str:
    """Lay out a module; with the original ``text``, comments and blank lines are kept."""
    items = [_Item(_declaration_lines(decl), _start(decl), _end(decl)) for decl in module.declarations]
    if text is not None:
        items = _place_comments(items, module.comments, text)
    out: list[str] = []
    previous: _Item | None = None
    for item in items:
        if previous is not None and _blank_between(previous, item, text):
            out.append("")
        out.extend((f"{line.text}  {line.comment}" if line.comment else line.text).rstrip() for line in item.lines)
        previous = item
    return "\n".join(out) + "\n" if out else ""


def _start(node: ast.Declaration) -> int:
    return node.span.start if node.span is not None else -1


def _end(node: ast.Declaration) -> int:
    return node.span.end if node.span is not None else -1


def _blank_between(previous: _Item, item: _Item, text: str | None) -> bool:
    """Multi-line declarations stand apart; otherwise keep the author's blank lines."""
    if _multi_line(previous) or (_multi_line(item) and not previous.is_comment):
        return True
    if text is None or previous.end < 0 or item.start < 0:
        return False
    between = text[previous.end : item.start]
    return any(not line.strip() for line in between.split("\n")[1:-1])


def _multi_line(item: _Item) -> bool:
    return not item.is_comment and len(item.lines) > 1


def _place_comments(items: list[_Item], comments: tuple[ast.Comment, ...], text: str) -> list[_Item]:
    """Attach comments inside or trailing a declaration; the rest become items."""
    result: list[_Item] = []
    pending = list(comments)
    pending.reverse()
    for item in items:
        line_end = text.find("\n", item.end)
        line_end = len(text) if line_end == -1 else line_end
        while pending and pending[-1].span.start < item.start:
            comment = pending.pop()
            if result and not result[-1].is_comment and _same_line(text, result[-1].end, comment.span.start):
                _attach(result, result[-1], comment)
            else:
                result.append(
                    _Item([_Line(comment.text, comment.span.start)], comment.span.start, comment.span.end, True)
                )
        while pending and pending[-1].span.start < line_end:
            _attach(result, item, pending.pop())
        result.append(item)
    while pending:
        comment = pending.pop()
        if result and not result[-1].is_comment and _same_line(text, result[-1].end, comment.span.start):
            _attach(result, result[-1], comment)
        else:
            result.append(_Item([_Line(comment.text, comment.span.start)], comment.span.start, comment.span.end, True))
    return result


def _same_line(text: str, offset: int, other: int) -> bool:
    return "\n" not in text[offset:other]


def _attach(result: list[_Item], item: _Item, comment: ast.Comment) -> None:
    """Put ``comment`` at the end of the line of ``item`` that covers it.

    A line holds one trailing comment (a second ``#`` would only extend the
    first), so a comment it already holds moves to a line of its own just
    above the declaration (``item`` is ``result[-1]`` or about to be appended).
    """
    target = item.lines[0]
    for line in item.lines:  # the line that starts last before the comment (clauses may have moved)
        if 0 <= line.source_start <= comment.span.start and line.source_start >= max(target.source_start, 0):
            target = line
    if target.comment:
        index = len(result) - 1 if result and result[-1] is item else len(result)
        result.insert(index, _Item([_Line(target.comment, item.start)], item.start, item.start, True))
    target.comment = comment.text
    item.end = max(item.end, comment.span.end)


# --- declarations ---


def _declaration_lines(decl: ast.Declaration) -> list[_Line]:
    start = _start(decl)
    match decl:
        case ast.RulesetDecl(name):
            return [_Line(f"ruleset {name}", start)]
        case ast.ContentDecl(name, payload):
            one_line = json.dumps(payload, ensure_ascii=False)
            head = f"content {name} = "
            if len(head) + len(one_line) <= WIDTH:
                return [_Line(head + one_line, start)]
            block = json.dumps(payload, ensure_ascii=False, indent=2).split("\n")
            return [_Line(head + block[0], start)] + [_Line(line, start) for line in block[1:]]
        case ast.ModelDecl(name, path):
            return [_Line(f"model {name} = {string_text(path.value)}", start)]
        case ast.SegmentDecl(name, condition):
            return _condition_lines(f"segment {name} = ", condition, INDENT, start)
        case ast.RuleDecl():
            return _rule_lines(decl, start)
        case ast.DefaultDecl(content, slot):
            return [_Line(f"default show {content}" + (f" in {slot}" if slot else ""), start)]
        case ast.TestDecl():
            return _test_lines(decl, start)
        case ast.ExperimentDecl():
            return _experiment_lines(decl, start)
        case ast.HoldoutDecl(share, seed):
            return [
                _Line(f"holdout {expression_text(share)}" + (f" seed {string_text(seed.value)}" if seed else ""), start)
            ]
        case ast.AttributeDecl(attribute, kind, public):
            return [_Line(f"attribute {expression_text(attribute)} {kind}" + (" public" if public else ""), start)]
    raise TypeError(f"not a declaration: {decl!r}")


def _rule_lines(rule: ast.RuleDecl, start: int) -> list[_Line]:
    show = f"then show {rule.content}" + (f" in {rule.slot}" if rule.slot else "")
    tail = [
        (f"priority {rule.priority}", _priority_start(rule)) if rule.priority is not None else None,
        (cap_text(rule.cap), rule.cap.span.start if rule.cap.span else -1) if rule.cap is not None else None,
    ]
    show_start = rule.content.span.start if rule.content.span else -1
    if rule.name is None:
        one_line = " ".join([f"when {expression_text(rule.condition)} {show}", *(part[0] for part in tail if part)])
        if len(one_line) <= WIDTH:
            return [_Line(one_line, start)]
        lines = _condition_lines("when ", rule.condition, INDENT * 2, start)
    else:
        condition_start = rule.condition.span.start if rule.condition.span else -1
        lines = [_Line(f"rule {rule.name}", start)]
        lines += _condition_lines(INDENT + "when ", rule.condition, INDENT * 2, condition_start)
    lines.append(_Line(INDENT + show, show_start))
    lines += [_Line(INDENT + text, part_start) for text, part_start in filter(None, tail)]
    return lines


def cap_text(cap: ast.Cap) -> str:
    """``cap 3 per 24h``, as the formatter prints it."""
    return f"cap {expression_text(cap.limit)} per {expression_text(cap.window)}"


def _priority_start(rule: ast.RuleDecl) -> int:
    """Where the priority is written: the tree keeps it as a plain int, without a span."""
    if rule.span is None:
        return -1
    if rule.cap is None:
        return rule.span.end - 1  # the priority's number is the rule's last token
    shown = rule.slot or rule.content
    return _next_token(rule.span.source.text, shown.span.end) if shown.span is not None else -1


def _next_token(text: str, offset: int) -> int:
    """The offset of the first token at or after ``offset``, past whitespace and comments."""
    while offset < len(text):
        if text[offset] == "#":
            end = text.find("\n", offset)
            offset = len(text) if end == -1 else end
        elif text[offset].isspace():
            offset += 1
        else:
            break
    return offset


def _condition_lines(prefix: str, condition: ast.Expr, indent: str, start: int) -> list[_Line]:
    """One line when it fits, else one operand of the top-level and/or per line."""
    text = prefix + expression_text(condition)
    if len(text) <= WIDTH or not isinstance(condition, ast.And | ast.Or):
        return [_Line(text, start)]
    keyword = "and" if isinstance(condition, ast.And) else "or"
    minimum = 3 if keyword == "and" else 2  # the printer's NOT / AND binding levels
    first, *rest = condition.operands
    lines = [_Line(prefix + expression_text(first, minimum), start)]
    for operand in rest:
        operand_start = operand.span.start if operand.span else -1
        lines.append(_Line(f"{indent}{keyword} {expression_text(operand, minimum)}", operand_start))
    return lines


def _experiment_lines(decl: ast.ExperimentDecl, start: int) -> list[_Line]:
    """The name, then one clause per line: arms, seed, coverage."""
    arms = [f"{arm.name} {expression_text(arm.weight)}" for arm in decl.arms]
    lines = [_Line(f"experiment {decl.name}", start)]
    if arms:
        lines += _list_lines(f"{INDENT}arms ", arms, [_node_start(arm) for arm in decl.arms])
    if decl.seed is not None:
        lines.append(_Line(f"{INDENT}seed {string_text(decl.seed.value)}", _node_start(decl.seed)))
    if decl.coverage is not None:
        lines.append(_Line(f"{INDENT}coverage {expression_text(decl.coverage)}", _node_start(decl.coverage)))
    return lines


def _test_lines(test: ast.TestDecl, start: int) -> list[_Line]:
    lines = [_Line(f"test {string_text(test.title.value)}", start)]
    if test.at is not None:
        lines.append(_Line(f"{INDENT}at {expression_text(test.at)}", test.at.span.start if test.at.span else -1))
    if test.given:
        givens = [f"{expression_text(g.feature)} = {expression_text(g.value)}" for g in test.given]
        lines += _list_lines(f"{INDENT}given ", givens, [_node_start(g) for g in test.given])
    expects = [f"{e.slot} = {e.content}" for e in test.expect]
    lines += _list_lines(f"{INDENT}expect ", expects, [_node_start(e) for e in test.expect])
    return lines


def _node_start(node: ast.Given | ast.Expectation | ast.Arm | ast.String | ast.Number) -> int:
    return node.span.start if node.span is not None else -1


def _list_lines(prefix: str, entries: list[str], starts: list[int]) -> list[_Line]:
    one_line = prefix + ", ".join(entries)
    if len(one_line) <= WIDTH:
        return [_Line(one_line, starts[0])]
    indent = " " * len(prefix)
    lines = []
    for index, (entry, entry_start) in enumerate(zip(entries, starts, strict=True)):
        comma = "," if index < len(entries) - 1 else ""
        lines.append(_Line((prefix if index == 0 else indent) + entry + comma, entry_start))
    return lines
