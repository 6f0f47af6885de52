"""The engine against the reference interpreter, on random rulesets and requests.

For every generated ruleset and request the engine must serve, in every
requested slot, the content, payload and rule the reference chooses;
``explain()`` must carry the very decision ``decide()`` returns; and when the
reference shows that no rule mentioning the model could have changed any
requested slot, the engine must not have run the model.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import reference
import rulegen
from hypothesis import HealthCheck, given, settings
from reference import SlotOutcome

import tailor

RULESET_NAME = "shop"
HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _arguments(request: rulegen.Request) -> dict[str, Any]:
    """Fresh copies each time, so an engine that mutates its inputs cannot hide it."""
    return {
        "user_id": "u1",
        "context": copy.deepcopy(request.context),
        "slots": None if request.slots is None else list(request.slots),
        "features": copy.deepcopy(request.features),
        "at": None,
    }


def _describe(case_text: str, request: rulegen.Request, slot: str, expected: SlotOutcome, got: Any) -> str:
    return (
        f"slot {slot!r}: expected {expected.content!r} by rule {expected.rule!r}, "
        f"the engine served {getattr(got, 'content', None)!r} by rule {getattr(got, 'rule', None)!r}\n"
        f"--- ruleset ---\n{case_text}--- request ---\n{request}"
    )


def check_agreement(case: rulegen.Case) -> None:
    program = case.ruleset.program
    request = case.request
    engine = tailor.Engine(tailor.loads(case.ruleset.text, name=RULESET_NAME))

    decision = engine.decide(**_arguments(request))
    expected = reference.decide(program, request.context, request.features, request.slots)

    assert set(decision.slots) == set(expected), f"slots served: {sorted(decision.slots)}, expected {sorted(expected)}"
    for slot, outcome in expected.items():
        got = decision.slots[slot]
        message = _describe(case.ruleset.text, request, slot, outcome, got)
        assert got.content == outcome.content, message
        assert got.payload == outcome.payload, message
        assert got.rule == outcome.rule, message  # an unnamed rule is "shop:<line>"

    explained = engine.explain(**_arguments(request))
    assert explained.decision == decision

    winners = {slot: reference.winner(program, slot, request.context, request.features) for slot in expected}
    if reference.model_is_skippable(program, rulegen.MODEL, winners):
        assert rulegen.MODEL not in decision.models_run, (
            f"the model ran although a rule that does not need it wins every requested slot\n"
            f"--- ruleset ---\n{case.ruleset.text}--- request ---\n{request}"
        )


@settings(max_examples=200, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(case=rulegen.cases())
def test_engine_agrees_with_the_reference(case: rulegen.Case) -> None:
    check_agreement(case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(case=rulegen.cases())
def test_engine_agrees_with_the_reference_at_length(case: rulegen.Case) -> None:
    check_agreement(case)


# --- fixed cases: the first things to look at when the properties fail -----------------------

FIXED_RULESET = """\
ruleset shop
content accessories = {"kind": "banner", "id": "acc-42"}
content vip = {"kind": "banner", "id": "vip-1"}
content generic = {"kind": "banner", "id": "gen-1"}
content upgrade = {"kind": "banner", "id": "upgrade"}
model p_click = "p.onnx"
segment electronics_fan = views("Electronics", 24h) > 2
rule electronics_accessories
  when electronics_fan and p_click >= 70%
  then show accessories in hero
  priority 10
rule vip_banner when user.tier == "gold" then show vip in hero priority 20
rule gold_tie when user.tier in ["gold"] then show generic in hero priority 20
rule unscored when p_click is missing then show generic in sidebar priority 5
rule recent_buyer when since("purchase") < 1h then show vip in sidebar priority 1
rule upgrade_offer when user.tier != "gold" then show upgrade in sidebar
rule lapsed when since("purchase") > 30d then show upgrade in cart priority -1
rule low_ratio when clicks(7d) / views(7d) < 10% then show vip in cart priority -1
rule one_view when views(7d) == 1 then show vip in footer
rule no_clicks when clicks(1h) == 0 then show upgrade in footer priority -1
default show generic in hero
"""

FIXED_SLOTS = ("hero", "sidebar", "cart", "footer")

FIXED_REQUESTS: list[tuple[dict[str, Any], dict[str, Any], list[str] | None]] = [
    ({}, {}, None),
    ({}, {"user.tier": "gold", "p_click": 0.9, 'views("Electronics", 24h)': 5}, None),
    # exactly 70%: 70 / 100, not 70 * 0.01
    ({}, {"user.tier": "silver", "p_click": 0.7, 'views("Electronics", 24h)': 3}, ["hero", "sidebar"]),
    ({}, {"user.tier": "silver", "p_click": 0.69, 'views("Electronics", 24h)': 3}, ["hero", "nowhere"]),
    ({}, {"p_click": math.nan, 'views("Electronics", 24h)': 3}, ["hero", "sidebar"]),
    ({}, {'since("purchase")': 30 * 86400, "clicks(7d)": 1, "views(7d)": 20}, ["cart"]),
    ({}, {'since("purchase")': 30 * 86400 + 1, "clicks(7d)": 1}, ["cart"]),  # 1 / 0 is unknown
    ({}, {"views(7d)": True, "clicks(1h)": None}, ["footer"]),  # a bool is not a count; None is not 0
    ({}, {"views(7d)": 1.0, "clicks(1h)": -0.0}, ["footer", "cart"]),
    ({}, {"user.tier": 1, "p_click": "0.9", 'views("Electronics", 24h)': True}, None),
]


@pytest.mark.parametrize(("context", "features", "slots"), FIXED_REQUESTS)
def test_engine_agrees_on_fixed_cases(
    context: dict[str, Any], features: dict[str, Any], slots: list[str] | None
) -> None:
    program = reference.load(FIXED_RULESET, RULESET_NAME)
    generated = rulegen.GeneratedRuleset(
        FIXED_RULESET, program, ("hero", "sidebar", "cart"), (), (), (), frozenset(), {}
    )
    check_agreement(rulegen.Case(generated, rulegen.Request(context, features, slots)))


def test_the_model_is_skipped_when_a_better_rule_wins() -> None:
    engine = tailor.Engine(tailor.loads(FIXED_RULESET, name=RULESET_NAME))
    features = {"user.tier": "gold", "p_click": 0.9, 'views("Electronics", 24h)': 5}
    decision = engine.decide(user_id="u1", context={}, slots=["hero"], features=features, at=None)
    assert decision.slots["hero"].rule == "vip_banner"
    assert "p_click" not in decision.models_run
    # without the gold tier the model decides the slot, and runs
    features["user.tier"] = "silver"
    decision = engine.decide(user_id="u1", context={}, slots=["hero"], features=features, at=None)
    assert decision.slots["hero"].rule == "electronics_accessories"
    assert "p_click" in decision.models_run
