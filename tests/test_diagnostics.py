"""Syntax errors: where they are, how many, and in words a marketer reads."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor import Diagnostic, RulesError, Severity
from tailor.dsl.diagnostics import render
from tailor.dsl.parser import parse, parse_source
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import CONTEXTUAL_KEYWORDS, KEYWORDS, PUNCTUATION

GOOD = """\
ruleset retail
content accessories = {"kind": "banner", "id": "acc-42", "tags": ["a", -1, null, true]}
model p_click = "models/p_click.onnx"
segment electronics_fan = views("Electronics", 24h) > 2 or user.tier in ["gold", "platinum",]
rule electronics_accessories
  when electronics_fan and p_click > 70% and not (user.email is not missing) and -user.age * 2 <= 10
  then show accessories in hero
  priority -10
  cap 3 per 24h
when user.tier == "gold" then show vip in hero
default show generic in hero
test "gold" at context.now given user.tier = "gold", p_click = 0.9 expect hero = vip, side = nothing
"""

# The names the grammar gives tokens: none of them may reach an author.
TOKEN_NAMES = frozenset(KEYWORDS.values()) | frozenset(CONTEXTUAL_KEYWORDS.values()) | frozenset(PUNCTUATION.values())
TOKEN_NAMES |= {"NAME", "STRING", "NUMBER", "PERCENT", "DURATION", "COMMENT", "$END", "_EQUAL", "RPAR", "LPAR"}
TOKEN_NAMES |= {"UNTERMINATED", "SQUOTED", "BADNUMBER", "ERROR", "WS", "PUNCT"}


def errors(text: str, filename: str = "shop.rules") -> list[Diagnostic]:
    with pytest.raises(RulesError) as info:
        parse(text, filename)
    assert info.value.diagnostics, "a RulesError carries at least one diagnostic"
    return info.value.diagnostics


def one_error(text: str) -> Diagnostic:
    found = errors(text)
    assert len(found) == 1, [d.message for d in found]
    return found[0]


def leaked_token_names(text: str) -> set[str]:
    return set(re.findall(r"[$\w]+", text)) & TOKEN_NAMES


def test_the_good_file_parses() -> None:
    assert len(parse(GOOD).declarations) == 8


# --- what a diagnostic carries, and how it is rendered -------------------------------------


def test_a_diagnostic_has_file_line_column_severity_and_message() -> None:
    diag = one_error("segment a = x\nwhen y = 1 then show b\n")
    assert diag.file == "shop.rules"
    assert (diag.line, diag.column) == (2, 8)
    assert diag.severity is Severity.ERROR
    assert str(diag.severity) == "error"
    assert diag.message == "expected 'then', found '='"


def test_render_gives_location_source_line_and_caret() -> None:
    diag = one_error("segment a = x\nwhen y = 1 then show b\n")
    lines = render(diag).split("\n")
    assert lines[0] == "shop.rules:2:8: error: expected 'then', found '='"
    assert lines[2] == "2 | when y = 1 then show b"
    caret_line = lines[3]
    assert caret_line.index("^") == lines[2].index("=")
    assert caret_line.count("^") == 1
    assert "==" in caret_line  # the hint follows the caret


def test_the_caret_covers_the_whole_offending_token() -> None:
    diag = one_error("when a then show b\nwhen c >= 1 then show d priority high\n")
    lines = render(diag).split("\n")
    assert lines[0].startswith("shop.rules:2:34: error: ")
    assert lines[3].strip().split(" ")[-1] == "^^^^"
    assert lines[3].index("^") == lines[2].index("high")


def test_render_without_color_has_no_escape_codes_and_with_color_does() -> None:
    diag = one_error("when a = 1 then show b")
    assert "\033[" not in render(diag)
    assert "\033[" in render(diag, color=True)


def test_the_exception_message_is_the_rendered_diagnostics() -> None:
    with pytest.raises(RulesError) as info:
        parse("when a = 1 then show b\nwhen c = 2 then show d\n", "shop.rules")
    text = str(info.value)
    assert "shop.rules:1:8: error:" in text
    assert "shop.rules:2:8: error:" in text
    assert text.index("shop.rules:1:8") < text.index("shop.rules:2:8")


def test_to_dict_reports_positions() -> None:
    data = one_error("segment s = views(24hrs) > 2\n").to_dict()
    assert data["file"] == "shop.rules"
    assert (data["line"], data["column"], data["end_line"], data["end_column"]) == (1, 19, 1, 24)
    assert data["severity"] == "error"
    assert "durations like" in str(data["hint"])


# --- messages in words, never token names --------------------------------------------------


BROKEN = [
    "when a then",
    "when a then show",
    "when a > then show b",
    "when a and and b then show c",
    "when (a then show b",
    "when a) then show b",
    "when a then show b in",
    "when a then show b priority",
    "rule r then show b",
    "rule when a then show b",
    "segment = a",
    "segment s a",
    "segment s = f(a,",
    "segment s = [1, 2",
    "segment s = a.",
    "segment s = a is",
    "segment s = a not b",
    "content c = ",
    'content c = {"a" 1}',
    'content c = {"a": 1,}',
    'content c = {"a": }',
    'content c = ["a"]',
    "model m = 3",
    "ruleset",
    'test "t"',
    'test "t" given a expect b = c',
    'test "t" expect b',
    "default show",
    "show x",
    "1 + 2",
    ")",
    "when a then show b c",
]


@pytest.mark.parametrize("text", BROKEN)
def test_syntax_errors_name_no_grammar_tokens(text: str) -> None:
    for diag in errors(text):
        assert not leaked_token_names(diag.message + " " + diag.hint), diag.message
        assert diag.message[:1].islower() or diag.message[:1] == "'"
        assert diag.line >= 1 and diag.column >= 1


_PIECES = re.findall(r'"[^"]*"|\w+%?|[^\w\s]|\s+', GOOD)
_NOISE = [*_PIECES, *KEYWORDS, *CONTEXTUAL_KEYWORDS, *PUNCTUATION]
_NOISE += ["'x'", '"open', "24hrs", "&&", "@", "}", "=", "0.5.1"]


@st.composite
def damaged_files(draw: st.DrawFn) -> str:
    """The good file with a few pieces deleted, inserted or replaced."""
    pieces = list(_PIECES)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(pieces) - 1))
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        if action == "delete":
            del pieces[index]
        elif action == "insert":
            pieces.insert(index, draw(st.sampled_from(_NOISE)))
        else:
            pieces[index] = draw(st.sampled_from(_NOISE))
    return "".join(pieces)


@settings(max_examples=150, deadline=None)
@given(damaged_files())
def test_damaged_files_get_plain_sorted_unique_diagnostics(text: str) -> None:
    source = Source("shop.rules", text)
    _module, problems = parse_source(source)
    starts = [diag.span.start for diag in problems if diag.span is not None]
    assert len(starts) == len(problems)
    assert starts == sorted(starts)  # source order
    assert len({(diag.span.start, diag.message) for diag in problems if diag.span}) == len(problems)  # once each
    for diag in problems:
        assert not leaked_token_names(diag.message + " " + diag.hint), diag.message
        assert diag.file == "shop.rules"
        assert 1 <= diag.line <= text.count("\n") + 1
        assert diag.column >= 1
        assert render(diag).startswith(f"shop.rules:{diag.line}:{diag.column}: error: ")


# --- several errors in one file -------------------------------------------------------------------


def test_independent_errors_are_all_reported_in_source_order_once_each() -> None:
    text = (
        "segment fine = a\n"
        "when x = 1 then show b\n"  # = for ==
        "segment also_fine = c\n"
        "when y > then show d\n"  # missing operand
        "rule r when z then show e priority 1.5\n"  # non-integer priority
        'content c = {"k": nope}\n'  # bad JSON value
        "default show generic\n"
    )
    found = errors(text)
    assert [(d.line, d.column) for d in found] == [(2, 8), (4, 10), (5, 36), (6, 19)]
    assert len({d.message for d in found}) == 4
    assert "==" in found[0].hint
    assert "whole number" in found[2].message
    assert found[3].message == "'nope' is not a JSON value"


def test_the_good_declarations_around_errors_survive() -> None:
    text = "segment fine = a\nwhen x = 1 then show b\nsegment also_fine = c\ndefault show generic\n"
    module, problems = parse_source(Source("shop.rules", text))
    assert len(problems) == 1
    assert [type(decl).__name__ for decl in module.declarations] == ["SegmentDecl", "SegmentDecl", "DefaultDecl"]


def test_lexical_and_syntax_errors_in_different_declarations_are_all_reported() -> None:
    text = "when a == 'gold' then show b\nwhen c = 1 then show d\nsegment s = views(24hrs)\nwhen e then show\n"
    found = errors(text)
    assert [d.line for d in found] == [1, 2, 3, 4]
    assert "double quotes" in found[0].message
    assert "==" in found[1].hint
    assert "'24hrs'" in found[2].message
    assert "end of input" in found[3].message


# --- specific mistakes ---------------------------------------------------------------------------


def test_single_quoted_string() -> None:
    diag = one_error("when user.tier == 'gold' then show vip\n")
    assert diag.message == "strings use double quotes"
    assert diag.hint == 'write "gold"'
    assert (diag.line, diag.column) == (1, 19)
    assert diag.span is not None and diag.span.text == "'gold'"


def test_unterminated_string_is_one_error() -> None:
    diag = one_error('when user.tier == "gold then show vip\n')
    assert diag.message == "this string is never closed"
    assert '"' in diag.hint
    assert (diag.line, diag.column) == (1, 19)


def test_unterminated_string_does_not_hide_later_errors() -> None:
    found = errors('segment s = "open\nwhen a then show b\nwhen c = 1 then show d\n')
    assert [(d.line, d.message) for d in found] == [
        (1, "this string is never closed"),
        (3, "expected 'then', found '='"),
    ]


@pytest.mark.parametrize("bad", ["24hrs", "3days", "1.2.3", "7dd", "0x10"])
def test_bad_number(bad: str) -> None:
    diag = one_error(f'segment s = views("Shoes", {bad}) > 2\n')
    assert diag.message == f"'{bad}' is not a number or a duration"
    assert "24h" in diag.hint and "70%" in diag.hint
    assert diag.column == 28


@pytest.mark.parametrize(
    ("text", "word", "column"),
    [
        ("segment rule = a", "rule", 9),
        ("content when = {}", "when", 9),
        ('model segment = "m.onnx"', "segment", 7),
        ("ruleset test", "test", 9),
        ("rule default when a then show b", "default", 6),
        ("when a then show in", "in", 18),
        ("when a then show x in priority", "priority", 23),
        ("default show missing", "missing", 14),
        ('test "t" expect and = x', "and", 17),
    ],
)
def test_reserved_word_used_as_a_name(text: str, word: str, column: int) -> None:
    diag = one_error(text)
    assert diag.message == f"'{word}' is a reserved word and cannot be used as a name"
    assert diag.column == column
    assert word in diag.hint


def test_single_equals_instead_of_double() -> None:
    diag = one_error('rule r\n  when user.tier = "gold"\n  then show vip\n')
    assert (diag.line, diag.column) == (2, 18)
    assert "'='" in diag.message
    assert "==" in diag.hint


def test_single_equals_where_a_value_is_due() -> None:
    diag = one_error("segment s = = 3")
    assert diag.column == 13
    assert "a condition or a value" in diag.message


@pytest.mark.parametrize("value", ["nul", "undefined", "None", "yes"])
def test_bad_json_value(value: str) -> None:
    diag = one_error(f'content c = {{"kind": "banner", "extra": {value}}}\n')
    assert diag.message == f"'{value}' is not a JSON value"
    assert "null" in diag.hint and "double quotes" in diag.hint
    assert diag.column == 41


def test_json_null_true_and_false_are_fine() -> None:
    assert parse('content c = {"a": null, "b": true, "c": false}').declarations


@pytest.mark.parametrize(
    ("payload", "column"),
    [('{"id": 1, "id": 2}', 23), ('{"a": {"b": 1, "c": 2, "b": 3}}', 36)],
)
def test_duplicate_json_key(payload: str, column: int) -> None:
    diag = one_error(f"content c = {payload}")
    assert diag.column == column
    assert "duplicate key" in diag.message
    assert re.search(r'"(id|b)"', diag.message)


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert parse('content c = {"a": {"id": 1}, "b": {"id": 2}}').declarations


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("when a >", ">", "a condition or a value"),
        ("rule r when a then", "then", "'show'"),
        ("when a then show b in", "in", "a name"),
        ('content c = {"a": [1, 2', "2", "']'"),
    ],
)
def test_unexpected_end_of_input(text: str, after: str, expected: str) -> None:
    diag = one_error(text + "\n")
    assert diag.message.startswith(f"unexpected end of input after '{after}', expected ")
    assert expected in diag.message
    assert diag.line == 1
    assert diag.column == len(text) + 1  # just after the last token


def test_a_declaration_cut_short_in_the_middle_of_a_file_is_not_the_end_of_input() -> None:
    diag = one_error("when a >\nsegment s = b\n")
    assert "end of input" not in diag.message
    assert diag.message == "expected a condition or a value after '>', found 'segment'"
    assert (diag.line, diag.column) == (1, 9)


@pytest.mark.parametrize("priority", ["1.5", "2.0", "1e3", "-0.5"])
def test_non_integer_priority(priority: str) -> None:
    diag = one_error(f"when a then show b priority {priority}\n")
    assert diag.message == f"priority must be a whole number, not {priority.lstrip('-')}"
    assert diag.column == (30 if priority.startswith("-") else 29)


def test_priority_that_is_not_a_number() -> None:
    diag = one_error("when a then show b priority high\n")
    assert diag.message == "expected '-' or a number, found 'high'"


@pytest.mark.parametrize(
    ("text", "hint", "column"),
    [
        ("when a && b then show c", "write 'and' instead", 8),
        ("when a & b then show c", "write 'and' instead", 8),
        ("when a || b then show c", "write 'or' instead", 8),
        ("when !a then show c", "write 'not' instead, or != for 'not equal'", 6),
    ],
)
def test_operators_from_other_languages(text: str, hint: str, column: int) -> None:
    diag = one_error(text)  # one slip, one error: the parser reads the operator that was meant
    assert diag.hint == hint
    assert diag.column == column


def test_unexpected_character() -> None:
    diag = one_error("segment s = a @ b")
    assert diag.message == "unexpected character '@'"
    assert diag.column == 15


def test_misspelled_keyword_gets_a_suggestion() -> None:
    diag = one_error("when a thne show b")
    assert diag.hint == "did you mean 'then'?"
    assert "found 'thne'" in diag.message


def test_invalid_string_escape() -> None:
    diag = one_error('segment s = "a\\qb"')
    assert diag.message.startswith("invalid escape in string")
    assert "\\n" in diag.hint


@pytest.mark.parametrize(
    ("text", "message", "hint", "column"),
    [
        (
            "when a then show b cap 3 pre 24h",
            "expected 'per', found 'pre'",
            "did you mean 'per'?",
            26,
        ),
        (
            "when a then show b capp 3 per 24h",
            "expected 'cap', 'in', 'priority', the end of the file or a declaration"
            " (rule, when, segment, content, model, default, experiment, holdout, attribute), found 'capp'",
            "did you mean 'cap'?",
            20,
        ),
        (
            "when a then show b cap three per 24h",
            "expected '-' or a number, found 'three'",
            "write a cap like: cap 3 per 24h (a whole number of impressions, then a duration)",
            24,
        ),
        (
            "when a then show b cap 3 per 24",
            "expected a duration (like 24h or 7d), found '24'",
            "write a cap like: cap 3 per 24h (a whole number of impressions, then a duration)",
            30,
        ),
        (
            "when a then show b cap 3 per 24h priority 2",
            "expected the end of the file or a declaration"
            " (rule, when, segment, content, model, default, experiment, holdout, attribute), found 'priority'",
            "the cap comes last: write the priority before it",
            34,
        ),
        (
            "default show b cap 3 per 24h",
            "expected 'in', the end of the file or a declaration"
            " (rule, when, segment, content, model, default, experiment, holdout, attribute), found 'cap'",
            "a default is what a slot shows when no rule fires: only rules can be capped",
            16,
        ),
    ],
)
def test_a_misspelled_cap_says_how_to_write_one(text: str, message: str, hint: str, column: int) -> None:
    diag = one_error(text + "\n")
    assert (diag.message, diag.hint, diag.column) == (message, hint, column)


def test_test_title_must_be_followed_by_at_given_or_expect() -> None:
    diag = one_error('test "t" on 3 expect a = b')
    assert diag.message == "expected 'at', 'given' or 'expect' after the test's title, found 'on'"
    assert diag.column == 10
