"""Name resolution and type checking across a ruleset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.compiler.check import check
from tailor.dsl.parser import parse
from tailor.runtime.ruleset_loader import compile_path

PRELUDE = """
content accessories = {"kind": "banner"}
content generic = {"kind": "banner"}
model p_click = "p_click.onnx"
segment electronics_fan = views("Electronics", 24h) > 2
"""


def problems(text: str) -> list:
    _program, found = check([parse(PRELUDE + text, "shop.rules")], "shop")
    return found


def messages(text: str) -> list[str]:
    return [d.message for d in problems(text)]


def test_a_clean_ruleset_has_no_problems() -> None:
    text = """
    rule r1 when electronics_fan and p_click > 0.7 then show accessories in hero priority 10
    when user.tier == "gold" and context.page in ["home", "cart"] then show generic in hero
    when since("purchase") > 30d and total("purchase", "any", 30d) >= 100 then show generic
    when count("cart_abandoned", "any", 7d) > 0 and not (views(1h) + clicks(1h) < 3) then show generic
    when user.age is missing or -user.age < -18 then show generic
    default show generic in hero
    """
    assert problems(text) == []


def test_unknown_names_suggest_the_closest() -> None:
    found = problems("when electronics_fans then show accesories")
    assert [(d.message, d.hint) for d in found] == [
        ("unknown name 'electronics_fans'", "did you mean 'electronics_fan'?"),
        ("unknown content 'accesories'", "did you mean 'accessories'?"),
    ]
    assert (found[0].line, found[0].column) == (6, 6)


def test_unknown_function_and_scope() -> None:
    found = problems("when vews(1h) > 2 and usr.tier == 1 then show generic")
    assert [d.hint for d in found] == ["did you mean 'views'?", "did you mean 'user'?"]


def test_duplicates_point_at_the_first_declaration() -> None:
    found = problems("content generic = {}\nrule a when true then show generic\nrule a when true then show generic")
    assert [d.message for d in found] == [
        "the content 'generic' is already declared",
        "there is already a rule named 'a'",
    ]
    assert all(d.related for d in found)


def test_segment_cycles_are_reported_once() -> None:
    found = messages("segment a = b\nsegment b = c and true\nsegment c = a")
    assert found == ["segment 'a' depends on itself: a → b → c → a"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ('views(24h) == "x"', 'cannot compare a number with a string: views(24h) is a number but "x" is a string'),
        ('since("purchase") > 30', "cannot compare a duration with a number"),
        ("views(24h)", "a condition must be true or false, but views(24h) is a number"),
        ('views("Books", 24)', "the window of views() must be a duration, not 24"),
        ("views(Books, 24h) > 1", "the key of views() must be text in double quotes, not Books"),
        ('count("x", 1h) > 1', "count() takes an event type, a key and a window; it got 2 arguments"),
        ("views > 1", "views needs arguments"),
        ('user.tier in "gold"', "the right side of 'in' must be a list"),
        ('"a" < "b"', "'<' compares numbers or durations, not strings"),
        ('user.tier in ["a", 2]', "a list holds values of one type"),
        ("views(0s) > 1", "the window of views() must be longer than zero"),
    ],
)
def test_type_and_argument_errors(condition: str, message: str) -> None:
    found = messages(f"when {condition} then show generic")
    assert found and found[0].startswith(message), found


def test_attribute_types_come_from_use_and_conflicts_name_both_places() -> None:
    found = problems('when user.tier == "gold" then show generic\nwhen user.tier > 3 then show generic')
    assert len(found) == 1
    assert found[0].message.startswith("cannot compare a string with a number")
    assert found[0].related and found[0].related[0].span.line == 6


def test_attribute_types_are_recorded() -> None:
    program, found = check([parse(PRELUDE + "when user.vip and user.age + 1 > 2 then show generic", "x.rules")])
    assert found == []
    assert {k: str(v) for k, v in program.attribute_types.items()} == {"user.vip": "bool", "user.age": "number"}


def test_tests_are_not_allowed_in_ruleset_files() -> None:
    assert messages('test "t" expect hero = generic') == ["tests belong in a file whose name ends in _test.rules"]


def test_independent_errors_are_all_reported_in_source_order() -> None:
    found = problems("when a then show b\nwhen c then show d\nwhen e then show f")
    assert [d.line for d in found] == [6, 6, 7, 7, 8, 8]


def test_directory_rulesets_share_one_namespace(tmp_path: Path) -> None:
    (tmp_path / "a.rules").write_text('ruleset shop\ncontent generic = {"id": 1}\n')
    sub = tmp_path / "pages"
    sub.mkdir()
    (sub / "home.rules").write_text('when context.page == "home" then show generic in hero\n')
    (sub / "home_test.rules").write_text('test "t" expect hero = generic\n')
    compilation = compile_path(tmp_path, until="check").compilation
    program, found = compilation.program, compilation.diagnostics
    assert found == []
    assert program is not None and program.name == "shop"
    assert [r.name for r in program.rules] == ["home:1"]
    assert program.slots == ("hero",)


def _nested(levels: int) -> str:
    """A payload of ``levels`` objects, each inside the one before."""
    payload = "1"
    for _ in range(levels):
        payload = '{"a": ' + payload + "}"
    return payload


def test_content_nested_deeper_than_the_limit_is_an_error_at_the_content() -> None:
    from tailor.compiler.check import MAX_CONTENT_DEPTH

    text = f"\ncontent deep = {_nested(250)}\nwhen true then show deep in hero\n"
    found = problems(text)
    assert [(d.code, d.span.column) for d in found] == [("content-too-deep", 9)]
    assert (PRELUDE + text).splitlines()[found[0].span.line - 1].startswith("content deep = ")
    assert f"the limit is {MAX_CONTENT_DEPTH}" in found[0].message


def test_content_at_the_depth_limit_is_served_as_json() -> None:
    import orjson

    import tailor
    from tailor.compiler.check import MAX_CONTENT_DEPTH, payload_depth

    text = f"content deep = {_nested(MAX_CONTENT_DEPTH)}\nwhen true then show deep in hero\n"
    assert payload_depth(tailor.loads(text).payload("deep")) == MAX_CONTENT_DEPTH
    decision = tailor.Engine(tailor.loads(text)).decide()
    assert orjson.loads(orjson.dumps(decision.slots["hero"].to_dict()))["content"] == "deep"
