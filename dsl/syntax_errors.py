"""Syntax errors in words an author reads, not in the grammar's token names.

Lark reports a syntax error as the token it met and the token types it could
have taken; this module turns that into one diagnostic per declaration.
"""

from __future__ import annotations

from typing import Any

from lark import UnexpectedToken

from .diagnostics import Diagnostic, did_you_mean, error
from .source import Source, Span
from .tokenizer import ATTRIBUTE_WORD, CONTEXTUAL_KEYWORDS, DECLARATION_STARTS, KEYWORDS, Token

# Tokens after which a declaration keyword is a misused name, not a new declaration.
NAME_EXPECTED_AFTER = frozenset({"RULESET", "CONTENT", "MODEL", "SEGMENT", "RULE", "_SHOW", "_IN", "ATTRIBUTE"})

_EXPRESSION_STARTS = frozenset(
    {"NAME", "STRING", "NUMBER", "PERCENT", "DURATION", "TRUE", "FALSE", "LSQB", "_LPAR", "MINUS", "NOT"}
)
_OPERATORS = frozenset({"COMP", "PLUS", "MINUS", "STAR", "SLASH", "_AND", "_OR", "_IN", "_IS", "NOT"})
_WORDS = {
    "NAME": "a name",
    "STRING": 'a string in double quotes ("...")',
    "NUMBER": "a number",
    "PERCENT": "a percentage",
    "DURATION": "a duration (like 24h or 7d)",
    "COMP": "a comparison (==, !=, <, <=, >, >=)",
    "_EQUAL": "'='",
    "_COMMA": "','",
    "_COLON": "':'",
    "_DOT": "'.'",
    "_LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "$END": "the end of the file",
}
_WORDS.update({token_type: f"'{word}'" for word, token_type in [*KEYWORDS.items(), *CONTEXTUAL_KEYWORDS.items()]})
_WORDS["ATTRIBUTE"] = "'attribute'"

_ALL_KEYWORDS = {**KEYWORDS, **CONTEXTUAL_KEYWORDS}
_KEYWORD_TYPES = frozenset(_ALL_KEYWORDS.values())


def _describe_expected(expected: set[str]) -> str:
    expected = set(expected)
    phrases: list[str] = []
    if len(expected & _EXPRESSION_STARTS) >= 6:
        expected -= _EXPRESSION_STARTS
        phrases.append("a condition or a value")
    if len(expected & DECLARATION_STARTS) >= 5:
        expected -= DECLARATION_STARTS
        phrases.append("a declaration (rule, when, segment, content, model, default, experiment, holdout, attribute)")
    operators = expected & _OPERATORS
    if len(operators) >= 3:
        expected -= _OPERATORS
    ordered = sorted(expected, key=lambda t: (t not in _KEYWORD_TYPES, _WORDS.get(t, t)))
    phrases = [_WORDS.get(t, t.lower()) for t in ordered] + phrases
    if len(operators) >= 3:
        phrases.append("an operator such as 'and', 'or' or '>'")
    if not phrases:
        return "something else"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _describe_found(token: Any) -> str:
    if token.type == "$END":
        return "the end of the file"
    if token.type == "STRING":
        return f"the string {token.value}"
    return f"'{token.value}'"


def _acceptable(exc: UnexpectedToken) -> set[str]:
    """The tokens that could really come next.

    LALR tables merge look-aheads, so the set Lark reports can name tokens that
    are not valid here; replaying each candidate on a copy of the parser state
    is slower but exact, and only runs on the error path.
    """
    if exc.interactive_parser is not None:
        try:
            return set(exc.interactive_parser.accepts())
        except Exception:  # an unusual parser state: fall back to Lark's set
            pass
    return set(exc.expected)


def _cap_hint(token: Any, chunk: list[Token]) -> str:
    """How to write a cap, when the error is in or around one."""
    types = [t.type for t in chunk if t.start_pos < token.start_pos]
    if token.type == "CAP" and types[:1] == ["DEFAULT"]:
        return "a default is what a slot shows when no rule fires: only rules can be capped"
    if "CAP" not in types:
        return ""
    if token.type == "_PRIORITY":
        return "the cap comes last: write the priority before it"
    return "write a cap like: cap 3 per 24h (a whole number of impressions, then a duration)"


def syntax_error(source: Source, exc: UnexpectedToken, chunk: list[Token], following: Token | None) -> Diagnostic:
    """The error of one declaration; ``following`` starts the next one (None at the end of the file)."""
    token = exc.token
    expected = _acceptable(exc)
    if token.type == "$END":
        last = chunk[-1]
        span = (
            Span(source, last.end_pos, last.end_pos + 1)
            if last.end_pos < len(source.text)
            else Span(source, last.start_pos, last.end_pos)
        )
        if following is not None:  # the declaration stops short, but the file goes on
            message = (
                f"expected {_describe_expected(expected)} after '{last.value}', found {_describe_found(following)}"
            )
        else:
            message = f"unexpected end of input after '{last.value}', expected {_describe_expected(expected)}"
        return error(message, span, code="syntax")
    span = Span(source, token.start_pos, token.end_pos)
    hint = ""
    if expected == {"NAME"} and token.value in KEYWORDS:
        return error(
            f"'{token.value}' is a reserved word and cannot be used as a name",
            span,
            code="syntax",
            hint=f"choose another name, such as '{token.value}_1'",
        )
    if token.type == "_EQUAL" and "_EQUAL" not in expected:
        hint = "use == to compare two values"
    elif token.type == "NAME" and token.value == ATTRIBUTE_WORD:
        hint = "declare an attribute with its scope and type, like: attribute user.age number"
    elif token.type == "NAME":
        keywords = [word for word, token_type in _ALL_KEYWORDS.items() if token_type in expected]
        hint = did_you_mean(token.value, keywords)
    hint = hint or _cap_hint(token, chunk)
    return error(
        f"expected {_describe_expected(expected)}, found {_describe_found(token)}",
        span,
        code="syntax",
        hint=hint,
    )
