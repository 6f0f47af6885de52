"""Lark's reductions to the typed AST: one callback per grammar rule or alias.

The tree is built during the parse (the parser calls a callback on every
reduction), so no intermediate parse tree is ever allocated. A few mistakes
that the grammar lets through (a bad string escape, a fractional priority, a
duplicate JSON key) are reported here, as problems of the parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from . import ast
from .diagnostics import Diagnostic, error
from .source import Source, Span
from .tokenizer import Token

# A string token with no escapes and no control characters (which JSON rejects).
_PLAIN_STRING = re.compile(r'"[^"\\\x00-\x1f]*"')


def _start(item: Any) -> int:
    return item.start_pos if isinstance(item, Token) else item.span.start


def _end(item: Any) -> int:
    return item.end_pos if isinstance(item, Token) else item.span.end


@dataclass(frozen=True, slots=True)
class TreeBuilder:
    """Lark callbacks, one per grammar rule or alias, that build AST nodes.

    One builder serves one parse call: it holds that call's source (which
    every span points into) and its list of problems, so parses in several
    threads never share one.
    """

    source: Source
    problems: list[Diagnostic]

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
        rule_kw, name, when_kw, condition, content, slot, minus, number, cap = children
        priority = None
        last: Any = cap or number or slot or content
        if number is not None:
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
        return ast.RuleDecl(name, condition, content, slot, priority, cap, self._span(rule_kw or when_kw, last))

    def cap_clause(self, children: list) -> ast.Cap:
        """``cap N per WINDOW``; whether N is a whole number is the checker's question."""
        keyword, minus, number, window = children
        value = _number(number.value)
        limit = ast.Number(-value if minus is not None else value, False, self._span(minus or number, number))
        duration = self.duration([window])
        return ast.Cap(limit, duration, self._span(keyword, window))

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

    def experiment_decl(self, children: list) -> ast.ExperimentDecl:
        keyword, name, *clauses = children
        found: dict[str, Any] = {}
        for word, value in clauses:
            expected = _CLAUSE_WORDS[type(value)]
            if word.value not in expected:
                self.problems.append(
                    error(
                        f"expected {' or '.join(repr(w) for w in expected)}, found '{word.value}'",
                        self._token_span(word),
                        code="syntax",
                        hint="an experiment has arms (arms a 50%, b 50%), and may have a seed and a coverage",
                    )
                )
            elif word.value in found:
                self.problems.append(
                    error(f"this experiment already has its {word.value}", self._token_span(word), code="syntax")
                )
            else:
                found[word.value] = value
        arms = found.get("arms", ())
        if not any(isinstance(value, tuple) for _word, value in clauses):
            self.problems.append(
                error(
                    f"experiment '{name.name}' has no arms",
                    name.span,
                    code="syntax",
                    hint="list them with their weights: arms control 50%, treatment 50%",
                )
            )
        last = clauses[-1][1]
        end = last[-1] if isinstance(last, tuple) else last
        return ast.ExperimentDecl(
            name, arms, found.get("seed"), found.get("coverage"), Span(self.source, keyword.start_pos, end.span.end)
        )

    def arms_clause(self, children: list) -> tuple[Token, tuple[ast.Arm, ...]]:
        word, *arms = children
        return word, tuple(arms)

    def seed_clause(self, children: list) -> tuple[Token, ast.String]:
        word, token = children
        return word, ast.String(self._string(token), self._token_span(token))

    def share_clause(self, children: list) -> tuple[Token, ast.Number]:
        word, token = children
        return word, self.percent([token])

    def arm(self, children: list) -> ast.Arm:
        name, weight = children
        number = self.percent([weight])
        return ast.Arm(ast.Ident(name.value, self._token_span(name)), number, self._span(name, weight))

    def holdout_decl(self, children: list) -> ast.HoldoutDecl:
        keyword, share, word, seed = children
        seed_node = None
        if word is not None:
            if word.value != "seed":
                self.problems.append(
                    error(
                        f"expected 'seed' after the holdout's share, found '{word.value}'",
                        self._token_span(word),
                        code="syntax",
                    )
                )
            seed_node = ast.String(self._string(seed), self._token_span(seed))
        return ast.HoldoutDecl(self.percent([share]), seed_node, self._span(keyword, seed or share))

    def attribute_decl(self, children: list) -> ast.AttributeDecl:
        """``attribute SCOPE.NAME TYPE [public]``; whether the scope and type exist is the checker's question."""
        keyword, scope, name, kind, public = children
        if public is not None and public.value != ast.PUBLIC:
            self.problems.append(
                error(
                    f"expected 'public' or the end of the declaration, found '{public.value}'",
                    self._token_span(public),
                    code="syntax",
                    hint="declare an attribute like: attribute user.country text public",
                )
            )
        attribute = ast.Attribute(scope.value, name.value, self._span(scope, name))
        type_word = ast.Ident(kind.value, self._token_span(kind))
        return ast.AttributeDecl(attribute, type_word, public is not None, self._span(keyword, public or kind))

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


# The words that may introduce each kind of experiment clause, by what the clause holds.
_CLAUSE_WORDS: dict[type, tuple[str, ...]] = {tuple: ("arms",), ast.String: ("seed",), ast.Number: ("coverage",)}


def _number(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return float(text)
