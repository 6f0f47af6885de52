"""Models inside decisions: the shipped model end to end, the cache, failures, skipping."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import pytest

import tailor
from tailor.runtime.inference import ModelRunner

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
CONTEXT = {"page": "home", "device": "mobile"}
FAN = {'views("Electronics", 24h)': 5, 'views("Electronics", 7d)': 9, "user.tier": "bronze"}


@pytest.fixture(scope="module")
def retail() -> tailor.Ruleset:
    return tailor.load(RETAIL)


def test_the_shipped_model_loads_with_its_inputs(retail: tailor.Ruleset) -> None:
    model = retail.models["p_click"]
    inputs = retail.plan.model_inputs["p_click"]
    assert [i.text for i in inputs] == list(model.features)
    assert 'views("Electronics", 7d)' in retail.plan.features  # an input only the model reads


def test_stage_one_fetches_the_model_inputs_only_when_the_model_may_run(retail: tailor.Ruleset) -> None:
    engine = tailor.Engine(retail)
    fan = engine.decide(user_id="u2", context=CONTEXT, features=FAN)
    assert 'clicks("acc-42", 30d)' in fan.fetched  # read by p_click alone
    cart = engine.decide(user_id="u2", context={"page": "cart"}, slots=["cart_upsell"], features={})
    assert 'clicks("acc-42", 30d)' not in cart.fetched


def test_a_decision_runs_the_model_and_explain_shows_score_and_inputs(retail: tailor.Ruleset) -> None:
    engine = tailor.Engine(retail)
    decision = engine.decide(user_id="u2", context=CONTEXT, features=FAN)
    assert decision.models_run == ("p_click",)
    explanation = engine.explain(user_id="u2", context=CONTEXT, features=FAN)
    score = explanation.values["p_click"]
    assert 0.0 <= score <= 1.0
    inputs = explanation.model_inputs["p_click"]
    assert inputs['views("Electronics", 24h)'] == 5.0
    assert inputs['context.device == "mobile"'] == 1.0
    assert math.isnan(inputs['since("purchase", "Electronics")'])  # unknown is NaN
    expected = "electronics_accessories" if score > 0.7 else None
    assert decision.slots["hero"].rule == expected


def test_the_model_is_skipped_when_cheaper_rules_settle_the_slot(retail: tailor.Ruleset) -> None:
    engine = tailor.Engine(retail)
    gold = engine.decide(user_id="u2", context=CONTEXT, features={**FAN, "user.tier": "gold"})
    assert gold.slots["hero"].rule == "vip_early_access"
    assert gold.models_run == ()
    not_a_fan = engine.decide(user_id="u2", context=CONTEXT, features={"user.tier": "bronze"})
    assert not_a_fan.models_run == ()


def test_a_supplied_score_overrides_the_model(retail: tailor.Ruleset) -> None:
    engine = tailor.Engine(retail)
    forced = engine.decide(user_id="u2", context=CONTEXT, features={**FAN, "p_click": 0.95})
    assert forced.slots["hero"].rule == "electronics_accessories"


def test_predictions_are_cached_per_user_and_inputs(retail: tailor.Ruleset) -> None:
    runner = ModelRunner(retail, cache_ttl=60)
    engine = tailor.Engine(retail)
    engine._models = runner
    for _ in range(3):
        engine.decide(user_id="u2", context=CONTEXT, features=FAN)
    assert (runner.runs, runner.cache_hits) == (1, 2)
    engine.decide(user_id="u3", context=CONTEXT, features=FAN)
    engine.decide(user_id="u2", context=CONTEXT, features={**FAN, 'views("Electronics", 24h)': 6})
    assert runner.runs == 3
    uncached = ModelRunner(retail, cache_ttl=0)
    engine._models = uncached
    engine.decide(user_id="u2", context=CONTEXT, features=FAN)
    engine.decide(user_id="u2", context=CONTEXT, features=FAN)
    assert uncached.runs == 2


def test_a_failing_model_yields_unknown_and_a_degraded_decision(retail: tailor.Ruleset) -> None:
    class Broken:
        version = "broken"

        def predict_one(self, row: list[float]) -> float:
            raise RuntimeError("inference failed")

    broken = dataclasses.replace(retail, models={"p_click": Broken()})
    decision = tailor.Engine(broken).decide(user_id="u2", context=CONTEXT, features=FAN)
    assert decision.degraded
    assert decision.slots["hero"].rule is None  # p_click unknown: the rule does not fire
    assert decision.slots["hero"].content == "hero_generic"


def test_a_missing_or_broken_model_file_is_reported_on_the_model_line(tmp_path: Path) -> None:
    copy = tmp_path / "retail"
    shutil.copytree(RETAIL, copy)
    (copy / "models" / "p_click.onnx").write_bytes(b"not a model")
    with pytest.raises(tailor.RulesError) as failure:
        tailor.load(copy)
    (problem,) = failure.value.diagnostics
    assert problem.file.endswith("retail.rules") and problem.message.startswith("model p_click: not a valid ONNX model")
    (copy / "models" / "p_click.onnx").unlink()
    with pytest.raises(tailor.RulesError) as missing:
        tailor.load(copy)
    assert "does not exist" in missing.value.diagnostics[0].message
