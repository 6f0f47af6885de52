"""The parser: every construct of the language, its precedence and its spans."""

from __future__ import annotations

import dataclasses
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.workload import ruleset_text
from tailor import RulesError
from tailor.dsl import ast, native
from tailor.dsl import lalr_driver as driver_module
from tailor.dsl.parser import parse, parse_expression, parse_source
from tailor.dsl.source import Source

SPEC_EXAMPLE = """\
ruleset retail                                   # optional, at most one
content accessories = {"kind": "banner", "id": "acc-42", "title": "Complete your setup"}
model p_click = "models/p_click.onnx"
segment electronics_fan = views("Electronics", 24h) > 2
rule electronics_accessories
  when electronics_fan and p_click > 0.7
  then show accessories in hero
  priority 10
when user.tier == "gold" then show vip in hero    # unnamed rule
default show generic in hero
"""


def a(name: str) -> ast.Name:
    return ast.Name(name)


def num(value: int | float) -> ast.Number:
    return ast.Number(value)


def only(text: str) -> ast.Declaration:
    module = parse(text, "test.rules")
    assert len(module.declarations) == 1
    return module.declarations[0]


def expr(text: str) -> ast.Expr:
    """The condition of ``segment s = TEXT``."""
    decl = only(f"segment s = {text}\n")
    assert isinstance(decl, ast.SegmentDecl)
    return decl.condition


# --- the example of the spec, as a whole --------------------------------------


def test_spec_example_parses_to_the_expected_tree() -> None:
    module = parse(SPEC_EXAMPLE, "retail.rules")
    assert module.name == "retail.rules"
    assert module.ruleset_name == "retail"
    assert module.declarations == (
        ast.RulesetDecl(ast.Ident("retail")),
        ast.ContentDecl(ast.Ident("accessories"), {"kind": "banner", "id": "acc-42", "title": "Complete your setup"}),
        ast.ModelDecl(ast.Ident("p_click"), ast.String("models/p_click.onnx")),
        ast.SegmentDecl(
            ast.Ident("electronics_fan"),
            ast.Compare(
                ">",
                ast.Call("views", (ast.String("Electronics"), ast.Duration(24, "h"))),
                num(2),
            ),
        ),
        ast.RuleDecl(
            ast.Ident("electronics_accessories"),
            ast.And((a("electronics_fan"), ast.Compare(">", a("p_click"), num(0.7)))),
            ast.Ident("accessories"),
            ast.Ident("hero"),
            10,
        ),
        ast.RuleDecl(
            None,
            ast.Compare("==", ast.Attribute("user", "tier"), ast.String("gold")),
            ast.Ident("vip"),
            ast.Ident("hero"),
            None,
        ),
        ast.DefaultDecl(ast.Ident("generic"), ast.Ident("hero")),
    )


def test_comments_are_ignored_by_the_tree_but_kept_beside_it() -> None:
    without_comments = "\n".join(line.split("#")[0] for line in SPEC_EXAMPLE.splitlines())
    module = parse(SPEC_EXAMPLE)
    assert module == parse(without_comments)
    assert [comment.text for comment in module.comments] == ["# optional, at most one", "# unnamed rule"]
    assert [comment.span.line for comment in module.comments] == [1, 9]


def test_comments_may_stand_anywhere_between_tokens() -> None:
    text = (
        "# a file comment\n"
        "rule r # after the name\n"
        "  when a # after an operand\n"
        "    and b\n"
        "  # a line of its own inside the rule\n"
        "  then show x # after the content\n"
        "  priority 3\n"
        "# at the end, without a newline"
    )
    assert parse(text) == parse("rule r when a and b then show x priority 3")
    assert len(parse(text).comments) == 6


def test_a_hash_inside_a_string_is_not_a_comment() -> None:
    module = parse('segment s = user.tag == "#1"  # real comment\n')
    assert module.declarations[0].condition.right == ast.String("#1")  # type: ignore[union-attr]
    assert [comment.text for comment in module.comments] == ["# real comment"]


def test_newlines_and_indentation_are_not_significant() -> None:
    spread = "rule\n r\nwhen\n\n   a\n>\n1 then\nshow\n  x in\n slot priority\n -2\n"
    assert parse(spread) == parse("rule r when a > 1 then show x in slot priority -2")


def test_an_empty_file_has_no_declarations() -> None:
    assert parse("").declarations == ()
    assert parse("  # only a comment\n\n").declarations == ()
    assert parse("").ruleset_name is None


def test_trees_compare_equal_whatever_their_spans() -> None:
    assert parse("segment s = a", "one.rules") == parse("\n\n  segment   s=\n a  ", "two.rules")
    assert parse("segment s = a") != parse("segment s = b")


# --- declarations ---------------------------------------------------------------


def test_ruleset_declaration() -> None:
    decl = only("ruleset retail")
    assert decl == ast.RulesetDecl(ast.Ident("retail"))


def test_content_payload_is_json_with_nesting_null_and_negative_numbers() -> None:
    decl = only(
        'content c = {"title": "Caf\\u00e9 \\"deals\\"", "n": -3, "x": -2.5, "big": 1e3,'
        ' "nested": {"list": [1, null, true, false, [], {}], "none": null}, "empty": []}'
    )
    assert isinstance(decl, ast.ContentDecl)
    assert decl.name == ast.Ident("c")
    assert decl.payload == {
        "title": 'Café "deals"',
        "n": -3,
        "x": -2.5,
        "big": 1000.0,
        "nested": {"list": [1, None, True, False, [], {}], "none": None},
        "empty": [],
    }
    assert isinstance(decl.payload["n"], int)
    assert decl.payload["nested"]["list"][2] is True


def test_content_payload_keeps_key_order() -> None:
    decl = only('content c = {"zeta": 1, "alpha": {"y": 1, "b": 2, "m": 3}, "mid": 3}')
    assert isinstance(decl, ast.ContentDecl)
    assert list(decl.payload) == ["zeta", "alpha", "mid"]
    assert list(decl.payload["alpha"]) == ["y", "b", "m"]


def test_content_payload_may_be_empty_and_span_lines() -> None:
    decl = only('content c = {\n  "a": [\n    1,\n    2\n  ]\n}\n')
    assert decl == ast.ContentDecl(ast.Ident("c"), {"a": [1, 2]})
    assert only("content c = {}") == ast.ContentDecl(ast.Ident("c"), {})


def test_model_declaration() -> None:
    assert only('model p_click = "models/p_click.onnx"') == ast.ModelDecl(
        ast.Ident("p_click"), ast.String("models/p_click.onnx")
    )


def test_segment_declaration() -> None:
    assert only("segment big_spender = user.spend >= 500") == ast.SegmentDecl(
        ast.Ident("big_spender"), ast.Compare(">=", ast.Attribute("user", "spend"), num(500))
    )


def test_rule_with_every_part() -> None:
    decl = only("rule r when a then show x in hero priority 7")
    assert decl == ast.RuleDecl(ast.Ident("r"), a("a"), ast.Ident("x"), ast.Ident("hero"), 7)
    assert isinstance(decl, ast.RuleDecl)
    assert decl.slot_name == "hero"
    assert decl.effective_priority == 7


def test_rule_name_slot_and_priority_are_optional() -> None:
    decl = only("when a then show x")
    assert decl == ast.RuleDecl(None, a("a"), ast.Ident("x"), None, None)
    assert isinstance(decl, ast.RuleDecl)
    assert decl.slot_name == ast.DEFAULT_SLOT == "main"
    assert decl.effective_priority == 0


@pytest.mark.parametrize(
    ("text", "slot", "priority"),
    [
        ("when a then show x in side", "side", None),
        ("when a then show x priority 3", None, 3),
        ("when a then show x priority -3", None, -3),
        ("when a then show x in side priority - 12", "side", -12),
        ("when a then show x priority 0", None, 0),
    ],
)
def test_rule_slot_and_priority(text: str, slot: str | None, priority: int | None) -> None:
    decl = only(text)
    assert isinstance(decl, ast.RuleDecl)
    assert decl.slot == (ast.Ident(slot) if slot else None)
    assert decl.priority == priority
    assert type(decl.priority) is (int if priority is not None else type(None))


def test_a_rule_may_end_with_a_cap() -> None:
    (decl,) = parse("rule r\n  when a\n  then show x in hero\n  priority 10\n  cap 3 per 24h\n").declarations
    assert decl == ast.RuleDecl(
        ast.Ident("r"), a("a"), ast.Ident("x"), ast.Ident("hero"), 10, ast.Cap(ast.Number(3), ast.Duration(24, "h"))
    )
    assert decl.cap is not None and decl.cap.span is not None and decl.span is not None
    assert (decl.cap.span.line, decl.cap.span.column, decl.cap.span.text) == (5, 3, "cap 3 per 24h")
    assert decl.span.end == decl.cap.span.end  # the cap is the rule's last part


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("when a then show x cap 1 per 90s", ast.Number(1), ast.Duration(90, "s")),
        ("when a then show x in y cap 0 per 1.5d", ast.Number(0), ast.Duration(1.5, "d")),
        ("when a then show x cap -2 per 2w", ast.Number(-2), ast.Duration(2, "w")),  # the checker rejects it
        ("when a then show x cap 2.5 per 1h", ast.Number(2.5), ast.Duration(1, "h")),  # so this too
    ],
)
def test_cap_numbers_and_windows_are_kept_as_written(text: str, limit: ast.Number, window: ast.Duration) -> None:
    (decl,) = parse(text).declarations
    assert decl.cap == ast.Cap(limit, window)
    assert decl.cap.limit.span is not None and decl.cap.limit.span.text == text.split("cap ")[1].split(" ")[0]


def test_cap_and_per_are_names_outside_a_rules_tail() -> None:
    text = (
        "content cap = {}\n"
        "segment per = user.cap == context.per\n"
        "rule cap when per and cap(1) > 0 then show cap in cap cap 3 per 24h\n"
        "default show cap in per\n"
        'test "t" given per = true expect cap = cap\n'
    )
    rule = parse(text).declarations[2]
    assert rule == ast.RuleDecl(
        ast.Ident("cap"),
        ast.And((a("per"), ast.Compare(">", ast.Call("cap", (ast.Number(1),)), ast.Number(0)))),
        ast.Ident("cap"),
        ast.Ident("cap"),
        None,
        ast.Cap(ast.Number(3), ast.Duration(24, "h")),
    )
    assert len(parse(text).declarations) == 5


def test_consecutive_unnamed_rules_are_separate_declarations() -> None:
    module = parse("when a then show x when b then show y in s when c then show z priority 1")
    assert [decl.content.name for decl in module.declarations] == ["x", "y", "z"]  # type: ignore[union-attr]
    assert all(isinstance(decl, ast.RuleDecl) and decl.name is None for decl in module.declarations)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default show generic", ast.DefaultDecl(ast.Ident("generic"), None)),
        ("default show generic in hero", ast.DefaultDecl(ast.Ident("generic"), ast.Ident("hero"))),
    ],
)
def test_default_declaration(text: str, expected: ast.DefaultDecl) -> None:
    decl = only(text)
    assert decl == expected
    assert isinstance(decl, ast.DefaultDecl)
    assert decl.slot_name == (expected.slot.name if expected.slot else "main")


def test_test_declaration_with_every_part() -> None:
    decl = only(
        'test "gold members see the VIP banner"\n'
        "  at context.now + 1d\n"
        '  given user.tier = "gold", views("Electronics", 24h) = 3, p_click = 80%\n'
        "  expect hero = vip, side = nothing, footer = default\n"
    )
    assert decl == ast.TestDecl(
        ast.String("gold members see the VIP banner"),
        (
            ast.Given(ast.Attribute("user", "tier"), ast.String("gold")),
            ast.Given(ast.Call("views", (ast.String("Electronics"), ast.Duration(24, "h"))), num(3)),
            ast.Given(a("p_click"), ast.Number(80, percent=True)),
        ),
        (
            ast.Expectation(ast.Ident("hero"), ast.Ident("vip")),
            ast.Expectation(ast.Ident("side"), ast.Ident("nothing")),
            ast.Expectation(ast.Ident("footer"), ast.Ident("default")),
        ),
        ast.Arithmetic("+", ast.Attribute("context", "now"), ast.Duration(1, "d")),
    )


def test_test_declaration_at_and_given_are_optional() -> None:
    decl = only('test "t" expect hero = x')
    assert decl == ast.TestDecl(ast.String("t"), (), (ast.Expectation(ast.Ident("hero"), ast.Ident("x")),), None)
    with_at = only('test "t" at 1700000000 expect hero = x')
    assert isinstance(with_at, ast.TestDecl)
    assert with_at.at == num(1700000000)
    assert with_at.given == ()


def test_default_after_a_test_expectation_is_still_a_declaration() -> None:
    module = parse('test "t" expect hero = default\ndefault show generic in hero\n')
    assert module.declarations == (
        ast.TestDecl(ast.String("t"), (), (ast.Expectation(ast.Ident("hero"), ast.Ident("default")),)),
        ast.DefaultDecl(ast.Ident("generic"), ast.Ident("hero")),
    )


def test_a_test_needs_an_expectation() -> None:
    with pytest.raises(RulesError):
        parse('test "t" given a = 1')


# --- literals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"gold"', ast.String("gold")),
        ('""', ast.String("")),
        ('"tab\\there \\"quoted\\" \\\\ \\u00e9\\n"', ast.String('tab\there "quoted" \\ é\n')),
        ('"ünïcödé ✓"', ast.String("ünïcödé ✓")),
        ("42", ast.Number(42)),
        ("0", ast.Number(0)),
        ("0.7", ast.Number(0.7)),
        ("1e3", ast.Number(1000.0)),
        ("true", ast.Boolean(True)),
        ("false", ast.Boolean(False)),
        ("70%", ast.Number(70, percent=True)),
        ("12.5%", ast.Number(12.5, percent=True)),
        ("[]", ast.ListLiteral(())),
        ('["gold", "platinum"]', ast.ListLiteral((ast.String("gold"), ast.String("platinum")))),
        ('["gold", "platinum",]', ast.ListLiteral((ast.String("gold"), ast.String("platinum")))),
        ("[1,\n 2,\n]", ast.ListLiteral((num(1), num(2)))),
        ("[[1], [], [a, -1]]", ast.ListLiteral((
            ast.ListLiteral((num(1),)),
            ast.ListLiteral(()),
            ast.ListLiteral((a("a"), ast.Negate(num(1)))),
        ))),
    ],
)  # fmt: skip
def test_literals(text: str, expected: ast.Expr) -> None:
    assert expr(text) == expected


def test_integers_stay_integers_and_decimals_are_floats() -> None:
    assert type(expr("42").value) is int  # type: ignore[union-attr]
    assert type(expr("0.5").value) is float  # type: ignore[union-attr]
    assert type(expr("24h").amount) is int  # type: ignore[union-attr]


def test_a_percentage_means_a_fraction() -> None:
    seventy = expr("70%")
    assert seventy == ast.Number(70, percent=True)
    assert isinstance(seventy, ast.Number)
    assert seventy.amount == pytest.approx(0.7)
    assert seventy != ast.Number(0.7)  # the tree keeps what was written
    assert ast.Number(0.7).amount == 0.7


@pytest.mark.parametrize(
    ("text", "amount", "unit", "seconds"),
    [
        ("90s", 90, "s", 90),
        ("30m", 30, "m", 1800),
        ("24h", 24, "h", 86400),
        ("7d", 7, "d", 604800),
        ("2w", 2, "w", 1209600),
        ("1.5h", 1.5, "h", 5400),
        ("0s", 0, "s", 0),
    ],
)
def test_durations(text: str, amount: int | float, unit: str, seconds: int) -> None:
    duration = expr(text)
    assert duration == ast.Duration(amount, unit)
    assert isinstance(duration, ast.Duration)
    assert duration.seconds == seconds


def test_negative_literals_are_negations() -> None:
    assert expr("-1") == ast.Negate(num(1))
    assert expr("- 2.5") == ast.Negate(num(2.5))
    assert expr("-24h") == ast.Negate(ast.Duration(24, "h"))
    assert expr("--1") == ast.Negate(ast.Negate(num(1)))


# --- names, attributes and calls -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("electronics_fan", ast.Name("electronics_fan")),
        ("_private2", ast.Name("_private2")),
        ("user.tier", ast.Attribute("user", "tier")),
        ("context.page", ast.Attribute("context", "page")),
        ("context.default", ast.Attribute("context", "default")),
        ("context.in", ast.Attribute("context", "in")),
        ("user.rule", ast.Attribute("user", "rule")),
        ("user . missing", ast.Attribute("user", "missing")),
        ("device.kind", ast.Attribute("device", "kind")),  # the compiler checks the scope
    ],
)
def test_names_and_attributes(text: str, expected: ast.Expr) -> None:
    assert expr(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now()", ast.Call("now", ())),
        ('views("Electronics", 24h)', ast.Call("views", (ast.String("Electronics"), ast.Duration(24, "h")))),
        (
            "f(a + 1, g(user.x), [1, 2], not b)",
            ast.Call(
                "f",
                (
                    ast.Arithmetic("+", a("a"), num(1)),
                    ast.Call("g", (ast.Attribute("user", "x"),)),
                    ast.ListLiteral((num(1), num(2))),
                    ast.Not(a("b")),
                ),
            ),
        ),
    ],
)
def test_calls(text: str, expected: ast.Call) -> None:
    assert expr(text) == expected


# --- operators and precedence ---------------------------------------------------------


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op: str) -> None:
    assert expr(f"a {op} 1") == ast.Compare(op, a("a"), num(1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('user.tier in ["gold", "platinum"]', ast.Compare(
            "in", ast.Attribute("user", "tier"), ast.ListLiteral((ast.String("gold"), ast.String("platinum")))
        )),
        ("a not in b", ast.Compare("not in", a("a"), a("b"))),
        ("user.email is missing", ast.IsMissing(ast.Attribute("user", "email"), negated=False)),
        ("user.email is not missing", ast.IsMissing(ast.Attribute("user", "email"), negated=True)),
    ],
)  # fmt: skip
def test_membership_and_missing(text: str, expected: ast.Expr) -> None:
    assert expr(text) == expected


PRECEDENCE = [
    # or < and
    ("a or b and c", ast.Or((a("a"), ast.And((a("b"), a("c")))))),
    ("a and b or c", ast.Or((ast.And((a("a"), a("b"))), a("c")))),
    # and < not
    ("not a and b", ast.And((ast.Not(a("a")), a("b")))),
    ("a and not b", ast.And((a("a"), ast.Not(a("b"))))),
    ("not a or not b", ast.Or((ast.Not(a("a")), ast.Not(a("b"))))),
    # not < comparisons, in, not in, is missing
    ("not a == b", ast.Not(ast.Compare("==", a("a"), a("b")))),
    ("not a in b", ast.Not(ast.Compare("in", a("a"), a("b")))),
    ("not a not in b", ast.Not(ast.Compare("not in", a("a"), a("b")))),
    ("not a is missing", ast.Not(ast.IsMissing(a("a")))),
    ("not a is not missing", ast.Not(ast.IsMissing(a("a"), negated=True))),
    ("not not a", ast.Not(ast.Not(a("a")))),
    ("a == b and c != d", ast.And((ast.Compare("==", a("a"), a("b")), ast.Compare("!=", a("c"), a("d"))))),
    # comparisons < + -
    ("a + b == c - d", ast.Compare(
        "==", ast.Arithmetic("+", a("a"), a("b")), ast.Arithmetic("-", a("c"), a("d"))
    )),
    ("a + 1 in b", ast.Compare("in", ast.Arithmetic("+", a("a"), num(1)), a("b"))),
    ("a - 1 is missing", ast.IsMissing(ast.Arithmetic("-", a("a"), num(1)))),
    # + - < * /
    ("a + b * c", ast.Arithmetic("+", a("a"), ast.Arithmetic("*", a("b"), a("c")))),
    ("a * b + c", ast.Arithmetic("+", ast.Arithmetic("*", a("a"), a("b")), a("c"))),
    ("a - b / c", ast.Arithmetic("-", a("a"), ast.Arithmetic("/", a("b"), a("c")))),
    # * / < unary -
    ("-a * b", ast.Arithmetic("*", ast.Negate(a("a")), a("b"))),
    ("a * -b", ast.Arithmetic("*", a("a"), ast.Negate(a("b")))),
    ("-a + b", ast.Arithmetic("+", ast.Negate(a("a")), a("b"))),
    ("a - -b", ast.Arithmetic("-", a("a"), ast.Negate(a("b")))),
    ("-a.b", ast.Negate(ast.Attribute("a", "b"))),
    # left associativity
    ("a - b - c", ast.Arithmetic("-", ast.Arithmetic("-", a("a"), a("b")), a("c"))),
    ("a + b - c", ast.Arithmetic("-", ast.Arithmetic("+", a("a"), a("b")), a("c"))),
    ("a - b + c", ast.Arithmetic("+", ast.Arithmetic("-", a("a"), a("b")), a("c"))),
    ("a / b / c", ast.Arithmetic("/", ast.Arithmetic("/", a("a"), a("b")), a("c"))),
    ("a * b / c", ast.Arithmetic("/", ast.Arithmetic("*", a("a"), a("b")), a("c"))),
    ("a / b * c", ast.Arithmetic("*", ast.Arithmetic("/", a("a"), a("b")), a("c"))),
    # parentheses
    ("a - (b - c)", ast.Arithmetic("-", a("a"), ast.Arithmetic("-", a("b"), a("c")))),
    ("(a + b) * c", ast.Arithmetic("*", ast.Arithmetic("+", a("a"), a("b")), a("c"))),
    ("-(a + b)", ast.Negate(ast.Arithmetic("+", a("a"), a("b")))),
    ("(a or b) and c", ast.And((ast.Or((a("a"), a("b"))), a("c")))),
    ("not (a and b)", ast.Not(ast.And((a("a"), a("b"))))),
    ("(a == b) == c", ast.Compare("==", ast.Compare("==", a("a"), a("b")), a("c"))),
    ("((a))", a("a")),
    # chains of and / or are flat; parenthesized ones nest
    ("a or b or c", ast.Or((a("a"), a("b"), a("c")))),
    ("a and b and c and d", ast.And((a("a"), a("b"), a("c"), a("d")))),
    ("(a or b) or c", ast.Or((ast.Or((a("a"), a("b"))), a("c")))),
    ("a and (b and c)", ast.And((a("a"), ast.And((a("b"), a("c")))))),
    # everything at once
    ("a > 0 or b < 1 and not c", ast.Or((
        ast.Compare(">", a("a"), num(0)),
        ast.And((ast.Compare("<", a("b"), num(1)), ast.Not(a("c")))),
    ))),
    ("-a * b + c > d or e", ast.Or((
        ast.Compare(
            ">", ast.Arithmetic("+", ast.Arithmetic("*", ast.Negate(a("a")), a("b")), a("c")), a("d")
        ),
        a("e"),
    ))),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PRECEDENCE, ids=[text for text, _ in PRECEDENCE])
def test_precedence_and_associativity(text: str, expected: ast.Expr) -> None:
    assert expr(text) == expected


@pytest.mark.parametrize("text", ["a == b == c", "a < b < c", "a in b in c", "a is missing is missing"])
def test_comparisons_do_not_chain(text: str) -> None:
    with pytest.raises(RulesError):
        parse(f"segment s = {text}")


# --- spans -----------------------------------------------------------------------------


def test_spans_give_1_based_lines_and_columns() -> None:
    module = parse(SPEC_EXAMPLE, "retail.rules")
    ruleset, content, model, segment, rule, unnamed, default = module.declarations
    assert (ruleset.span.line, ruleset.span.column) == (1, 1)
    assert ruleset.span.file == "retail.rules"
    assert isinstance(content, ast.ContentDecl)
    assert (content.name.span.line, content.name.span.column) == (2, 9)
    assert isinstance(model, ast.ModelDecl)
    assert (model.path.span.line, model.path.span.column) == (3, 17)
    assert isinstance(segment, ast.SegmentDecl)
    call = segment.condition.left  # type: ignore[union-attr]
    assert (call.span.line, call.span.column) == (4, 27)
    assert call.span.text == 'views("Electronics", 24h)'
    assert (call.args[1].span.line, call.args[1].span.column) == (4, 48)
    assert isinstance(rule, ast.RuleDecl)
    assert (rule.span.line, rule.span.column) == (5, 1)
    assert rule.span.end_position == (8, 13)  # through the priority
    assert (rule.condition.span.line, rule.condition.span.column) == (6, 8)
    p_click = rule.condition.operands[1]  # type: ignore[union-attr]
    assert (p_click.span.line, p_click.span.column) == (6, 28)
    assert p_click.span.text == "p_click > 0.7"
    assert (rule.content.span.line, rule.content.span.column) == (7, 13)
    assert rule.slot is not None
    assert (rule.slot.span.line, rule.slot.span.column) == (7, 28)
    assert isinstance(unnamed, ast.RuleDecl)
    assert (unnamed.span.line, unnamed.span.column) == (9, 1)
    assert unnamed.condition.left.span.text == "user.tier"  # type: ignore[union-attr]
    assert (unnamed.condition.right.span.line, unnamed.condition.right.span.column) == (9, 19)  # type: ignore[union-attr]
    assert isinstance(default, ast.DefaultDecl)
    assert (default.content.span.line, default.content.span.column) == (10, 14)


def test_spans_of_expression_nodes() -> None:
    condition = expr("not (a + 2) * -b >= 3 and c.d is missing")
    assert isinstance(condition, ast.And)
    assert condition.span.text == "not (a + 2) * -b >= 3 and c.d is missing"
    negation, missing = condition.operands
    assert negation.span.text == "not (a + 2) * -b >= 3"
    assert missing.span.text == "c.d is missing"
    assert missing.span.column == 39
    compare = negation.operand  # type: ignore[union-attr]
    assert compare.left.right.span.text == "-b"
    assert compare.left.right.span.column == 27


def test_spans_of_tests_and_lists() -> None:
    decl = only('test "t"\n  given user.tier = "gold"\n  expect hero = vip\n')
    assert isinstance(decl, ast.TestDecl)
    assert (decl.title.span.line, decl.title.span.column) == (1, 6)
    assert decl.given[0].span.text == 'user.tier = "gold"'
    assert (decl.given[0].span.line, decl.given[0].span.column) == (2, 9)
    assert (decl.expect[0].span.line, decl.expect[0].span.column) == (3, 10)
    listed = expr('["a",\n   "b",]')
    assert listed.span.text == '["a",\n   "b",]'
    assert (listed.items[1].span.line, listed.items[1].span.column) == (2, 4)  # type: ignore[union-attr]


def test_columns_count_characters_not_bytes() -> None:
    decl = only('segment s = "é✓" == x')
    assert isinstance(decl, ast.SegmentDecl)
    assert decl.condition.right.span.column == 21  # type: ignore[union-attr]


# --- parse_source ---------------------------------------------------------------------------


def test_parse_source_returns_the_module_and_no_problems_for_a_good_file() -> None:
    module, problems = parse_source(Source("shop.rules", SPEC_EXAMPLE))
    assert problems == []
    assert module == parse(SPEC_EXAMPLE)
    assert module.name == "shop.rules"
    assert module.declarations[0].span.file == "shop.rules"


def test_parse_source_keeps_the_good_declarations_of_a_bad_file() -> None:
    text = "segment a = x\nwhen y = 1 then show b\nsegment c = z\n"
    module, problems = parse_source(Source("shop.rules", text))
    assert [problem.line for problem in problems] == [2]
    assert module.declarations == (
        ast.SegmentDecl(ast.Ident("a"), a("x")),
        ast.SegmentDecl(ast.Ident("c"), a("z")),
    )


def test_parse_raises_with_the_file_name() -> None:
    with pytest.raises(RulesError) as info:
        parse("segment = x", "broken.rules")
    assert info.value.diagnostics[0].file == "broken.rules"
    assert parse("segment s = x").name == "<string>"


# --- the fast parse loop agrees with Lark's ---


def _flat(node: object) -> object:
    """A node as nested tuples, spans included (node equality leaves spans out)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__, *(_flat(getattr(node, f.name)) for f in dataclasses.fields(node)))
    if isinstance(node, tuple | list):
        return tuple(_flat(item) for item in node)
    if isinstance(node, dict):
        return tuple((key, _flat(value)) for key, value in node.items())
    if isinstance(node, Source):
        return node.name
    return node


def test_the_fast_parse_loop_is_in_use() -> None:
    fast = driver_module.lalr_driver().fast
    assert fast is not None, "this Lark keeps its tables elsewhere: parsing falls back to Lark's loop"


# Texts the parse loops are held to one another on: generated rules, the shipped rulesets, errors, caps.
LOOP_TEXTS = [
    pytest.param(ruleset_text(300, conditions=(2, 5), model_share=0.2), id="generated"),
    *(
        pytest.param(path.read_text(), id=path.name)
        for path in sorted((Path(__file__).parents[1] / "rulesets" / "retail").glob("*.rules"))
    ),
    pytest.param('rule r when user.tier == "gold" and then show a in hero\nrule s when true show', id="errors"),
    pytest.param("rule r when a then show b priority -2 cap 3 per 24h\nwhen a then show b cap 1 per 1d", id="c"),
]


@pytest.mark.parametrize("text", LOOP_TEXTS)
def test_the_fast_loop_builds_what_lark_builds(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_source(Source("t.rules", text))
    lark_only = dataclasses.replace(driver_module.lalr_driver(), fast=None)
    monkeypatch.setattr(driver_module, "_DRIVER", lark_only)
    lark = parse_source(Source("t.rules", text))
    assert _flat(fast[0]) == _flat(lark[0])
    assert [d.to_dict() for d in fast[1]] == [d.to_dict() for d in lark[1]]


def test_the_fast_loop_runs_in_c() -> None:
    assert driver_module._lalr is not None, "dsl/_lalr.c was not built: the fast loop runs in Python"
    assert (driver_module._native_parse is not None) == native.allowed()


EXPRESSION = 'views("Books", 24h) * 2 > 3 and not (x in [1, 2])'  # an expression parse, from its own start rule


@pytest.mark.parametrize("text", [*LOOP_TEXTS, pytest.param("", id="empty")])
def test_the_c_loop_builds_what_the_python_loop_builds(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert driver_module._native_parse is not None
    to_lark = []  # parses the loop gave up on: only a text with a syntax error may be one of them
    with_lark = driver_module.BoundParser._parse_with_lark
    monkeypatch.setattr(
        driver_module.BoundParser, "_parse_with_lark", lambda *args: to_lark.append(1) or with_lark(*args)
    )
    in_c = parse_source(Source("t.rules", text))
    assert bool(to_lark) == bool(in_c[1])
    expression = _flat(parse_expression(EXPRESSION))
    monkeypatch.setattr(driver_module, "_native_parse", None)
    in_python = parse_source(Source("t.rules", text))
    assert _flat(in_c[0]) == _flat(in_python[0])
    assert [d.to_dict() for d in in_c[1]] == [d.to_dict() for d in in_python[1]]
    assert expression == _flat(parse_expression(EXPRESSION))


# --- parses in several threads at once ---


def _parsed(name: str, text: str) -> object:
    """What one parse call returns, spans and diagnostics included, as comparable data."""
    if name.endswith(".expr"):
        try:
            return _flat(parse_expression(text, name))
        except RulesError as exc:
            return [d.to_dict() for d in exc.diagnostics]
    module, problems = parse_source(Source(name, text))
    return _flat(module), [d.to_dict() for d in problems]


def test_parses_in_several_threads_at_once_give_what_sequential_parses_give() -> None:
    retail = sorted((Path(__file__).parents[1] / "rulesets" / "retail").glob("*.rules"))
    files = [(path.name, path.read_text()) for path in retail]
    files += [(f"generated-{seed}.rules", ruleset_text(60, seed=seed, model_share=0.2)) for seed in (1, 2, 3)]
    files += [
        ("errors.rules", 'rule r when user.tier == "gold" and then show a in hero\nrule s when true show'),
        ("escapes.rules", 'segment s = x == "a\\q"\ncontent c = {"a": 1, "a": nul}\nwhen x then show c priority 1.5'),
        ("feature.expr", 'views("Electronics", 24h) > 2 and user.tier in ["gold", "platinum"]'),
        ("broken.expr", "user.tier == and"),
    ]
    sequential = [_parsed(name, text) for name, text in files]
    escapes_problems = sequential[[name for name, _text in files].index("escapes.rules")][1]
    assert len(escapes_problems) == 4, "each of the tree builder's own problems, reported during the parse"
    threads = 6
    ready = threading.Barrier(threads)

    def parse_all(offset: int) -> list[object]:
        ready.wait()
        order = [(index + offset) % len(files) for index in range(len(files))]
        return [(index, _parsed(*files[index])) for index in order]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # 50 times as often as by default: threads take turns within parses
    try:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(parse_all, range(threads)))
    finally:
        sys.setswitchinterval(interval)
    for result in results:
        for index, parsed in result:
            assert parsed == sequential[index], files[index][0]
