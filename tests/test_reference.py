"""The reference interpreter on hand-written cases: the contract, example by example."""

from __future__ import annotations

import math
from typing import Any

import pytest
import reference
import rulegen
from hypothesis import HealthCheck, given, settings
from reference import NOTHING, SlotOutcome, Truth

from tailor.compiler.check import Program
from tailor.dsl import ast
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.printer import expression_text

T, F, U = True, False, None

PRELUDE = """\
content a = {"id": "a"}
content b = {"id": "b", "n": 2}
content d = {"id": "d", "tags": ["x"]}
model p_click = "p.onnx"
"""


def load(text: str) -> Program:
    return reference.load(PRELUDE + text)


def truth(
    condition: str,
    features: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    declarations: str = "",
) -> Truth:
    """The truth of ``condition`` (written as a segment's body) for one request."""
    program = load(declarations + f"segment probe = {condition}\n")
    interpreter = reference.Interpreter(program, context or {}, features or {})
    return interpreter.truth(program.segments["probe"].condition)


def value(expression: str, features: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> Any:
    """The value of a number or duration expression (checked as the operand of ``is missing``)."""
    program = load(f"segment probe = {expression} is missing\n")
    condition = program.segments["probe"].condition
    assert isinstance(condition, ast.IsMissing)
    return reference.Interpreter(program, context or {}, features or {}).value(condition.operand)


# --- three-valued logic --------------------------------------------------------

# The truth tables of the language reference, row by row.
AND_OR_TABLE = [
    (T, T, T, T),
    (T, F, F, T),
    (T, U, U, T),
    (F, T, F, T),
    (F, F, F, F),
    (F, U, F, U),
    (U, T, U, T),
    (U, F, F, U),
    (U, U, U, U),
]


def _flags(a: Truth, b: Truth) -> dict[str, Any]:
    supplied = {"user.a": a, "user.b": b}
    return {key: flag for key, flag in supplied.items() if flag is not None}


@pytest.mark.parametrize(("a", "b", "conjunction", "disjunction"), AND_OR_TABLE)
def test_and_or_follow_kleene_logic(a: Truth, b: Truth, conjunction: Truth, disjunction: Truth) -> None:
    assert truth("user.a and user.b", _flags(a, b)) is conjunction
    assert truth("user.a or user.b", _flags(a, b)) is disjunction


@pytest.mark.parametrize(("a", "b", "conjunction", "disjunction"), AND_OR_TABLE)
def test_explicit_none_is_as_unknown_as_absent(a: Truth, b: Truth, conjunction: Truth, disjunction: Truth) -> None:
    supplied = {"user.a": a, "user.b": b}  # None supplied, not left out
    assert truth("user.a and user.b", supplied) is conjunction
    assert truth("user.a or user.b", supplied) is disjunction


@pytest.mark.parametrize(
    ("a", "negation", "missing", "not_missing"),
    [(T, F, F, T), (F, T, F, T), (U, U, T, F)],
)
def test_not_and_is_missing(a: Truth, negation: Truth, missing: bool, not_missing: bool) -> None:
    features = _flags(a, None)
    assert truth("not user.a", features) is negation
    assert truth("user.a is missing", features) is missing
    assert truth("user.a is not missing", features) is not_missing
    # `is missing` is never unknown, even of something unknown
    assert truth("(user.a and user.b) is missing", features) is (a is not False)


def test_longer_chains_and_nesting() -> None:
    assert truth("user.a and user.b and user.c", {"user.a": True, "user.c": False}) is False
    assert truth("user.a and user.b and user.c", {"user.a": True, "user.c": True}) is None
    assert truth("user.a or user.b or user.c", {"user.a": False, "user.c": True}) is True
    assert truth("user.a or user.b or user.c", {"user.a": False, "user.c": False}) is None
    assert truth("not (user.a or user.b) and true", {"user.a": False, "user.b": False}) is True
    assert truth("not not user.a", {}) is None
    assert truth("true and false", {}) is False
    assert truth("false or true", {}) is True


# --- everyone who is not gold --------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "not_equal", "negated_equal", "missing_or_not_equal"),
    [("gold", F, F, F), ("silver", T, T, T), (None, U, U, T)],
)
def test_not_gold(tier: str | None, not_equal: Truth, negated_equal: Truth, missing_or_not_equal: Truth) -> None:
    features = {} if tier is None else {"user.tier": tier}
    assert truth('user.tier != "gold"', features) is not_equal
    assert truth('not (user.tier == "gold")', features) is negated_equal
    assert truth('not user.tier == "gold"', features) is negated_equal
    assert truth('user.tier is missing or user.tier != "gold"', features) is missing_or_not_equal


def test_with_no_tier_neither_not_gold_rule_fires() -> None:
    program = load(
        'rule ne when user.tier != "gold" then show a in hero\n'
        'rule nq when not (user.tier == "gold") then show b in sidebar\n'
        'rule either when user.tier is missing or user.tier != "gold" then show d in banner\n'
        "default show d in hero\n"
    )
    decided = reference.decide(program, {}, {})
    assert decided == {
        "hero": SlotOutcome("d", {"id": "d", "tags": ["x"]}, None),
        "sidebar": NOTHING,
        "banner": SlotOutcome("d", {"id": "d", "tags": ["x"]}, "either"),
    }
    silver = reference.decide(program, {}, {"user.tier": "silver"})
    assert [silver[slot].rule for slot in ("hero", "sidebar", "banner")] == ["ne", "nq", "either"]


# --- arithmetic and comparisons ---------------------------------------------------


def test_division_by_zero_is_unknown() -> None:
    assert value("clicks(24h) / views(24h)", {"clicks(24h)": 3}) is None
    assert value("clicks(24h) / views(24h)", {"clicks(24h)": 3, "views(24h)": 0.0}) is None
    assert value("clicks(24h) / views(24h)", {"clicks(24h)": 3, "views(24h)": -0.0}) is None
    assert value("1 / 0") is None
    assert value("1 / (2 - 2)") is None
    assert value("7d / 0") is None
    assert value("clicks(24h) / views(24h)", {"clicks(24h)": 3, "views(24h)": 4}) == 0.75
    assert value("0 / views(24h)", {"views(24h)": 4}) == 0
    assert truth("clicks(24h) / views(24h) > 10%", {"clicks(24h)": 3}) is None
    assert truth("clicks(24h) / views(24h) > 10%", {"clicks(24h)": 3, "views(24h)": 4}) is True
    assert truth("clicks(24h) / views(24h) is missing", {"clicks(24h)": 3}) is True
    assert truth("not clicks(24h) / views(24h) > 10%", {"clicks(24h)": 3}) is None


def test_unknown_operands_make_unknown_results() -> None:
    assert value("user.age + 1", {}) is None
    assert value("1 - user.age", {}) is None
    assert value("user.age * 0", {}) is None  # not 0: unknown times zero is unknown
    assert value("-user.age", {}) is None
    assert value("0 / user.age", {}) is None
    assert truth("user.age + 1 > 30", {}) is None
    assert truth("user.age + 1 > 30", {"user.age": 30}) is True
    assert truth("-user.age < -18", {"user.age": 20}) is True
    assert truth("user.age == user.age", {}) is None
    for op in ("==", "!=", "<", "<=", ">", ">="):
        assert truth(f"user.age {op} 18", {}) is None
        assert truth(f"18 {op} user.age", {}) is None


@pytest.mark.parametrize(
    ("op", "below", "equal", "above"),
    [("==", F, T, F), ("!=", T, F, T), ("<", T, F, F), ("<=", T, T, F), (">", F, F, T), (">=", F, T, T)],
)
def test_comparison_operators_at_the_boundary(op: str, below: bool, equal: bool, above: bool) -> None:
    condition = f"user.age {op} 18"
    assert [truth(condition, {"user.age": age}) for age in (17.5, 18, 18.5)] == [below, equal, above]
    assert truth(condition, {"user.age": 18.0}) is equal
    assert truth(condition, {"user.age": math.nextafter(18.0, math.inf)}) is above


def test_ints_and_floats_compare_numerically() -> None:
    assert truth("user.age == 2", {"user.age": 2.0}) is True
    assert truth("user.age != 2", {"user.age": 2.0}) is False
    assert truth("user.age in [1, 2]", {"user.age": 2.0}) is True
    assert truth("user.age in [1.0, 2.5]", {"user.age": 1}) is True
    assert truth("user.age not in [1, 2]", {"user.age": 2.0}) is False
    assert truth("user.age == 0", {"user.age": -0.0}) is True


def test_membership() -> None:
    listed = 'user.tier in ["gold", "platinum"]'
    assert truth(listed, {"user.tier": "gold"}) is True
    assert truth(listed, {"user.tier": "Gold"}) is False
    assert truth(listed, {}) is None
    assert truth('user.tier not in ["gold", "platinum"]', {"user.tier": "silver"}) is True
    assert truth('user.tier not in ["gold", "platinum"]', {}) is None
    assert truth("user.tier in []", {"user.tier": "gold"}) is False
    assert truth("user.tier not in []", {"user.tier": "gold"}) is True
    assert truth("user.tier in []", {}) is None
    assert truth("user.age in [-1, 2]", {"user.age": -1}) is True
    assert truth('since("purchase") in [1d, 2h]', {'since("purchase")': 86400}) is True
    assert truth("user.is_member in [true]", {"user.is_member": False}) is False


def test_percentages_are_hundredths_and_durations_are_seconds() -> None:
    assert value("70%") == 70 / 100
    assert value("12.5%") == 0.125
    assert truth("p_click >= 70%", {"p_click": 0.7}) is True
    assert truth("p_click > 70%", {"p_click": 0.7}) is False
    assert truth("p_click >= 70%", {"p_click": math.nextafter(0.7, 0)}) is False
    assert value("90s") == 90
    assert value("30m") == 1800
    assert value("1.5h") == 5400
    assert value("7d") == 604800
    assert value("2w") == 1209600
    assert truth("24h == 1d") is True
    assert truth("2 * 7d == 2w") is True
    assert value("7d / 1d") == 7
    assert value("30d - 12h") == 30 * 86400 - 12 * 3600
    assert value("-(1h)") == -3600


# --- where values come from, and which values count ------------------------------


def test_counters_default_to_zero() -> None:
    for counter in (
        'views("Electronics", 24h)',
        "views(24h)",
        'clicks("Shoes", 7d)',
        "add_to_carts(30m)",
        'purchases("Toys", 2w)',
        'count("cart_abandoned", "any", 7d)',
        'total("purchase", "any", 30d)',
    ):
        assert value(counter) == 0
        assert truth(f"{counter} == 0") is True
        assert truth(f"{counter} is missing") is False
        assert value(counter, {counter: 5}) == 5
        assert value(counter, {counter: 2.5}) == 2.5
        assert value(counter, {counter: None}) is None  # supplied, but with no value
        assert value(counter, {counter: "5"}) is None
        assert value(counter, {counter: True}) is None
        assert value(counter, {counter: math.nan}) is None
        assert truth(f"{counter} is missing", {counter: None}) is True


def test_counters_are_keyed_by_canonical_text() -> None:
    program = load('segment probe = views( "Electronics" ,24h ) > 2\n')
    condition = program.segments["probe"].condition
    assert isinstance(condition, ast.Compare)
    assert expression_text(condition.left) == 'views("Electronics", 24h)'
    assert truth('views( "Electronics" ,24h ) > 2', {'views("Electronics", 24h)': 3}) is True
    assert truth('views("Electronics", 24h) > 2', {'views("Electronics",24h)': 3}) is False  # not the key: 0
    assert truth('views("Electronics", 24h) > 2', {'views("Electronics", 1d)': 3}) is False  # another feature


def test_since_is_unknown_when_absent() -> None:
    lapsed = 'since("purchase") > 30d'
    assert value('since("purchase")') is None
    assert truth(lapsed) is None
    assert truth(f"not {lapsed}") is None
    assert truth('since("purchase") is missing') is True
    assert truth(lapsed, {'since("purchase")': 31 * 86400}) is True
    assert truth(lapsed, {'since("purchase")': 30 * 86400}) is False
    assert truth('since("purchase") >= 30d', {'since("purchase")': 30 * 86400}) is True
    assert truth(lapsed, {'since("purchase")': "31d"}) is None
    assert truth(lapsed, {'since("purchase")': None}) is None
    assert truth('since("view", "Electronics") < 1h', {'since("view", "Electronics")': 0}) is True
    assert truth('since("view", "Electronics") < 1h', {'since("view")': 0}) is None  # another feature


def test_user_attributes_come_from_features_and_context_attributes_from_context() -> None:
    assert truth('user.tier == "gold"', {"user.tier": "gold"}) is True
    assert truth('user.tier == "gold"', {}, {"tier": "gold"}) is None
    assert truth('context.page == "home"', {}, {"page": "home"}) is True
    assert truth('context.page == "home"', {"context.page": "home"}, {}) is None
    assert truth('context.page == "home"', {}, {"page": None}) is None
    assert truth("context.page is missing", {}, {"page": None}) is True


def test_models_are_read_from_features_by_name() -> None:
    assert truth("p_click > 0.5", {"p_click": 0.9}) is True
    assert truth("p_click > 0.5", {}) is None
    assert truth("p_click is missing", {}) is True
    assert truth("p_click > 0.5", {"p_click": "0.9"}) is None
    assert truth("p_click > 0.5", {"p_click": True}) is None


@pytest.mark.parametrize(
    ("condition", "good", "wrong"),
    [
        ("user.age > 18", [30, 30.0], ["30", True, False, math.nan, [30], None]),
        ('user.tier == "gold"', ["gold"], [1, True, b"gold", None]),
        ("user.is_member", [True], [1, 1.0, "true", None]),
        ("user.is_member == true", [True], [1, "true"]),
        ("user.tenure > 30d", [31 * 86400, 31 * 86400.0], ["31d", True, math.nan]),
        ("context.cart_total >= 100", [100, 100.5], ["100", True]),
    ],
)
def test_a_value_of_the_wrong_type_is_unknown(condition: str, good: list[Any], wrong: list[Any]) -> None:
    text = condition.split()[0]
    assert text in load(f"segment probe = {condition}\n").attribute_types

    def request(supplied: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if text.startswith("context."):
            return {}, {text.removeprefix("context."): supplied}
        return {text: supplied}, {}

    for supplied in good:
        assert truth(condition, *request(supplied)) is True
    for supplied in wrong:
        assert truth(condition, *request(supplied)) is None
        typed = f"segment typed = {condition}\n"
        assert truth(f"{text} is missing", *request(supplied), declarations=typed) is True


def test_an_attribute_with_no_inferred_type_accepts_any_value() -> None:
    program = load("segment probe = user.anything is missing\n")
    assert "user.anything" not in program.attribute_types
    for supplied in ("x", 3, True, [1], {"a": 1}):
        assert truth("user.anything is missing", {"user.anything": supplied}) is False
    assert truth("user.anything is missing", {"user.anything": None}) is True


def test_types_follow_the_whole_ruleset() -> None:
    # `user.x is missing` alone leaves user.x untyped; another use makes it a number
    declarations = "segment typed = user.x > 1\n"
    assert truth("user.x is missing", {"user.x": "text"}, declarations=declarations) is True
    assert truth("user.x is missing", {"user.x": 2}, declarations=declarations) is False


# --- segments --------------------------------------------------------------------


def test_segments_are_evaluated_inline() -> None:
    declarations = (
        'segment fan = views("Electronics", 24h) > 2\n'
        'segment vip = user.tier in ["gold", "platinum"]\n'
        "segment vip_fan = vip and fan\n"
    )
    fan = {'views("Electronics", 24h)': 3}
    assert truth("vip_fan", fan, declarations=declarations) is None
    assert truth("vip_fan", {**fan, "user.tier": "gold"}, declarations=declarations) is True
    assert truth("vip_fan", {"user.tier": "gold"}, declarations=declarations) is False
    assert truth("not vip_fan", fan, declarations=declarations) is None
    assert truth("vip_fan is missing", fan, declarations=declarations) is True
    assert truth("vip_fan == false", {"user.tier": "gold"}, declarations=declarations) is True


# --- decisions ---------------------------------------------------------------------

DOC_EXAMPLE = """\
content vip = {"kind": "banner", "id": "vip-1"}
content sale = {"kind": "banner", "id": "sale-1"}
content accessories = {"kind": "banner", "id": "acc-42"}
content generic = {"kind": "banner", "id": "gen-1"}

segment electronics_fan = views("Electronics", 24h) > 2

rule vip_banner
  when user.tier == "gold"
  then show vip in hero
  priority 10

rule sale_banner
  when context.country == "FR"
  then show sale in hero
  priority 10

rule accessories_banner
  when electronics_fan
  then show accessories in hero
  priority 50

default show generic in hero
"""


@pytest.mark.parametrize(
    ("features", "context", "content", "rule"),
    [
        ({"user.tier": "gold", 'views("Electronics", 24h)': 5}, {"country": "FR"}, "accessories", "accessories_banner"),
        ({"user.tier": "gold"}, {"country": "FR"}, "vip", "vip_banner"),
        ({}, {"country": "FR"}, "sale", "sale_banner"),
        ({}, {"country": "DE"}, "generic", None),
    ],
)
def test_the_documented_decision_table(
    features: dict[str, Any], context: dict[str, Any], content: str, rule: str | None
) -> None:
    program = reference.load(DOC_EXAMPLE)
    outcome = reference.decide(program, context, features)["hero"]
    assert (outcome.content, outcome.rule) == (content, rule)
    assert outcome.payload == program.contents[content].payload


PRIORITIES = """\
rule low when true then show a in hero priority 1
rule first_top when user.vip then show b in hero priority 10
rule second_top when true then show d in hero priority 10
rule negative when true then show a in sidebar priority -5
rule zero when user.vip then show b in sidebar
rule unknown when user.missing_value > 1 then show d in sidebar priority 100
default show d in sidebar
rule only when false then show a in footer
"""


def test_highest_priority_wins_and_ties_go_to_the_first() -> None:
    program = load(PRIORITIES)
    vip = reference.decide(program, {}, {"user.vip": True})
    assert vip["hero"] == SlotOutcome("b", {"id": "b", "n": 2}, "first_top")
    assert vip["sidebar"].rule == "zero"  # 0 beats -5; `unknown` never fires
    other = reference.decide(program, {}, {"user.vip": False})
    assert other["hero"].rule == "second_top"  # a tie at 10, and first_top did not fire
    assert other["sidebar"].rule == "negative"  # a negative priority still beats no rule at all
    ranked = reference.fired_rules(program, "hero", {}, {"user.vip": True})
    assert [rule.name for rule in ranked] == ["first_top", "second_top", "low"]


def test_ties_follow_the_order_of_the_ruleset_not_the_name() -> None:
    program = load("rule zz when true then show a\nrule aa when true then show b\n")
    assert reference.decide(program)["main"].rule == "zz"
    program = load("rule aa when true then show b\nrule zz when true then show a\n")
    assert reference.decide(program)["main"].rule == "aa"


def test_defaults_and_nothing() -> None:
    program = load(PRIORITIES)
    decided = reference.decide(program, {}, {})
    assert decided["sidebar"].rule == "negative"
    assert decided["footer"] == NOTHING  # no rule fired and no default
    program = load("rule r when user.vip then show a in hero\ndefault show d in hero\ndefault show b in side\n")
    decided = reference.decide(program, {}, {"user.vip": False})
    assert decided == {
        "hero": SlotOutcome("d", {"id": "d", "tags": ["x"]}, None),
        "side": SlotOutcome("b", {"id": "b", "n": 2}, None),
    }
    assert decided["hero"].is_default
    assert not NOTHING.is_default


def test_requested_slots() -> None:
    program = load("rule r when true then show a in hero\ndefault show b in side\nrule m when true then show d\n")
    assert tuple(reference.decide(program)) == ("hero", "main", "side")
    decided = reference.decide(program, slots=["side", "nowhere"])
    assert decided == {"side": SlotOutcome("b", {"id": "b", "n": 2}, None), "nowhere": NOTHING}
    assert reference.decide(program, slots=[]) == {}


def test_a_slot_is_decided_on_its_own() -> None:
    program = load("rule big when true then show a in sidebar priority 99\nrule small when true then show b in hero\n")
    decided = reference.decide(program)
    assert (decided["hero"].rule, decided["sidebar"].rule) == ("small", "big")


def test_unnamed_rules_are_named_after_the_file_and_line() -> None:
    program = reference.load("content a = {}\n\nwhen true then show a in hero\n", name="shop")
    assert reference.decide(program)["hero"] == SlotOutcome("a", {}, "shop:3")


def test_a_rule_fires_only_when_its_condition_is_true() -> None:
    program = load("rule r when user.flag then show a\ndefault show b\n")
    assert reference.decide(program, {}, {"user.flag": True})["main"].rule == "r"
    assert reference.decide(program, {}, {"user.flag": False})["main"].rule is None
    assert reference.decide(program, {}, {})["main"].rule is None
    assert reference.decide(program, {}, {"user.flag": 1})["main"].rule is None


def test_load_rejects_rulesets_with_errors() -> None:
    with pytest.raises(RulesError):
        reference.load('rule r when user.tier == 1 and user.tier == "x" then show nowhere\n')


# --- which rules need the model --------------------------------------------------------

MODEL_RULES = """\
segment likely = p_click > 0.7
segment likely_fan = likely and views(24h) > 2
rule top when user.vip then show a in hero priority 10
rule scored when likely_fan then show b in hero priority 5
rule direct when p_click is missing then show d in side priority 1
rule plain when true then show a in side priority 2
rule later when true then show b in side priority 1
"""


def test_mentions_sees_through_segments() -> None:
    program = load(MODEL_RULES)
    by_name = {rule.name: rule for rule in program.rules}
    mentioning = {name for name, rule in by_name.items() if reference.mentions(program, rule.decl.condition, "p_click")}
    assert mentioning == {"scored", "direct"}


def test_the_model_is_skippable_only_when_every_winner_outranks_its_users() -> None:
    program = load(MODEL_RULES)
    rules = {rule.name: rule for rule in program.rules}
    assert reference.model_is_skippable(program, "p_click", {"hero": rules["top"], "side": rules["plain"]})
    assert not reference.model_is_skippable(program, "p_click", {"hero": None, "side": rules["plain"]})
    assert not reference.model_is_skippable(program, "p_click", {"hero": rules["scored"]})
    assert not reference.model_is_skippable(program, "p_click", {"side": rules["later"]})  # tie, but later
    assert reference.model_is_skippable(program, "p_click", {"nowhere": None})
    assert reference.rank(rules["plain"]) < reference.rank(rules["direct"]) < reference.rank(rules["later"])


# --- the generator --------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rulegen.cases())
def test_generated_rulesets_are_valid_and_read_only_catalogue_features(case: rulegen.Case) -> None:
    program = reference.load(case.ruleset.text)  # raises on any error
    keys = {feature.key for feature in rulegen.FEATURES}
    attributes = {feature.attribute for feature in rulegen.FEATURES if feature.attribute}
    conditions = [s.condition for s in program.segments.values()] + [r.decl.condition for r in program.rules]
    for condition in conditions:
        for node in reference.subexpressions(condition):
            if isinstance(node, ast.Call):
                assert expression_text(node) in keys
            elif isinstance(node, ast.Attribute):
                assert expression_text(node) in attributes
            elif isinstance(node, ast.Name):
                assert node.name in program.segments or node.name == rulegen.MODEL
    catalogue = {f.attribute: f.type for f in rulegen.FEATURES if f.attribute}
    assert all(catalogue[text] == kind.name for text, kind in program.attribute_types.items())
    assert {rule.slot for rule in program.rules} <= set(case.ruleset.slot_names)
    decided = reference.decide(program, case.request.context, case.request.features, case.request.slots)
    assert tuple(decided) == reference.requested_slots(program, case.request.slots)
