"""Source text to a typed AST, with Lark's LALR parser.

The tree is built during the parse (Lark calls ``_TreeBuilder`` on every
reduction), so no intermediate parse tree is ever allocated. A well-formed
file is parsed by a small loop over Lark's own tables (``_FastParser``); any
syntax error hands the whole parse back to Lark, so error messages come from
Lark's parser state exactly as before. After a syntax error the token stream
is re-parsed one declaration at a time so that every independent mistake in
a file is reported, not only the first.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from bisect import bisect_left
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from itertools import chain
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.grammar import Rule
from lark.lexer import Lexer
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from . import ast
from .diagnostics import Diagnostic, RulesError, error, sorted_unique
from .source import Source, Span
from .syntax_errors import NAME_EXPECTED_AFTER, syntax_error
from .tokenizer import DECLARATION_STARTS, Token, tokenize


class _TokenStream(Lexer):
    """Feeds an already tokenized list to Lark (our "custom lexer")."""

    def __init__(self, lexer_conf: Any):
        pass

    def lex(self, tokens: list[Token]):  # type: ignore[override]
        return iter(tokens)


# A string token with no escapes and no control characters (which JSON rejects).
_PLAIN_STRING = re.compile(r'"[^"\\\x00-\x1f]*"')


def _start(item: Any) -> int:
    return item.start_pos if isinstance(item, Token) else item.span.start


def _end(item: Any) -> int:
    return item.end_pos if isinstance(item, Token) else item.span.end


class _TreeBuilder:
    """Lark callbacks, one per grammar rule or alias, that build AST nodes."""

    def __init__(self) -> None:
        self.source: Source = Source("<string>", "")
        self.problems: list[Diagnostic] = []

    def _span(self, first: Any, last: Any) -> Span:
        return Span(self.source, _start(first), _end(last))

    def _token_span(self, token: Token) -> Span:
        return Span(self.source, token.start_pos, token.end_pos)

    def _string(self, token: Token) -> str:
        if _PLAIN_STRING.fullmatch(token.value):
            return token.value[1:-1]  # what json.loads returns, without its cost
        try:
            return json.loads(token.value)
        except ValueError as exc:
            self.problems.append(
                error(
                    f"invalid escape in string: {exc.msg.lower()}",
                    self._token_span(token),
                    code="syntax",
                    hint='strings use JSON escapes: \\" \\\\ \\n \\t \\uXXXX',
                )
            )
            return token.value[1:-1]

    # --- declarations ---

    def start(self, children: list) -> list:
        return children

    def expression(self, children: list) -> Any:
        return children[0]

    def ident(self, children: list) -> ast.Ident:
        (token,) = children
        return ast.Ident(token.value, self._token_span(token))

    def ruleset_decl(self, children: list) -> ast.RulesetDecl:
        keyword, name = children
        return ast.RulesetDecl(name, self._span(keyword, name))

    def content_decl(self, children: list) -> ast.ContentDecl:
        keyword, name, (payload, end) = children
        return ast.ContentDecl(name, payload, Span(self.source, keyword.start_pos, end))

    def model_decl(self, children: list) -> ast.ModelDecl:
        keyword, name, path = children
        path_node = ast.String(self._string(path), self._token_span(path))
        return ast.ModelDecl(name, path_node, self._span(keyword, path))

    def segment_decl(self, children: list) -> ast.SegmentDecl:
        keyword, name, condition = children
        return ast.SegmentDecl(name, condition, self._span(keyword, condition))

    def rule_decl(self, children: list) -> ast.RuleDecl:
        rule_kw, name, when_kw, condition, content, slot, minus, number = children
        priority = None
        last: Any = slot or content
        if number is not None:
            last = number
            if not number.value.isdigit():
                self.problems.append(
                    error(
                        f"priority must be a whole number, not {number.value}",
                        self._token_span(number),
                        code="syntax",
                    )
                )
            else:
                priority = -int(number.value) if minus is not None else int(number.value)
        return ast.RuleDecl(name, condition, content, slot, priority, self._span(rule_kw or when_kw, last))

    def default_decl(self, children: list) -> ast.DefaultDecl:
        keyword, content, slot = children
        return ast.DefaultDecl(content, slot, self._span(keyword, slot or content))

    def test_decl(self, children: list) -> ast.TestDecl:
        keyword, title, at_word, at_value, *rest = children
        if at_word is not None and at_word.value != "at":
            self.problems.append(
                error(
                    f"expected 'at', 'given' or 'expect' after the test's title, found '{at_word.value}'",
                    self._token_span(at_word),
                    code="syntax",
                )
            )
        given = tuple(item for item in rest if isinstance(item, ast.Given))
        expect = tuple(item for item in rest if isinstance(item, ast.Expectation))
        title_node = ast.String(self._string(title), self._token_span(title))
        return ast.TestDecl(title_node, given, expect, at_value, self._span(keyword, expect[-1]))

    def given(self, children: list) -> ast.Given:
        feature, value = children
        return ast.Given(feature, value, self._span(feature, value))

    def expectation(self, children: list) -> ast.Expectation:
        slot, content = children
        return ast.Expectation(slot, content, self._span(slot, content))

    # --- expressions ---

    def or_expr(self, children: list) -> ast.Or:
        return ast.Or(tuple(children), self._span(children[0], children[-1]))

    def and_expr(self, children: list) -> ast.And:
        return ast.And(tuple(children), self._span(children[0], children[-1]))

    def not_(self, children: list) -> ast.Not:
        keyword, operand = children
        return ast.Not(operand, self._span(keyword, operand))

    def compare(self, children: list) -> ast.Compare:
        left, op, right = children
        return ast.Compare(op.value, left, right, self._span(left, right))

    def in_(self, children: list) -> ast.Compare:
        left, right = children
        return ast.Compare("in", left, right, self._span(left, right))

    def not_in(self, children: list) -> ast.Compare:
        left, _not, right = children
        return ast.Compare("not in", left, right, self._span(left, right))

    def is_missing(self, children: list) -> ast.IsMissing:
        operand, keyword = children
        return ast.IsMissing(operand, False, self._span(operand, keyword))

    def is_not_missing(self, children: list) -> ast.IsMissing:
        operand, _not, keyword = children
        return ast.IsMissing(operand, True, self._span(operand, keyword))

    def arithmetic(self, children: list) -> ast.Arithmetic:
        left, op, right = children
        return ast.Arithmetic(op.value, left, right, self._span(left, right))

    def negate(self, children: list) -> ast.Negate:
        minus, operand = children
        return ast.Negate(operand, self._span(minus, operand))

    def string(self, children: list) -> ast.String:
        (token,) = children
        return ast.String(self._string(token), self._token_span(token))

    def number(self, children: list) -> ast.Number:
        (token,) = children
        return ast.Number(_number(token.value), False, self._token_span(token))

    def percent(self, children: list) -> ast.Number:
        (token,) = children
        return ast.Number(_number(token.value[:-1]), True, self._token_span(token))

    def duration(self, children: list) -> ast.Duration:
        (token,) = children
        return ast.Duration(_number(token.value[:-1]), token.value[-1], self._token_span(token))

    def boolean(self, children: list) -> ast.Boolean:
        (token,) = children
        return ast.Boolean(token.type == "TRUE", self._token_span(token))

    def list_(self, children: list) -> ast.ListLiteral:
        items = tuple(child for child in children[1:-1] if child is not None)
        return ast.ListLiteral(items, self._span(children[0], children[-1]))

    def attribute(self, children: list) -> ast.Attribute:
        scope, name = children
        return ast.Attribute(scope.value, name.value, self._span(scope, name))

    def name(self, children: list) -> ast.Name:
        (token,) = children
        return ast.Name(token.value, self._token_span(token))

    def call(self, children: list) -> ast.Call:
        function, *args, rpar = children
        args = tuple(arg for arg in args if arg is not None)
        return ast.Call(function.value, args, self._span(function, rpar))

    def group(self, children: list) -> Any:
        return children[0]

    # --- JSON: values travel as (python value, end offset) ---

    def json_object(self, children: list) -> tuple[dict, int]:
        _lbrace, *members, rbrace = children
        result: dict[str, Any] = {}
        for member in members:
            if member is None:
                continue
            key_token, value = member
            key = self._string(key_token)
            if key in result:
                self.problems.append(
                    error(f"duplicate key {json.dumps(key)} in this object", self._token_span(key_token), code="syntax")
                )
            result[key] = value
        return result, rbrace.end_pos

    def json_member(self, children: list) -> tuple[Token, Any]:
        key, (value, _end) = children
        return key, value

    def json_array(self, children: list) -> tuple[list, int]:
        _lsqb, *items, rsqb = children
        return [item[0] for item in items if item is not None], rsqb.end_pos

    def json_string(self, children: list) -> tuple[str, int]:
        (token,) = children
        return self._string(token), token.end_pos

    def json_number(self, children: list) -> tuple[int | float, int]:
        if len(children) == 2:
            return -_number(children[1].value), children[1].end_pos
        return _number(children[0].value), children[0].end_pos

    def json_true(self, children: list) -> tuple[bool, int]:
        return True, children[0].end_pos

    def json_false(self, children: list) -> tuple[bool, int]:
        return False, children[0].end_pos

    def json_null(self, children: list) -> tuple[None, int]:
        (token,) = children
        if token.value != "null":
            self.problems.append(
                error(
                    f"'{token.value}' is not a JSON value",
                    self._token_span(token),
                    code="syntax",
                    hint='write text in double quotes ("like this"), a number, true, false or null',
                )
            )
        return None, token.end_pos


def _number(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return float(text)


_GRAMMAR = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
_BUILDER = _TreeBuilder()
_LARK = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer=_TokenStream,
    transformer=_BUILDER,
    maybe_placeholders=True,
    start=["start", "expression"],
)
_LOCK = threading.Lock()


class _NoAction(Exception):
    """The fast loop met a token the tables have no action for: a syntax error."""


@dataclass(frozen=True, slots=True)
class _Reduce:
    """A reduction: pop ``size`` values, build a node with ``callback``, go to ``origin``'s state.

    ``callback`` is None for a ``?rule`` with one child, which Lark passes through
    unchanged (``ExpandSingleChild``): more than half of all reductions.
    """

    size: int
    callback: Callable[[list], Any] | None
    origin: str


_END = Token("$END", "", 0, 0)


class _FastParser:
    """Lark's LALR(1) tables and tree callbacks, driven by a plain loop.

    Lark's own loop costs most of a large file's parse: per token it re-reads
    its configuration and asserts, it looks states up by nonterminal names that
    are ``lark.Token`` objects (a Python-level ``__eq__`` on every goto), and it
    calls a wrapper for each of the many one-child reductions. Here every
    action is resolved once, up front. The loop only handles input that
    parses; on a syntax error it raises ``_NoAction`` and the caller parses
    again with Lark, which reports the error.
    """

    def __init__(self, lark: Lark):
        parser = lark.parser.parser.parser  # frontend -> LALR_Parser -> _Parser
        table = parser.parse_table
        callbacks = parser.callbacks
        assert all(isinstance(key, Rule) for key in callbacks), "no terminal callbacks"
        reductions: dict[Rule, _Reduce] = {}

        def action(kind: Any, arg: Any) -> int | _Reduce:
            if kind is Shift:
                return arg
            if arg not in reductions:
                size, callback = len(arg.expansion), callbacks[arg]
                passes_through = size == 1 and isinstance(callback, ExpandSingleChild)
                reductions[arg] = _Reduce(size, None if passes_through else callback, str(arg.origin.name))
            return reductions[arg]

        assert sorted(table.states) == list(range(len(table.states)))
        self._actions: list[dict[str, int | _Reduce]] = [
            {str(symbol): action(kind, arg) for symbol, (kind, arg) in table.states[state].items()}
            for state in range(len(table.states))
        ]
        self._start_states: dict[str, int] = dict(table.start_states)
        self._end_states: dict[str, int] = dict(table.end_states)

    def parse(self, tokens: list[Token], start: str) -> Any:
        actions: list[dict[str, Any]] = self._actions  # a shift's next state (an int), or a _Reduce
        end_state = self._end_states[start]
        states = [self._start_states[start]]
        values: list[Any] = []
        for token in chain(tokens, (_END,)):
            kind = token.type
            while True:
                action = actions[states[-1]].get(kind)
                if action.__class__ is int:
                    if token is _END:
                        raise _NoAction  # Lark asserts: nothing is shifted after the end
                    states.append(action)
                    values.append(token)
                    break
                if action is None:
                    raise _NoAction
                if action.callback is None:
                    del states[-1]
                else:
                    size = action.size
                    if size:
                        children = values[-size:]
                        del states[-size:]
                        del values[-size:]
                    else:
                        children = []
                    values.append(action.callback(children))
                state = actions[states[-1]][action.origin]
                states.append(state)
                if state == end_state and token is _END:
                    return values[-1]
        raise AssertionError("unreachable: the end token either finishes the parse or fails it")


def _fast_parser() -> _FastParser | None:
    """The fast loop, or None (Lark's own loop) if this Lark keeps its tables otherwise.

    It reads Lark's internals, so a Lark release that moves them costs speed,
    not correctness; a test checks that the fast loop is in use.
    """
    try:
        return _FastParser(_LARK)
    except (AttributeError, AssertionError, KeyError, TypeError):
        return None


_FAST = _fast_parser()


def _parse_tokens(tokens: list[Token], start: str, problems: list[Diagnostic]) -> Any:
    """Parse with the fast loop; on a syntax error, parse again with Lark so that it raises.

    Problems the tree callbacks reported during the failed attempt are dropped
    (from ``problems``, the builder's list) so that Lark's pass reports them once.
    """
    if _FAST is None:
        return _LARK.parse(tokens, start=start)  # type: ignore[arg-type]
    reported = len(problems)
    try:
        return _FAST.parse(tokens, start)
    except _NoAction:
        del problems[reported:]
        return _LARK.parse(tokens, start=start)  # type: ignore[arg-type]


def parse_source(source: Source) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse what can be parsed; return the module and every problem found.

    Declarations with a syntax error are left out of the module, so later
    stages can still check the rest of the file.
    """
    with collector_paused():  # the tokens are as many objects as the tree's nodes
        lexed = tokenize(source)
        comments = tuple(ast.Comment(c.value, Span(source, c.start_pos, c.end_pos)) for c in lexed.comments)
        with _LOCK:
            _BUILDER.source = source
            _BUILDER.problems = problems = list(lexed.diagnostics)
            try:
                declarations = _parse_tokens(lexed.tokens, "start", problems)
            except UnexpectedInput:
                declarations = []
                # A declaration with a lexical error (say, a string never closed that
                # swallowed the rest of its line) gets no second, consequential error.
                lexical = [problem.span.start for problem in lexed.diagnostics]
                chunks = _declaration_chunks(lexed.tokens)
                for index, chunk in enumerate(chunks):
                    try:
                        declarations.extend(_parse_tokens(chunk, "start", problems))
                    except UnexpectedToken as exc:
                        following = chunks[index + 1][0] if index + 1 < len(chunks) else None
                        problem = syntax_error(source, exc, chunk, following)
                        first = bisect_left(lexical, chunk[0].start_pos)
                        if first == len(lexical) or lexical[first] > problem.span.start:
                            problems.append(problem)
            _BUILDER.source = Source("<string>", "")
            _BUILDER.problems = []
    module = ast.Module(tuple(declarations), source.name, comments)
    return module, sorted_unique(problems)


@contextmanager
def collector_paused():
    """Parsing and compiling allocate hundreds of thousands of objects that all
    survive; letting the cyclic collector scan them again and again costs a
    third of the time on large rulesets and frees nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse one file's text into a module; raise ``RulesError`` on any syntax error."""
    module, problems = parse_source(Source(filename, text))
    if problems:
        raise RulesError(problems)
    return module


def parse_expression(text: str, filename: str = "<expression>") -> ast.Expr:
    """Parse one expression (a model's input feature, say); raise ``RulesError`` on errors."""
    source = Source(filename, text)
    lexed = tokenize(source)
    problems = list(lexed.diagnostics)
    expr = None
    with _LOCK:
        _BUILDER.source = source
        _BUILDER.problems = problems
        try:
            expr = _parse_tokens(lexed.tokens, "expression", problems)
        except UnexpectedToken as exc:
            problems.append(syntax_error(source, exc, lexed.tokens or [Token("$END", "", 0, 0)], None))
        except UnexpectedInput as exc:  # an empty text
            problems.append(error(f"not an expression: {exc}", Span(source, 0, len(text)), code="syntax"))
        finally:
            _BUILDER.source = Source("<string>", "")
            _BUILDER.problems = []
    if problems or expr is None:
        raise RulesError(problems)
    return expr


def _declaration_chunks(tokens: list[Token]) -> list[list[Token]]:
    chunks: list[list[Token]] = []
    current: list[Token] = []
    for token in tokens:
        starts = token.type in DECLARATION_STARTS and current
        if starts and current[-1].type in NAME_EXPECTED_AFTER:
            starts = False
        if starts and token.type == "WHEN" and len(current) == 2 and current[0].type == "RULE":
            starts = False
        if starts:
            chunks.append(current)
            current = []
        current.append(token)
    if current:
        chunks.append(current)
    return chunks
