"""Stage 1 in C against the generated stage 1: the same candidates for every ruleset and request.

The helper (compiler/_stage1.c) is built by the package's install; the engine
uses the generated code when it is missing or ``TAILOR_NO_NATIVE=1``. Each
request is run through both, and the decisions of the two engines compared.
"""

from __future__ import annotations

import math
import types
from typing import Any

import pytest
import rulegen
from hypothesis import HealthCheck, given, settings
from test_engine_agreement import RULESET_NAME, check_agreement

import tailor
from tailor.compiler import stage1_native
from tailor.compiler.decide import Decider

HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _both(text: str) -> tuple[Decider, Any, Any]:
    """A ruleset's decider, with its generated stage 1 and the helper's."""
    ruleset = tailor.loads(text, name=RULESET_NAME)
    generated = ruleset.compiled.stage1
    native = stage1_native.native_stage1(ruleset.plan, generated)
    assert native is not generated, "the helper is not in use: is it built (pip install -e .)?"
    return Decider(ruleset), generated, native


def _agree(text: str, context: dict[str, Any], features: dict[str, Any]) -> None:
    decider, generated, native = _both(text)
    alive, _ = decider.begin(context)
    for narrowed in (alive, decider.ruleset.plan.all_bits, 0):
        assert native(narrowed, features) == generated(narrowed, features), f"features {features!r}"


def test_the_helper_is_built() -> None:
    assert stage1_native.available(), "compiler/_stage1.c was not built: the engine runs the generated stage 1"


@settings(max_examples=80, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(case=rulegen.cases())
def test_the_helper_agrees_with_the_generated_code(case: rulegen.Case) -> None:
    _agree(case.ruleset.text, case.request.context, case.request.features)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(case=rulegen.cases())
def test_the_helper_agrees_with_the_generated_code_at_length(case: rulegen.Case) -> None:
    _agree(case.ruleset.text, case.request.context, case.request.features)


NUMBERS = """\
ruleset shop
content a = {"id": "a"}
content b = {"id": "b"}
rule low when views(7d) < 2.5 then show a in hero priority 3
rule three when views(7d) == 3 then show b in hero priority 2
rule big when views(7d) > 9007199254740993 then show a in side priority 2
rule tier when user.tier in ["gold", "silver"] and user.vip == true then show b in side priority 1
rule ratio when user.score >= -1.5 then show a in foot
"""

ODD_VALUES: list[Any] = [
    0, 1, 2, 3, 4, 2.5, 3.0, -0.0, -1, -2, math.nan, math.inf, -math.inf, True, False, None, "3", [1],
    2**53, 2**53 + 1, 9007199254740993, 9007199254740994, 2**63, 2**64 + 7, -(2**70), 1e300, 9007199254740993.0,
]  # fmt: skip


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_the_helper_agrees_on_odd_values(value: Any) -> None:
    features = {"views(7d)": value, "user.score": value, "user.tier": value, "user.vip": value}
    _agree(NUMBERS, {}, features)
    _agree(NUMBERS, {}, {"user.tier": "gold", "user.vip": True, "views(7d)": value})


def test_a_fetch_that_is_not_a_dict_runs_the_generated_code() -> None:
    decider, generated, native = _both(NUMBERS)
    features = types.MappingProxyType({"views(7d)": 3, "user.tier": "gold", "user.vip": True})
    alive, _ = decider.begin({})
    assert native(alive, features) == generated(alive, features)


def test_switched_off_the_engine_runs_the_generated_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stage1_native.NO_NATIVE, "1")
    ruleset = tailor.loads(NUMBERS, name=RULESET_NAME)
    assert not stage1_native.available()
    assert stage1_native.native_stage1(ruleset.plan, ruleset.compiled.stage1) is ruleset.compiled.stage1


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(case=rulegen.cases())
def test_the_engine_without_the_helper_agrees_with_the_reference(case: rulegen.Case) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(stage1_native.NO_NATIVE, "1")
        check_agreement(case)
