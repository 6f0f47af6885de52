"""Experiments and the holdout: the declarations, the arms in conditions, the holdout's defaults, explain and lint."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

import tailor
from tailor.bucketing import bucket_ranges, choose_arm, hash
from tailor.compiler.lint import lint
from tailor.compiler.plan import DecisionPlan
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.formatter import format_text
from tailor.runtime.memory_store import MemoryStore

RULES = """
ruleset shop
content accessories = {"title": "Accessories"}
content generic = {"title": "Hi"}

experiment hero_test
  arms rules 50%, model 50%
  seed "hero-test-2026"      # optional; default: the experiment's name
  coverage 80%

holdout 5%

rule hero_by_model
  when hero_test == "model" and context.page == "home"
  then show accessories in hero
  priority 20

rule hero_unassigned
  when hero_test is missing and views(24h) > 2
  then show accessories in hero
  priority 10

default show generic in hero
"""


def arm_of(user: str, seed: str = "hero-test-2026", coverage: float = 0.8) -> str | None:
    index = choose_arm(hash(seed, user), bucket_ranges(2, coverage, [0.5, 0.5]))
    return ("rules", "model")[index] if index >= 0 else None


def held_out(user: str) -> bool:
    return hash("shop-holdout", user) < 0.05


def users(where) -> list[str]:
    return [user for user in (f"u{i}" for i in range(3000)) if where(user)]


@pytest.fixture(scope="module")
def engine() -> tailor.Engine:
    return tailor.Engine(tailor.loads(RULES, "shop"))


def test_the_experiment_name_stands_for_the_arm_in_conditions(engine: tailor.Engine) -> None:
    model = users(lambda u: not held_out(u) and arm_of(u) == "model")[:20]
    rules = users(lambda u: not held_out(u) and arm_of(u) == "rules")[:20]
    assert model and rules
    for user in model:
        assert engine.decide(user, {"page": "home"}).slots["hero"].rule == "hero_by_model"
    for user in rules:
        assert engine.decide(user, {"page": "home"}).slots["hero"].rule is None


def test_outside_the_coverage_and_in_the_holdout_the_arm_is_missing() -> None:
    store = MemoryStore()
    engine = tailor.Engine(tailor.loads(RULES, "shop"), store)
    outside = users(lambda u: not held_out(u) and arm_of(u) is None)[0]
    held = users(held_out)[0]
    for user in (outside, held):
        engine.record([{"user_id": user, "type": "view", "key": "x"} for _ in range(3)])
    assert engine.decide(outside, {"page": "home"}).slots["hero"].rule == "hero_unassigned"  # `is missing` holds
    assert engine.explain(outside, {}).experiments["hero_test"].how == "outside"


def test_a_held_out_user_gets_every_default_with_no_fetch_and_no_model() -> None:
    rules = RULES.replace('context.page == "home"', 'context.page == "home" and p_click > 0.5')
    ruleset = tailor.loads(rules.replace("ruleset shop", 'ruleset shop\nmodel p_click = "m.onnx"'), "shop")
    store = MemoryStore()
    engine = tailor.Engine(ruleset, store)
    held = users(held_out)[:10]
    for user in held:
        engine.record([{"user_id": user, "type": "view", "key": "x"} for _ in range(3)])
    before = store.round_trips
    for user in held:
        decision = engine.decide(user, {"page": "home"}, features={"p_click": 0.9})
        assert decision.slots["hero"].content == "generic" and decision.slots["hero"].rule is None
        assert decision.fetched == () and decision.models_run == ()
    assert store.round_trips == before  # nothing behavioural was read
    explanation = engine.explain(held[0], {"page": "home"})
    assert explanation.holdout is not None and explanation.holdout.in_holdout
    assert explanation.slots["hero"].candidates == () and explanation.experiments["hero_test"].arm is None
    assert "in holdout" in explanation.render()


def test_explain_shows_the_arm_and_how_it_was_drawn(engine: tailor.Engine) -> None:
    user = users(lambda u: not held_out(u) and arm_of(u) == "model")[0]
    data = engine.explain(user, {"page": "home"}).to_dict()
    draw = data["experiments"]["hero_test"]
    assert draw["arm"] == "model" and draw["how"] == "drawn"
    assert draw["hash"] == hash("hero-test-2026", user)
    assert draw["seed"] == "hero-test-2026" and draw["coverage"] == 0.8
    assert draw["ranges"] == {"rules": [0.0, 0.4], "model": [0.5, 0.9]}
    assert data["holdout"] == {
        "in_holdout": False,
        "hash": hash("shop-holdout", user),
        "share": 0.05,
        "seed": "shop-holdout",
    }
    assert tailor.Explanation.from_dict(data) == engine.explain(user, {"page": "home"})
    text = engine.explain(user, {"page": "home"}).render()
    assert "experiment hero_test: arm model" in text and "[0.5, 0.9)" in text


def test_a_request_can_pin_an_arm_but_no_user_means_no_arm(engine: tailor.Engine) -> None:
    rules_user = users(lambda u: not held_out(u) and arm_of(u) == "rules")[0]
    pinned = engine.decide(rules_user, {"page": "home"}, features={"hero_test": "model"})
    assert pinned.slots["hero"].rule == "hero_by_model"
    assert (
        engine.explain(rules_user, {"page": "home"}, features={"hero_test": "model"}).experiments["hero_test"].how
        == "pinned"
    )
    assert engine.decide(None, {"page": "home"}).slots["hero"].rule is None
    assert engine.explain(None, {}).experiments["hero_test"].how == "no_user"


def test_a_supplied_arm_is_read_by_the_experiment_s_name_among_other_keys() -> None:
    from tailor.runtime.supplied_features import SuppliedFeatures

    reader = SuppliedFeatures(tailor.loads(RULES, "shop").plan.features)
    values, ignored = reader.apply({"hero_test": "model", "views( 1d )": 3})
    assert values == {"hero_test": "model", "views(24h)": 3} and ignored == ()


def test_the_seed_defaults_to_the_name_and_the_holdout_seed_can_be_given() -> None:
    text = RULES.replace('  seed "hero-test-2026"      # optional; default: the experiment\'s name\n', "").replace(
        "holdout 5%", 'holdout 5% seed "mine"'
    )
    plan = tailor.loads(text, "shop").plan
    assert plan.experiments["hero_test"].seed == "hero_test"
    assert plan.holdout is not None and plan.holdout.seed == "mine"


def test_a_phase_is_the_split_and_changes_only_with_it() -> None:
    def phase(text: str) -> str:
        return tailor.loads(text, "shop").plan.experiments["hero_test"].phase

    first = phase(RULES)
    assert phase(RULES.replace("priority 20", "priority 30")) == first  # an edit elsewhere keeps the phase
    assert phase(RULES.replace("holdout 5%", "holdout 10%")) == first
    for edit in [("80%", "90%"), ("rules 50%, model 50%", "rules 40%, model 60%"), ("hero-test-2026", "x")]:
        assert phase(RULES.replace(*edit)) != first


def test_arms_are_the_same_in_another_process() -> None:
    here = tailor.Engine(tailor.loads(RULES, "shop"))
    sample = [f"u{i}" for i in range(200)]
    code = (
        "import json, sys, tailor\n"
        "engine = tailor.Engine(tailor.loads(sys.stdin.read(), 'shop'))\n"
        f"print(json.dumps([engine.explain(u, {{}}).experiments['hero_test'].arm for u in {sample!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=RULES, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [here.explain(u, {}).experiments["hero_test"].arm for u in sample]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('experiment e\n  seed "s"\n', "experiment 'e' has no arms"),
        ("experiment e\n  arms a 50%, b 50%\n  arms c 100%\n", "this experiment already has its arms"),
        ("experiment e\n  arm a 100%\n", "expected 'arms', found 'arm'"),
        ("experiment e\n  arms a 50%, b 50%\n  cover 10%\n", "expected 'coverage', found 'cover'"),
        ('holdout 5% sed "x"\n', "expected 'seed'"),
    ],
)
def test_declaration_mistakes_are_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        tailor.parse(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("experiment e\n  arms a 50%, b 40%\n", "weights", "sum to 90%, not 100%"),
        ("experiment e\n  arms a 50%, a 50%\n", "duplicate", "already has an arm 'a'"),
        ("experiment e\n  arms a 100%\n  coverage 120%\n", "weights", "at most 100%"),
        ("holdout 5%\nholdout 6%\n", "duplicate", "already has a holdout"),
        ("holdout 100%\n", "weights", "every user from every rule"),
        ("segment e = context.x == 1\nexperiment e\n  arms a 100%\n", "duplicate", "already declared"),
        (
            "experiment e\n  arms a 100%\ncontent c = {}\nwhen e > 3 then show c\n",
            "type",
            "cannot compare a string with a number",
        ),
    ],
)
def test_check_errors(text: str, code: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        tailor.loads(text, "shop")
    assert any(d.code == code and message in d.message for d in caught.value.diagnostics), caught.value


def test_keywords_may_name_arms_and_the_formatter_round_trips() -> None:
    text = "experiment e\n  coverage 50%  # half\n  arms model 50%, rule 50%\nholdout 5%\n"
    formatted = format_text(text)
    assert formatted == "experiment e\n  arms model 50%, rule 50%\n  coverage 50%  # half\n\nholdout 5%\n"
    assert format_text(formatted) == formatted
    assert tailor.parse(formatted) == tailor.parse(text)


def _linted_plan(text: str) -> DecisionPlan:
    """A compiled ruleset's plan with its program (a served ruleset's plan keeps none), as lint takes it."""
    ruleset = tailor.loads(text, "shop")
    return dataclasses.replace(ruleset.plan, program=ruleset.program)


def test_lint_reports_unknown_arms_alike_arms_and_unread_experiments() -> None:
    text = """
content a = {}
experiment hero_test
  arms rules 34%, model 33%, other 33%
experiment idle
  arms x 50%, y 50%
rule r1 when hero_test == "modle" then show a in hero
rule r2 when hero_test in ["rules", "model"] then show a in hero
default show a in hero
"""
    found = {(d.code, d.message, d.hint) for d in lint(_linted_plan(text))}
    assert ("unknown-arm", "experiment 'hero_test' has no arm \"modle\"", "did you mean 'model'?") in found
    assert any(code == "arms-alike" and "rules and model" in message for code, message, _ in found)
    assert any(code == "unused" and "experiment 'idle'" in message for code, message, _ in found)
    clean = {d.code for d in lint(_linted_plan(RULES))}
    assert not clean & {"unknown-arm", "arms-alike", "unused"}


def test_arms_may_be_named_like_the_words_of_a_rule_tail() -> None:
    """``show`` then ``cap`` as arms: neither starts a rule's tail, so ``cap`` is a name, not a cap."""
    ruleset = tailor.loads(
        'content c = {}\nexperiment notify\n  arms show 50%, cap 50%\nrule r when notify == "cap" then show c in s\n'
    )
    assert ruleset.plan.experiments["notify"].arms == ("show", "cap")
