"""The formatter: it never changes the tree, keeps every comment, and is idempotent."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import modules

from tailor import RulesError
from tailor.dsl import ast
from tailor.dsl.formatter import WIDTH, format_module, format_text
from tailor.dsl.parser import parse
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import tokenize


def comment_texts(text: str) -> Counter[str]:
    return Counter(comment.text for comment in parse(text).comments)


def payload_texts(module: ast.Module) -> list[str]:
    """Content payloads as JSON text: equal only if the key order is equal too."""
    return [json.dumps(decl.payload) for decl in module.declarations if isinstance(decl, ast.ContentDecl)]


def assert_canonical(text: str) -> None:
    assert text == "" or text.endswith("\n")
    assert not text.endswith("\n\n")
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.split("\n"))


# --- property tests on generated trees ------------------------------------------------------------


def check_round_trip(module: ast.Module) -> None:
    text = format_module(module)
    back = parse(text)
    assert back == module
    assert payload_texts(back) == payload_texts(module)
    assert_canonical(text)


def check_idempotent(module: ast.Module) -> None:
    text = format_module(module)
    once = format_text(text)
    assert once == text  # printed text is already in the canonical layout
    assert format_text(once) == once


SEPARATORS = [" ", "  ", "\n", "\n\n", "\n    ", "\n\n\n  "]
SMALL_MODULES = modules(max_declarations=4, max_leaves=8)
COMMENT_SHAPES = ["  # note {}\n", "\n# note {}\n", "\n\n    # note {} # and more\n\n", "# note {}\n"]


@st.composite
def relaid_with_comments(draw: st.DrawFn) -> tuple[ast.Module, str]:
    """A generated module printed, then laid out anew with comments between random tokens."""
    module = draw(SMALL_MODULES)
    layout = draw(st.randoms(use_true_random=True))  # one draw, not one per token
    text = format_module(module)
    parts: list[str] = ["# head\n"] if layout.random() < 0.5 else []
    comments = 0
    for token in tokenize(Source("<generated>", text)).tokens:
        parts.append(text[token.start_pos : token.end_pos])
        if layout.random() < 0.25:
            comments += 1
            parts.append(layout.choice(COMMENT_SHAPES).format(comments))
        else:
            parts.append(layout.choice(SEPARATORS))
    return module, "".join(parts)


def check_relaid(module: ast.Module, text: str) -> None:
    formatted = format_text(text)
    assert parse(formatted) == module
    assert comment_texts(formatted) == comment_texts(text)
    assert format_text(formatted) == formatted
    assert_canonical(formatted)


@settings(max_examples=100, deadline=None)
@given(modules(max_declarations=4, max_leaves=10))
def test_printed_trees_parse_back_equal(module: ast.Module) -> None:
    check_round_trip(module)


@settings(max_examples=50, deadline=None)
@given(modules(max_declarations=4, max_leaves=10))
def test_formatting_generated_text_is_idempotent(module: ast.Module) -> None:
    check_idempotent(module)


@settings(max_examples=100, deadline=None)
@given(relaid_with_comments())
def test_any_layout_with_comments_formats_to_the_same_tree_and_keeps_every_comment(
    case: tuple[ast.Module, str],
) -> None:
    check_relaid(*case)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(modules(max_declarations=6, max_leaves=16), relaid_with_comments())
def test_formatter_properties_with_many_examples(module: ast.Module, case: tuple[ast.Module, str]) -> None:
    check_round_trip(module)
    check_idempotent(module)
    check_relaid(*case)


# --- comments on hand-written files ------------------------------------------------------------------


COMMENTED = """\
# Retail rules.
# Owner: growth team

ruleset retail  # the shop


# Content
content accessories = {"kind": "banner"}  # the banner
model p_click = "models/p_click.onnx"
segment electronics_fan = views("Electronics", 24h) > 2
rule electronics_accessories
  when electronics_fan   # fans only
    and p_click > 0.7
  then show accessories in hero  # hero slot
  priority 10  # beats the default
default show generic in hero
test "gold" # a test
  given user.tier = "gold",  # given
        p_click = 0.9
  expect hero = vip  # expectation
# trailing comment at the end of the file"""

COMMENTED_FORMATTED = """\
# Retail rules.
# Owner: growth team

ruleset retail  # the shop

# Content
content accessories = {"kind": "banner"}  # the banner
model p_click = "models/p_click.onnx"
segment electronics_fan = views("Electronics", 24h) > 2

rule electronics_accessories
  when electronics_fan and p_click > 0.7  # fans only
  then show accessories in hero  # hero slot
  priority 10  # beats the default

default show generic in hero

test "gold"  # a test
  given user.tier = "gold", p_click = 0.9  # given
  expect hero = vip  # expectation

# trailing comment at the end of the file
"""


def test_comments_everywhere_are_kept_in_place() -> None:
    formatted = format_text(COMMENTED)
    assert formatted == COMMENTED_FORMATTED
    assert comment_texts(formatted) == comment_texts(COMMENTED)
    assert len(comment_texts(COMMENTED)) == 12
    assert parse(formatted) == parse(COMMENTED)
    assert format_text(formatted) == formatted


COMMENT_PLACES = [
    "# before everything\nsegment a = x\n",
    "segment a = x\n# between declarations\nsegment b = y\n",
    "segment a = x  # trailing a one-line declaration\n",
    "rule r  # after the rule's name\n  when a\n  then show b\n",
    "rule r\n  # own line inside a rule\n  when a\n  then show b\n",
    "rule r\n  when a  # after the condition\n  then show b\n",
    "rule r\n  when a\n  then show b  # after the content\n  priority 2\n",
    "rule r\n  when a\n  then show b\n  priority 2  # after the priority\n",
    "rule r\n  when a\n  then show b\n  priority 2  # after the priority\n  cap 3 per 24h  # after the cap\n",
    "rule r\n  when a\n  then show b in c  # after the slot\n  cap 3 # inside the cap\n per 24h\n",
    "when a then show b priority # before its number\n 2 cap 3 per 24h\n",
    'content c = {\n  "a": 1,  # inside a payload\n  "b": [2, 3]\n}\n',
    'test "t"\n  at 3  # the clock\n  expect h = v\n',
    "segment a = x\n# at the end of the file, no newline",
    "segment a = x\n\n\n# at the end after blank lines\n",
    "# a file of comments only\n# second line\n",
]


@pytest.mark.parametrize("text", COMMENT_PLACES)
def test_each_comment_survives_formatting(text: str) -> None:
    formatted = format_text(text)
    assert comment_texts(formatted) == comment_texts(text)
    assert sum(comment_texts(text).values()) >= 1
    assert parse(formatted) == parse(text)
    assert format_text(formatted) == formatted


def test_comments_of_lines_that_get_joined_all_survive() -> None:
    text = (
        'when user.tier == "gold"   # gold members\n'
        "  then show vip in hero     # the VIP banner\n"
        "rule r\n"
        "  when a     # first\n"
        "    and b    # second\n"
        "    and c    # third\n"
        "  then show x\n"
        'content c = {\n  "a": 1,  # one\n  "b": 2   # two\n}\n'
    )
    formatted = format_text(text)
    assert comment_texts(formatted) == comment_texts(text)
    assert all(count == 1 for count in comment_texts(formatted).values())
    assert format_text(formatted) == formatted
    assert parse(formatted) == parse(text)
    # The last comment of a joined line stays at its end; earlier ones go just above the declaration.
    lines = formatted.split("\n")
    assert lines[lines.index('when user.tier == "gold" then show vip in hero  # the VIP banner') - 1] == (
        "# gold members"
    )
    assert "  when a and b and c  # third" in lines
    assert lines.index("# first") < lines.index("# second") < lines.index("rule r")


def test_a_hash_in_a_string_is_not_taken_for_a_comment() -> None:
    text = 'segment s = user.tag == "# not a comment"  # a comment\n'
    assert format_text(text) == text
    assert comment_texts(text) == Counter({"# a comment": 1})


# --- blank lines -------------------------------------------------------------------------------


def test_blank_line_grouping_is_kept_and_collapsed_to_one() -> None:
    text = (
        "ruleset retail\n"
        "\n\n\n"
        "segment a = x\n"
        "segment b = y\n"
        "\n"
        "# group two\n"
        "segment c = z\n"
        "when a then show p\n"
        "\n\n"
        "default show q\n"
    )
    assert format_text(text) == (
        "ruleset retail\n"
        "\n"
        "segment a = x\n"
        "segment b = y\n"
        "\n"
        "# group two\n"
        "segment c = z\n"
        "when a then show p\n"
        "\n"
        "default show q\n"
    )


def test_multi_line_declarations_stand_apart() -> None:
    text = "segment a = x\nrule r when a then show b\nsegment c = z\nsegment d = w\n"
    assert format_text(text) == ("segment a = x\n\nrule r\n  when a\n  then show b\n\nsegment c = z\nsegment d = w\n")


def test_leading_and_trailing_blank_lines_are_dropped() -> None:
    assert format_text("\n\n\nsegment a = x\n\n\n\n") == "segment a = x\n"
    assert format_text("") == ""
    assert format_text("\n  \n") == ""


# --- layout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('when   context.page=="home" then show x in hero', 'when context.page == "home" then show x in hero'),
        ("segment s = ((a)) and (b)", "segment s = a and b"),
        ("segment s = (a * b) + c", "segment s = a * b + c"),
        ("segment s = a * (b + c)", "segment s = a * (b + c)"),
        ("segment s = a - (b - c)", "segment s = a - (b - c)"),
        ("segment s = (a - b) - c", "segment s = a - b - c"),
        ("segment s = --a", "segment s = -(-a)"),
        ("segment s = -(a * b)", "segment s = -(a * b)"),
        ("segment s = not (a == b)", "segment s = not a == b"),
        ("segment s = (not a) == b", "segment s = (not a) == b"),
        ("segment s = (a or b) and c", "segment s = (a or b) and c"),
        ("segment s = a or (b and c)", "segment s = a or b and c"),
        ("segment s = (a == b) == c", "segment s = (a == b) == c"),
        ("segment s = (a + 1) is not missing", "segment s = a + 1 is not missing"),
        ("segment s = 0.70 > 070", "segment s = 0.7 > 70"),
        ("segment s = 1e3 + 1.50h + 12.5%", "segment s = 1000.0 + 1.5h + 12.5%"),
        ('segment s = "\\u00e9\\t\\/"', 'segment s = "é\\t/"'),
        ("segment s = [1,2,]", "segment s = [1, 2]"),
        ("segment s = f( a ,b )", "segment s = f(a, b)"),
        ("segment s = context . default", "segment s = context.default"),
        ("when a then show b priority - 3", "when a then show b priority -3"),
        ("when a then show b   cap 03 per 24h", "when a then show b cap 3 per 24h"),
        ("when a then show b in c priority 2 cap - 1 per 1.50d", "when a then show b in c priority 2 cap -1 per 1.5d"),
        ("default   show x  in  y", "default show x in y"),
        ('content c = { "b" : [ 1 , -2 ] , "a" : null }', 'content c = {"b": [1, -2], "a": null}'),
        ('model m="m.onnx"', 'model m = "m.onnx"'),
    ],
)  # fmt: skip
def test_canonical_spelling(text: str, expected: str) -> None:
    assert format_text(text) == expected + "\n"
    assert parse(expected) == parse(text)


def test_named_rules_and_tests_take_several_lines() -> None:
    text = 'rule r when a then show b in c priority 1 test "t" at 5 given x = 1 expect c = b'
    assert format_text(text) == (
        'rule r\n  when a\n  then show b in c\n  priority 1\n\ntest "t"\n  at 5\n  given x = 1\n  expect c = b\n'
    )


def test_a_cap_takes_the_last_line_of_a_named_rule_and_comments_stay_on_their_lines() -> None:
    text = "rule r when a then show b in c  # the slot\npriority 1 # first\n cap 3 per 24h # capped\n"
    assert format_text(text) == (
        "rule r\n  when a\n  then show b in c  # the slot\n  priority 1  # first\n  cap 3 per 24h  # capped\n"
    )
    assert format_text("rule r when a then show b cap 3 per 1d") == "rule r\n  when a\n  then show b\n  cap 3 per 1d\n"


def long_comparisons(count: int) -> list[str]:
    return [f'user.attribute_number_{index} == "a rather long value number {index}"' for index in range(count)]


def test_long_conditions_are_split_one_operand_per_line() -> None:
    first, second, third = long_comparisons(3)
    text = f"rule r when {first} and ({second} or {third}) and not {first} then show x"
    formatted = format_text(text)
    assert formatted == (f"rule r\n  when {first}\n    and ({second} or {third})\n    and not {first}\n  then show x\n")
    assert parse(formatted) == parse(text)


def test_long_or_conditions_are_split_and_keep_their_and_operands_together() -> None:
    first, second, third = long_comparisons(3)
    text = f"segment s = {first} or {second} and {third} or user.flag"
    formatted = format_text(text)
    assert formatted.split("\n") == [
        f"segment s = {first}",
        f"  or {second} and {third}",
        "  or user.flag",
        "",
    ]
    assert parse(formatted) == parse(text)


def test_long_unnamed_rules_are_split_too() -> None:
    first, second = long_comparisons(2)
    formatted = format_text(f"when {first} and {second} then show x in y priority 3")
    assert formatted == f"when {first}\n    and {second}\n  then show x in y\n  priority 3\n"


def test_short_conditions_stay_on_one_line() -> None:
    formatted = format_text("when a\n and b\n and c\nthen show x")
    assert formatted == "when a and b and c then show x\n"


def test_an_unnamed_rule_too_long_for_one_line_puts_its_action_on_the_next() -> None:
    content, slot = "x" * 60, "y" * 20
    formatted = format_text(f"when a then show {content} in {slot}")
    assert formatted == f"when a\n  then show {content} in {slot}\n"
    assert all(len(line) <= WIDTH for line in formatted.split("\n"))


def test_long_payloads_are_indented_json_in_source_order() -> None:
    payload = {"zeta": "z" * 40, "alpha": {"nested": [1, 2, None], "b": True}, "mid": -1.5}
    text = f"content c = {json.dumps(payload)}"
    formatted = format_text(text)
    assert formatted == "content c = " + json.dumps(payload, indent=2) + "\n"
    assert payload_texts(parse(formatted)) == [json.dumps(payload)]


def test_long_given_lists_take_one_line_each() -> None:
    givens = ", ".join(f'user.attribute_{index} = "value number {index}"' for index in range(4))
    formatted = format_text(f'test "t" given {givens} expect hero = default')
    lines = formatted.split("\n")
    assert lines[1] == '  given user.attribute_0 = "value number 0",'
    assert lines[2] == '        user.attribute_1 = "value number 1",'
    assert lines[4] == '        user.attribute_3 = "value number 3"'
    assert lines[5] == "  expect hero = default"
    assert parse(formatted) == parse(f'test "t" given {givens} expect hero = default')


def test_format_module_without_source_text() -> None:
    module = ast.Module(
        (
            ast.RulesetDecl(ast.Ident("shop")),
            ast.SegmentDecl(ast.Ident("s"), ast.Negate(ast.Number(70, percent=True))),
            ast.RuleDecl(None, ast.Name("s"), ast.Ident("x"), None, -2),
        )
    )
    assert format_module(module) == "ruleset shop\nsegment s = -70%\nwhen s then show x priority -2\n"
    assert format_module(ast.Module(())) == ""


def test_formatting_a_broken_file_raises() -> None:
    with pytest.raises(RulesError) as info:
        format_text("segment a = x\nwhen a = 1 then show b\n", "shop.rules")
    assert [(d.file, d.line) for d in info.value.diagnostics] == [("shop.rules", 2)]
