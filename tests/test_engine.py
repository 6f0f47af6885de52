"""The compiled engine through the public API: decisions, explain, the plan's stages."""

from __future__ import annotations

from pathlib import Path

import pytest

import tailor

SHOP = """
ruleset shop
content vip = {"id": "vip"}
content acc = {"id": "acc"}
content generic = {"id": "generic"}
content side = {"id": "side"}
model p_click = "p.onnx"
segment fan = views("Electronics", 24h) > 2
rule gold when user.tier == "gold" and context.page == "home" then show vip in hero priority 20
rule accessories when fan and p_click > 70% then show acc in hero priority 10
rule lapsed when since("purchase") > 30d then show generic in sidebar
default show generic in hero
"""


@pytest.fixture(scope="module")
def engine() -> tailor.Engine:
    return tailor.Engine(tailor.loads(SHOP, name="shop"))


def test_ruleset_metadata() -> None:
    ruleset = tailor.loads(SHOP, name="shop")
    assert ruleset.name == "shop"
    assert ruleset.slots == ("hero", "sidebar")
    assert [r.name for r in ruleset.rules] == ["gold", "accessories", "lapsed"]
    assert ruleset.version == tailor.loads(SHOP, name="shop").version
    assert ruleset.version != tailor.loads(SHOP + "\n# changed\n", name="shop").version


def test_priority_wins_and_payload(engine: tailor.Engine) -> None:
    d = engine.decide(
        context={"page": "home"}, features={"user.tier": "gold", 'views("Electronics", 24h)': 5, "p_click": 0.9}
    )
    assert (d.slots["hero"].content, d.slots["hero"].rule, d.slots["hero"].payload) == ("vip", "gold", {"id": "vip"})
    assert d.models_run == ()  # the better rule fired: the model was never needed


def test_model_runs_only_when_needed(engine: tailor.Engine) -> None:
    d = engine.decide(context={"page": "cart"}, features={'views("Electronics", 24h)': 5, "p_click": 0.9})
    assert d.slots["hero"].rule == "accessories"
    assert d.models_run == ("p_click",)
    cold = engine.decide(context={"page": "cart"}, features={"p_click": 0.9})
    assert cold.slots["hero"].content == "generic" and cold.slots["hero"].rule is None
    assert cold.models_run == ()  # the fan segment failed in the tables


def test_unknown_and_defaults(engine: tailor.Engine) -> None:
    d = engine.decide(context={}, features={})
    assert d.slots["hero"] == tailor.SlotDecision("generic", {"id": "generic"}, None)
    assert d.slots["sidebar"] == tailor.SlotDecision(None, None, None)  # since() unknown, no default
    lapsed = engine.decide(features={'since("purchase")': 40 * 86400})
    assert lapsed.slots["sidebar"].rule == "lapsed"


def test_wrong_types_are_unknown(engine: tailor.Engine) -> None:
    d = engine.decide(context={"page": 5}, features={"user.tier": "gold"})
    assert d.slots["hero"].rule is None
    d = engine.decide(context={"page": "home"}, features={"user.tier": True})
    assert d.slots["hero"].rule is None


def test_requested_slots(engine: tailor.Engine) -> None:
    d = engine.decide(slots=["sidebar", "nowhere"])
    assert list(d.slots) == ["sidebar", "nowhere"]
    assert d.slots["nowhere"] == tailor.SlotDecision(None, None, None)


def test_stage_one_fetches_only_what_survivors_need(engine: tailor.Engine) -> None:
    home = engine.decide(context={"page": "home"})
    assert "user.tier" in home.fetched
    cart = engine.decide(context={"page": "cart"})
    assert "user.tier" not in cart.fetched  # only the home-page rule reads it


def test_explain_says_why(engine: tailor.Engine) -> None:
    explanation = engine.explain(context={"page": "cart"}, features={'views("Electronics", 24h)': 5, "p_click": 0.62})
    hero = explanation.slots["hero"]
    assert explanation.decision == engine.decide(
        context={"page": "cart"}, features={'views("Electronics", 24h)': 5, "p_click": 0.62}
    )
    assert hero.served == "default"
    reasons = {c.rule: c.reason for c in hero.candidates}
    assert reasons["accessories"] == "p_click = 0.62, needed > 0.7"
    assert reasons["gold"] == 'context.page = "cart", needed == "home"'
    assert "p_click = 0.62" in explanation.render()
    assert explanation.to_dict()["models"] == {"p_click": 0.62}


def test_load_directory_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.rules").write_text('content c = {"x": 1}\n')
    (tmp_path / "b.rules").write_text('when context.page == "home" then show c in hero\n')
    ruleset = tailor.load(tmp_path)
    assert ruleset.name == tmp_path.name
    assert tailor.Engine(ruleset).decide(context={"page": "home"}).slots["hero"].rule == "b:1"
    (tmp_path / "c.rules").write_text("when nope then show c\n")
    with pytest.raises(tailor.RulesError) as failure:
        tailor.load(tmp_path)
    assert [d.message for d in failure.value.diagnostics] == ["unknown name 'nope'"]


def test_generated_functions_stay_small_for_large_rulesets() -> None:
    rules = "\n".join(
        f'rule r{i} when context.page == "p{i % 50}" and views(1h) > {i % 7} then show c' for i in range(3000)
    )
    ruleset = tailor.loads("content c = {}\n" + rules, name="big")
    engine = tailor.Engine(ruleset)
    d = engine.decide(context={"page": "p3"}, features={"views(1h)": 9})
    assert d.slots["main"].rule == "r3"
    assert max(len(line) for line in ruleset.compiled.source.splitlines()) < 20_000
