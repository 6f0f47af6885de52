"""A model's generated row function against ``input_vector`` over ``Values``: the same row, always."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tailor
from tailor.compiler.model_inputs import input_vector
from tailor.compiler.model_rows import row_function, row_source
from tailor.compiler.plan import value_type
from tailor.compiler.values import Values
from tailor.runtime.feature_rows import parse_features

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"

# Inputs of every shape: bare counters and attributes, arithmetic, and true/false conditions.
TEXTS = [
    'views("Books", 7d)',
    "user.age",
    'clicks("Books", 7d) / views("Books", 7d)',
    "-user.age + 3",
    'user.tier in ["gold", "platinum"]',
    'context.device == "mobile"',
    'user.age >= 18 and user.tier != "bronze"',
    'views("Books", 7d) > 2 or user.age is missing',
    "user.vip",
]
TYPES = {"user.age": "number", "user.tier": "string", "context.device": "string", "user.vip": "bool"}

ODD: list[Any] = [None, 0, 1, -1, 2.5, -0.0, math.nan, math.inf, True, False, "gold", "mobile", "3", [1], 2**60]
KEYS = ['views("Books", 7d)', 'clicks("Books", 7d)', "user.age", "user.tier", "user.vip"]


def _same(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if math.isnan(e):
            assert g is math.nan, f"{got} != {expected}"  # the one NaN object: rows compare equal as keys
        else:
            assert g == e and type(g) is float, f"{got} != {expected}"


def _expected(inputs: Any, context: dict, fetched: dict, refs: dict, types: dict) -> list[float] | type:
    try:
        return input_vector(inputs, Values(context, fetched, refs, types))
    except (TypeError, ValueError) as exc:
        return type(exc)


def _check(inputs: Any, context: dict, fetched: dict, types: dict) -> None:
    row = row_function("m", inputs, types)
    assert row is not None
    refs = {ref.text: ref for i in inputs for ref in i.refs}
    expected = _expected(inputs, context, fetched, refs, types)
    if isinstance(expected, type):
        with pytest.raises(expected):
            row(context, fetched)
    else:
        _same(row(context, fetched), expected)


@settings(max_examples=150, deadline=None)
@given(
    fetched=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(ODD)),
    device=st.sampled_from(ODD),
)
def test_rows_agree_with_input_vector(fetched: dict, device: Any) -> None:
    _check(parse_features(TEXTS), {"device": device}, fetched, TYPES)


def test_the_retail_model_row_agrees() -> None:
    ruleset = tailor.load(RETAIL)
    plan = ruleset.plan
    types = {text: value_type(ref, plan.attribute_kinds) for text, ref in plan.features.items()}
    inputs = plan.model_inputs["p_click"]
    fan = {'views("Electronics", 24h)': 5, 'views("Electronics", 7d)': 9, "user.tier": "gold", "views(24h)": 2.5}
    for context, fetched in [({}, {}), ({"device": "mobile"}, fan), ({"device": 3}, {"user.tier": 1})]:
        _check(inputs, context, fetched, types)
    assert "def row(context, fetched):" in (row_source("p_click", inputs, types) or "")


def test_an_input_reading_an_experiment_has_no_row_function() -> None:
    text = """\
ruleset shop
content a = {"id": "a"}
experiment banner
  arms control 50%, treatment 50%
rule r when banner == "treatment" then show a in hero
"""
    plan = tailor.loads(text, name="shop").plan
    experiment = next(ref for ref in plan.features.values() if ref.kind.name == "EXPERIMENT")
    inputs = parse_features(['views("Books", 7d)'])
    shaped = [inputs[0].__class__(inputs[0].text, None, inputs[0].term, (experiment,))]
    assert row_function("m", shaped, {}) is None
