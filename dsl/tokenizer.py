"""Turns source text into tokens with one compiled master regex.

Lark's own lexer tracks lines and columns for every token; on a 10,000-rule
file that bookkeeping alone costs more than the whole parse budget. This
tokenizer records only offsets (spans turn them into lines on demand) and
hands Lark's LALR parser lightweight tokens.

A file with no lexical error is tokenized in C (``_tokens.c``) where the
package was built with it: the same tokens from the same tables, some five
times faster with the collector paused, as parsing runs it. Anything else,
and every file with ``TAILOR_NO_NATIVE=1``, goes through ``python_tokenize``,
which also reports lexical errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import native
from .diagnostics import Diagnostic, error
from .source import Source, Span

try:
    from . import _tokens  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the Python tokenizes every file
    _tokens = None

KEYWORDS: dict[str, str] = {
    "ruleset": "RULESET",
    "content": "CONTENT",
    "model": "MODEL",
    "segment": "SEGMENT",
    "rule": "RULE",
    "when": "WHEN",
    "then": "_THEN",
    "show": "_SHOW",
    "in": "_IN",
    "priority": "_PRIORITY",
    "default": "DEFAULT",
    "and": "_AND",
    "or": "_OR",
    "not": "NOT",
    "is": "_IS",
    "missing": "MISSING",
    "true": "TRUE",
    "false": "FALSE",
    "test": "TEST",
    "given": "_GIVEN",
    "expect": "_EXPECT",
    "experiment": "EXPERIMENT",
    "holdout": "HOLDOUT",
}

# Words that are keywords only where nothing else could stand, so they stay free as
# names everywhere else (a content or segment called `cap`): `cap` in a rule's tail,
# after what it shows, and `per` right after `cap N`.
CONTEXTUAL_KEYWORDS: dict[str, str] = {"cap": "CAP", "per": "_PER"}

# `attribute` starts a declaration only when an attribute follows it (``attribute user.age
# number``): a word followed by a name and a dot, which no other declaration can contain. It is
# a name everywhere else, so rulesets that already call a content or a segment `attribute` parse.
ATTRIBUTE_WORD = "attribute"

PUNCTUATION: dict[str, str] = {
    "==": "COMP",
    "!=": "COMP",
    "<=": "COMP",
    ">=": "COMP",
    "<": "COMP",
    ">": "COMP",
    "=": "_EQUAL",
    "+": "PLUS",
    "-": "MINUS",
    "*": "STAR",
    "/": "SLASH",
    ",": "_COMMA",
    ":": "_COLON",
    ".": "_DOT",
    "(": "_LPAR",
    ")": "RPAR",
    "[": "LSQB",
    "]": "RSQB",
    "{": "LBRACE",
    "}": "RBRACE",
}

# Token types that begin a declaration: the parser resynchronizes on them
# after a syntax error so that one mistake does not hide the next.
DECLARATION_STARTS = frozenset(
    {"RULESET", "CONTENT", "MODEL", "SEGMENT", "RULE", "WHEN", "DEFAULT", "TEST", "EXPERIMENT", "HOLDOUT", "ATTRIBUTE"}
)

# A word followed by a percentage is an experiment's arm (``arms rules 50%, model 50%``),
# even a reserved one; only these keywords may stand before a percentage themselves.
_BEFORE_PERCENT = frozenset({"HOLDOUT", "WHEN", "_GIVEN", "_IN", "NOT", "_AND", "_OR"})
_ARM_WORDS = frozenset(KEYWORDS.values()) - _BEFORE_PERCENT | frozenset(CONTEXTUAL_KEYWORDS.values())

# Whitespace is skipped as the prefix of the next token's match rather than as
# a token of its own: that halves the matches on a typical file. The prefix is
# possessive so that no branch can match a whitespace character; whitespace at
# the end of the text matches as no group (``\Z``). The most frequent tokens
# come first; no two branches before ERROR can start with the same character,
# except STRING and UNTERMINATED, and the numbers, whose order matters.
_MASTER = re.compile(
    r"""
    [ \t\r\n\f]*+
    (?:
    (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<PUNCT>==|!=|<=|>=|[<>=+\-*/,:.()\[\]{}])
  | (?P<STRING>"(?:[^"\\\n]++|\\.)*+")  # possessive: no backtracking point per character
  | (?P<UNTERMINATED>"[^\n]*)
  | (?P<DURATION>\d+(?:\.\d+)?[smhdw](?![\w.]))
  | (?P<PERCENT>\d+(?:\.\d+)?%)
  | (?P<NUMBER>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<BADNUMBER>\d[\w.]*)
  | (?P<COMMENT>\#[^\n]*)
  | (?P<SQUOTED>'[^'\n]*'?)
  | (?P<ERROR>&&?|\|\|?|.)
  | \Z
    )
    """,
    re.VERBOSE,
)


class Token:
    """What Lark's parser needs of a token: a type, a value and a position."""

    __slots__ = ("end_pos", "start_pos", "type", "value")

    # Lark reads these when it builds its end-of-input token.
    line = column = end_line = end_column = None

    def __init__(self, type: str, value: str, start_pos: int, end_pos: int):
        self.type = type
        self.value = value
        self.start_pos = start_pos
        self.end_pos = end_pos

    def __repr__(self) -> str:
        return f"Token({self.type}, {self.value!r}, {self.start_pos})"


@dataclass(frozen=True, slots=True)
class Tokens:
    tokens: list[Token]
    comments: list[Token]
    diagnostics: list[Diagnostic]


# The words the tokenizer looks up: contextual keywords are demoted to names out of context.
_WORDS = {**KEYWORDS, **CONTEXTUAL_KEYWORDS}
# Token types that change what a contextual keyword means.
_CONTEXT_CHANGES = frozenset({"_SHOW", "CAP", "_PER"})


def tokenize(source: Source) -> Tokens:
    """The tokens, comments and lexical errors of ``source``: in C when it can, as the module says."""
    if _scan is not None:
        scanned = _scan(source.text)
        if scanned is not None:
            return Tokens(*scanned, [])
    return python_tokenize(source)


def python_tokenize(source: Source) -> Tokens:
    """What ``tokenize`` returns, in Python: any file, lexical errors and all."""
    text = source.text
    tokens: list[Token] = []
    comments: list[Token] = []
    problems: list[Diagnostic] = []
    append = tokens.append
    keywords = _WORDS
    punctuation = PUNCTUATION
    previous = ""
    in_expect = False
    shown = False  # past a rule's `show`: `cap` may start its cap
    capping = False  # past `cap`: `per` may follow
    for match in _MASTER.finditer(text):
        kind = match.lastgroup
        if kind is None:  # only whitespace was left
            break
        start, end = match.span(kind)
        value = text[start:end]
        if kind == "NAME":
            # After a dot every word is an attribute name: `context.default` is fine.
            kind = "NAME" if previous == "_DOT" else keywords.get(value, "NAME")
            if kind == "DEFAULT" and in_expect and previous == "_EQUAL":
                kind = "NAME"  # a test's `expect SLOT = default`: the slot's default content
            elif kind == "_EXPECT":
                in_expect = True
            elif kind in DECLARATION_STARTS:
                in_expect = shown = capping = False
            elif kind in _CONTEXT_CHANGES:
                kind, shown, capping = _contextual(kind, value, previous, shown, capping)
        elif kind == "PUNCT":
            kind = punctuation[value]
            if kind == "_DOT" and len(tokens) >= 2 and _declares_attribute(tokens[-2], tokens[-1]):
                tokens[-2].type = "ATTRIBUTE"
                in_expect = shown = capping = False
        elif kind == "COMMENT":
            comments.append(Token(kind, value, start, end))
            continue
        elif kind == "PERCENT" and tokens and tokens[-1].type in _ARM_WORDS:
            if tokens[-1].type == "_SHOW":
                shown = capping = False  # an arm named show: no rule's tail follows it
            tokens[-1].type = "NAME"
        elif kind not in ("STRING", "NUMBER", "DURATION", "PERCENT"):
            problems.append(_lexical_error(kind, value, Span(source, start, end)))
            replacement = _stand_in(kind, value)
            if replacement is None:
                continue
            kind, value = replacement
        previous = kind
        append(Token(kind, value, start, end))
    return Tokens(tokens, comments, problems)


def _declares_attribute(word: Token, scope: Token) -> bool:
    """Whether ``word scope .`` starts an attribute declaration: ``attribute user.``."""
    return word.type == "NAME" and word.value == ATTRIBUTE_WORD and scope.type == "NAME"


def _contextual(kind: str, value: str, previous: str, shown: bool, capping: bool) -> tuple[str, bool, bool]:
    """A contextual keyword's token type, or NAME out of its context; and the new context.

    After `show` the next word is the content and after `in` the slot, so `cap`
    is a keyword only after those (`then show cap in cap cap 3 per 24h` is fine).
    """
    if kind == "_SHOW":
        return kind, True, False
    if kind == "CAP":
        if shown and previous not in ("_SHOW", "_IN"):
            return kind, False, True
        return "NAME", shown, capping
    return (kind, shown, False) if capping else ("NAME", shown, capping)


_OPERATOR_STAND_INS = {
    "&": ("_AND", "and"),
    "&&": ("_AND", "and"),
    "|": ("_OR", "or"),
    "||": ("_OR", "or"),
    "!": ("NOT", "not"),
}


def _stand_in(kind: str, value: str) -> tuple[str, str] | None:
    """The token the author most likely meant, so that one slip makes one error."""
    if kind in ("UNTERMINATED", "SQUOTED"):
        return "STRING", json.dumps(value.strip("'\""))
    if kind == "BADNUMBER":
        return "NUMBER", "0"
    return _OPERATOR_STAND_INS.get(value)


def _lexical_error(kind: str, value: str, span: Span) -> Diagnostic:
    if kind == "UNTERMINATED":
        return error(
            "this string is never closed",
            span,
            code="syntax",
            hint='add the closing " on the same line',
        )
    if kind == "SQUOTED":
        return error(
            "strings use double quotes",
            span,
            code="syntax",
            hint="write " + '"' + value.strip("'") + '"',
        )
    if kind == "BADNUMBER":
        return error(
            f"'{value}' is not a number or a duration",
            span,
            code="syntax",
            hint="write numbers like 3 or 0.7, percentages like 70%, durations like 90s, 30m, 24h, 7d or 2w",
        )
    if value in ("&", "&&"):
        hint = "write 'and' instead"
    elif value in ("|", "||"):
        hint = "write 'or' instead"
    elif value == "!":
        hint = "write 'not' instead, or != for 'not equal'"
    else:
        hint = ""
    return error(f"unexpected character {value!r}", span, code="syntax", hint=hint)


def _native_scan() -> Callable[[str], tuple[list[Token], list[Token]] | None] | None:
    """The C scanner, handed this module's tables; None when it is not built or not allowed."""
    if _tokens is None or not native.allowed():
        return None
    _tokens.configure(Token, _WORDS, PUNCTUATION, DECLARATION_STARTS, _ARM_WORDS)
    return _tokens.scan


_scan = _native_scan()
