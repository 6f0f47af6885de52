"""The tokenizer in C against the tokenizer in Python: the same tokens and comments, or the Python's turn.

The helper (dsl/_tokens.c) is built by the package's install; ``tokenize``
runs the Python where it is missing, with ``TAILOR_NO_NATIVE=1``, and for any
text the C leaves to it (a lexical error, or a character outside ASCII beyond
strings and comments). Texts are drawn from the language's own pieces, the
odd ones included, and from any characters.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tailor.dsl import native, tokenizer
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import CONTEXTUAL_KEYWORDS, KEYWORDS, PUNCTUATION

ROOT = Path(__file__).resolve().parents[1]

# Pieces of well-formed rules text: words, names, numbers, durations, percentages, strings, comments.
CLEAN = [
    *KEYWORDS,
    *CONTEXTUAL_KEYWORDS,
    *PUNCTUATION,
    "attribute",
    "user",
    "age",
    "views",
    "hero",
    "x_1",
    "0",
    "7",
    "0.75",
    "12",
    "3e5",
    "1.5E-3",
    "24h",
    "90s",
    "2w",
    "1.5d",
    "50%",
    "12.5%",
    '"Electronics"',
    '"a \\" quote"',
    '"\\\\"',
    '"é ✓ 日本"',
    "# a comment",
    "# non-ASCII é\n",
    " ",
    "\n",
    "\t",
    "\r\n",
]
# Pieces the C leaves to the Python, or that end a token early.
ODD = ["&", "&&", "|", "!", "'quoted'", "'", '"open', "\\", "\x00", "\v", "é", "٣", "1.", "10ms", "1e+", "1x", "1.2.3"]

clean_text = st.lists(st.sampled_from(CLEAN), max_size=40).map(" ".join)
odd_text = st.lists(st.sampled_from(CLEAN + ODD), max_size=40).map("".join)
any_text = st.text(max_size=80)


def _tokens(ts: list[tokenizer.Token]) -> list[tuple[str, str, int, int]]:
    return [(t.type, t.value, t.start_pos, t.end_pos) for t in ts]


def _agree(text: str) -> bool:
    """Whether the C took ``text``; when it did, it must have made exactly the Python's tokens."""
    assert tokenizer._tokens is not None
    scanned = tokenizer._tokens.scan(text)
    if scanned is None:
        return False
    expected = tokenizer.python_tokenize(Source("t.rules", text))
    assert expected.diagnostics == [], "the C took a text with a lexical error"
    tokens, comments = scanned
    assert _tokens(tokens) == _tokens(expected.tokens)
    assert _tokens(comments) == _tokens(expected.comments)
    assert all(type(t) is tokenizer.Token for t in tokens + comments)
    return True


def test_the_helper_is_built_and_used() -> None:
    assert tokenizer._tokens is not None, "dsl/_tokens.c was not built: every file is tokenized in Python"
    assert (tokenizer._scan is not None) == native.allowed()


@settings(max_examples=400, deadline=None)
@given(clean_text)
def test_the_c_takes_well_formed_text_and_agrees(text: str) -> None:
    assert _agree(text), f"the C left a well-formed text to the Python: {text!r}"


@settings(max_examples=400, deadline=None)
@given(odd_text | any_text)
def test_the_c_agrees_or_leaves_the_text_to_the_python(text: str) -> None:
    _agree(text)


# Where a word's type depends on what came before it.
IN_CONTEXT = [
    "rule r when true then show cap in cap cap 3 per 24h",  # content, slot, then the cap itself
    "rule r when true then show per in hero cap 2 per 7d priority 3",
    "attribute user.age number\nrule attribute when context.attribute == 1 then show a in b",
    'experiment e arms rules 50%, model 50% holdout 5% when context.page == "home"',
    "experiment e arms show 50%, default 50%\nrule r when true then show cap in hero cap 1 per 1h",
    'test t given context.page = "home" expect hero = default, footer = promo',
    "context.default context.rule context.when . in . cap per",
]


def test_words_in_context_agree() -> None:
    for text in IN_CONTEXT:
        assert _agree(text), text


def test_the_shipped_rulesets_are_tokenized_in_c() -> None:
    files = sorted(ROOT.glob("rulesets/**/*.rules"))
    assert files
    for file in files:
        assert _agree(file.read_text()), file


def test_a_lexical_error_is_reported_by_the_python() -> None:
    lexed = tokenizer.tokenize(Source("t.rules", 'rule r when x && y then show "a" in hero'))
    assert [d.message for d in lexed.diagnostics] == ["unexpected character '&&'"]
    assert [t.type for t in lexed.tokens][3:6] == ["NAME", "_AND", "NAME"]
