"""The benchmark's oracle finds the least a decision needs, and its targets judge fairly.

The oracle is what the engine's round trips and model runs are measured
against, so its minima are checked here on small rulesets whose answers can
be worked out by hand.
"""

from __future__ import annotations

import re

import pytest

from bench.baselines import load_program
from bench.oracle import Need, Oracle
from bench.targets import Target
from bench.workload import MODEL_NAME, ruleset_text
from tailor.compiler.features import FeatureKind, FeatureRef

RULES = """
ruleset oracle_test

content a = {"id": "a"}
content b = {"id": "b"}
content fallback = {"id": "fallback"}

model p_click = "models/p_click.onnx"

segment gold = user.tier == "gold"

default show fallback in hero
default show fallback in side

rule home_first
  when context.page == "home"
  then show a in hero
  priority 100

rule gold_readers
  when gold and views("Books", 24h) > 2
  then show b in hero
  priority 50

rule likely_clickers
  when views("Books", 24h) > 5 and p_click > 0.5
  then show a in side
  priority 20

rule gold_or_likely
  when gold or p_click > 0.9
  then show b in side
  priority 10

rule lapsed
  when since("purchase") > 30d
  then show a in side
  priority 5
"""

# The model reads one store feature, so running it costs a fetch too.
MODEL_INPUTS = {"p_click": [FeatureRef(FeatureKind.COUNT, 'views("Books", 7d)')]}


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle(load_program(RULES), MODEL_INPUTS)


def features(**values: object) -> dict[str, object]:
    names = {"tier": "user.tier", "books": 'views("Books", 24h)', "since": 'since("purchase")', "p": "p_click"}
    return {names[key]: value for key, value in values.items()}


def test_context_alone_can_settle_a_slot_but_not_the_other(oracle: Oracle) -> None:
    # hero: home_first wins on context alone. side: likely_clickers fails on its cheap test (books 0),
    # and gold_or_likely is true on the tier alone, so the model is never needed.
    need = oracle.need({"page": "home"}, features(tier="gold", books=0, p=0.1))
    assert oracle.winners({"page": "home"}, features(tier="gold", books=0, p=0.1)) == {"hero": "a", "side": "b"}
    assert need == Need(round_trips=1, models=0, features=2)  # views("Books", 24h) and user.tier


def test_a_model_is_needed_only_when_cheaper_tests_cannot_settle(oracle: Oracle) -> None:
    context = {"page": "cart"}
    # books 9: likely_clickers' cheap test passes, so only the model can say whether it fires.
    assert oracle.need(context, features(tier="gold", books=9, p=0.7)).models == 1
    # books 0: likely_clickers fails cheaply; a gold user wins gold_or_likely without the model.
    assert oracle.need(context, features(tier="gold", books=0, p=0.7)).models == 0
    # books 0, not gold: gold_or_likely can only be settled by the model.
    assert oracle.need(context, features(tier="silver", books=0, p=0.95)).models == 1


def test_unknown_needs_a_read_to_show_a_rule_does_not_fire(oracle: Oracle) -> None:
    context = {"page": "home"}
    values = features(tier="silver", books=0, p=0.1)  # no since("purchase"): unknown
    assert oracle.winners(context, values) == {"hero": "a", "side": "fallback"}
    need = oracle.need(context, values)
    # side falls through: gold_or_likely needs tier and the model (with its input), lapsed needs since.
    assert need.models == 1
    assert need.features == 4  # views 24h, user.tier, views 7d (the model's input), since


def test_a_request_context_settles_on_its_own() -> None:
    program = load_program(
        "ruleset only_context\ncontent a = {}\ncontent b = {}\n"
        'rule r1 when context.page == "home" then show a in hero priority 9\n'
        'rule r2 when user.tier == "gold" then show b in hero priority 1\n'
    )
    oracle = Oracle(program, {})
    assert oracle.need({"page": "home"}, {"user.tier": "gold"}) == Need(0, 0, 0)
    assert oracle.need({"page": "cart"}, {"user.tier": "gold"}) == Need(1, 0, 1)


def test_generated_rulesets_with_a_model_differ_only_by_the_model_tests() -> None:
    plain = ruleset_text(200)
    with_model = ruleset_text(200, model_share=0.3)
    assert f"model {MODEL_NAME} = " in with_model
    stripped = re.sub(rf" and {MODEL_NAME} > [0-9.]+", "", with_model)
    assert stripped.replace(f'model {MODEL_NAME} = "models/p_click.onnx"\n\n', "") == plain
    assert 30 <= with_model.count(f"{MODEL_NAME} >") <= 90


def test_targets_say_whether_and_by_how_much() -> None:
    missed = Target("ratio", 0.4, 0.35, "x")
    assert missed.met is False
    assert missed.shortfall == pytest.approx(0.05 / 0.35)
    assert missed.verdict == "MISSED by 14%"
    assert Target("at least", 40.0, 30.0, "x", lower_is_better=False).met is True
    assert Target("at least", 20.0, 30.0, "x", lower_is_better=False).verdict == "MISSED by 33%"
    assert Target("absent", None, 1.0, " s").verdict == "not measured"
    assert Target("time", 0.6271, 1.0, " s").shown() == "0.627 s"
