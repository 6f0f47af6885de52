"""Experiment statistics against GrowthBook's own test cases, and the properties a report relies on."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from growthbook_cases import load
from hypothesis import given
from hypothesis import strategies as st

from tailor.runtime.experiment_results import METRICS, ArmCounts, PhaseResult, phase_result
from tailor.runtime.experiment_statistics import (
    Comparison,
    GaussianPrior,
    MetricSample,
    bayesian_test,
    sequential_test,
    srm_check,
    srm_p_value,
    welch_test,
)
from tailor.runtime.http.schemas import model_of

CASES = load("stats_cases.json")


def sample(data: dict[str, Any]) -> MetricSample:
    if data.get("proportion"):
        return MetricSample.of_proportion(data["sum"], data["n"])
    return MetricSample(data["n"], data["sum"], data["sum_squares"])


def rounded(value: float) -> float:
    """``np.round(x, 5)``, which both sides of gbstats' tests go through ("inf" is infinity)."""
    return math.inf if value == "inf" else round(float(value), 5)


def assert_matches(result: Comparison, expected: dict[str, Any]) -> None:
    assert result.error is None
    assert rounded(result.expected) == rounded(expected["expected"])
    assert [rounded(result.low), rounded(result.high)] == [rounded(bound) for bound in expected["ci"]]
    assert rounded(result.stddev) == rounded(expected["stddev"])


def test_every_section_is_there() -> None:
    assert {section: len(CASES[section]) for section in ("srm", "ttest", "sequential", "bayesian")} == {
        "srm": 10,
        "ttest": 4,
        "sequential": 3,
        "bayesian": 3,
    }


@pytest.mark.parametrize("case", CASES["srm"], ids=[case["name"] for case in CASES["srm"]])
def test_srm(case: dict[str, Any]) -> None:
    assert abs(srm_p_value(case["users"], case["weights"]) - case["expected_p"]) <= 5e-10  # toFixed(9)


@pytest.mark.parametrize("case", CASES["ttest"], ids=[case["name"] for case in CASES["ttest"]])
def test_welch(case: dict[str, Any]) -> None:
    alternative = "greater" if case["test"] == "one_sided_greater" else "two-sided"
    assert case["test"] in ("two_sided", "one_sided_greater")
    result = welch_test(
        sample(case["a"]),
        sample(case["b"]),
        relative=case["difference_type"] == "relative",
        alternative=alternative,
    )
    assert_matches(result, case["expected"])
    assert result.p_value is not None
    assert rounded(result.p_value) == rounded(case["expected"]["pValue"])


@pytest.mark.parametrize("case", CASES["sequential"], ids=[case["name"] for case in CASES["sequential"]])
def test_sequential(case: dict[str, Any]) -> None:
    alternative = "greater" if case["test"] == "sequential_one_sided_greater" else "two-sided"
    result = sequential_test(
        sample(case["a"]),
        sample(case["b"]),
        relative=case["difference_type"] == "relative",
        n_star=case["tuning"],
        alternative=alternative,
    )
    assert_matches(result, case["expected"])
    assert result.p_value is not None
    assert rounded(result.p_value) == rounded(case["expected"]["pValue"])


@pytest.mark.parametrize("case", CASES["bayesian"], ids=[case["name"] for case in CASES["bayesian"]])
def test_bayesian(case: dict[str, Any]) -> None:
    prior = case["prior"]
    result = bayesian_test(
        sample(case["a"]),
        sample(case["b"]),
        prior=GaussianPrior(prior["mean"], prior["variance"]) if prior["proper"] else None,
    )
    assert_matches(result, case["expected"])
    assert result.chance_to_win is not None and result.risk is not None
    assert rounded(result.chance_to_win) == rounded(case["expected"]["chanceToWin"])
    assert [rounded(risk) for risk in result.risk] == [rounded(risk) for risk in case["expected"]["risk"]]


# --- what cannot be concluded says why ---


@pytest.mark.parametrize("test", [welch_test, sequential_test, bayesian_test])
@pytest.mark.parametrize(
    ("control", "treatment", "reason"),
    [
        (MetricSample.of_proportion(0, 0), MetricSample.of_proportion(5, 50), "no units"),
        (MetricSample.of_proportion(0, 50), MetricSample.of_proportion(5, 50), "mean is zero"),
        (MetricSample(10, 30.0, 90.0), MetricSample(10, 35.0, 130.0), "do not vary"),
        (MetricSample.of_proportion(60, 50), MetricSample.of_proportion(5, 50), "more successes"),
    ],
)
def test_tests_that_cannot_run_say_why(test: Any, control: MetricSample, treatment: MetricSample, reason: str) -> None:
    result = test(control, treatment)
    assert result.error is not None and reason in result.error
    assert (result.expected, result.low, result.high) == (0.0, 0.0, 0.0)
    if result.method == "bayesian":
        assert (result.chance_to_win, result.p_value) == (0.5, None)
    else:
        assert (result.p_value, result.chance_to_win) == (1.0, None)


# --- properties ---

proportions = st.integers(20, 5000).flatmap(
    lambda n: st.builds(MetricSample.of_proportion, st.integers(1, n - 1), st.just(n))
)


@given(proportions, proportions)
def test_the_always_valid_interval_is_wider_than_the_fixed_one(a: MetricSample, b: MetricSample) -> None:
    fixed, always = welch_test(a, b), sequential_test(a, b)
    assert always.low <= fixed.low <= fixed.expected <= fixed.high <= always.high
    assert fixed.p_value is not None and always.p_value is not None
    # the p-value is the interval's dual: significant always-valid implies significant fixed-horizon
    assert (always.p_value < 0.05) == (always.low > 0 or always.high < 0)
    assert always.p_value >= 0.05 or fixed.p_value < 0.05


@given(proportions, proportions)
def test_flat_prior_posterior_is_the_estimate(a: MetricSample, b: MetricSample) -> None:
    welch, bayes = welch_test(a, b), bayesian_test(a, b)
    assert bayes.expected == pytest.approx(welch.expected)
    assert bayes.stddev == pytest.approx(welch.stddev)
    assert bayes.chance_to_win is not None and bayes.risk is not None
    assert (bayes.chance_to_win > 0.5) == (bayes.expected > 0) or bayes.expected == 0
    # expected loss: E[max(X, 0)] - E[max(-X, 0)] = E[X]
    assert bayes.risk[0] >= 0 and bayes.risk[1] >= 0
    assert bayes.risk[0] - bayes.risk[1] == pytest.approx(bayes.expected, abs=1e-12)


@pytest.mark.parametrize("converted", [1000, 1080, 1120, 1150, 1300])
def test_a_one_sided_sequential_p_value_is_the_dual_of_its_interval(converted: int) -> None:
    """Found by bisection over alpha: below 0.05 exactly when the 95% lower bound is above 0."""
    control, treatment = MetricSample.of_proportion(1000, 5000), MetricSample.of_proportion(converted, 5000)
    result = sequential_test(control, treatment, alternative="greater")
    assert result.p_value is not None and 1e-5 <= result.p_value <= 0.4999
    assert (result.p_value < 0.05) == (result.low > 0)
    assert result.high == math.inf


def test_a_one_sided_sequential_p_value_between_the_clamps_is_searched_for() -> None:
    result = sequential_test(
        MetricSample.of_proportion(1000, 5000), MetricSample.of_proportion(1100, 5000), alternative="greater"
    )
    assert result.p_value == pytest.approx(0.1586, abs=1e-4)


# --- SRM: flagged at p < 0.001 once every arm expects 8 users ---


def test_srm_flags_a_clear_mismatch() -> None:
    check = srm_check([1000, 1200], [0.5, 0.5])
    assert check.flagged and check.p_value < 0.001
    assert check.expected == (1100.0, 1100.0)


def test_srm_does_not_flag_too_few_users_but_does_flag_an_arm_that_gets_none() -> None:
    few = srm_check([0, 12], [0.5, 0.5])  # p = 0.0005, but 6 users expected per arm
    assert few.p_value < 0.001 and not few.flagged
    starved = srm_check([0, 20], [0.5, 0.5])  # 10 expected per arm, none arrived in one
    assert starved.flagged


def test_srm_leaves_zero_weight_arms_out() -> None:
    check = srm_check([1000, 1005, 400], [0.5, 0.5, 0])
    assert not check.flagged and check.expected == (1002.5, 1002.5, 0.0)


# --- a phase's report ---

ARMS = (
    ArmCounts("control", 4000, 12000, 600, 200, 5000.0, 40000.0),
    ArmCounts("bold", 4100, 12400, 700, 260, 5600.0, 47000.0),
    ArmCounts("calm", 3900, 11600, 560, 190, 4800.0, 39000.0),
)


def test_phase_result_compares_every_later_arm_with_the_first_on_every_metric() -> None:
    result = phase_result(ARMS, [1 / 3, 1 / 3, 1 / 3])
    assert [arm.arm for arm in result.arms] == ["control", "bold", "calm"]
    pairs = [(c.arm, c.control, c.metric) for c in result.comparisons]
    assert pairs == [(arm, "control", metric) for arm in ("bold", "calm") for metric in METRICS]
    bold_ctr = result.comparisons[0]
    lift = (700 / 12400 - 600 / 12000) / (600 / 12000)
    for comparison in (bold_ctr.welch, bold_ctr.sequential, bold_ctr.bayesian):
        assert comparison.expected == pytest.approx(lift)
        assert comparison.low < lift < comparison.high
    control = result.arms[0]
    assert control.ctr.value == 0.05 and control.conversion_rate.value == 0.05
    assert control.value_per_user.value == 1.25
    assert control.ctr.low is not None and control.ctr.high is not None and control.ctr.low < 0.05 < control.ctr.high
    assert not result.srm.flagged


def test_phase_result_round_trips_through_json_and_fits_its_derived_schema() -> None:
    result = phase_result(ARMS, [0.4, 0.3, 0.3])
    data = orjson.loads(orjson.dumps(result.to_dict()))
    assert PhaseResult.from_dict(data) == result
    model_of(PhaseResult).model_validate(data)


def test_an_arm_without_traffic_has_no_rates_and_no_comparison() -> None:
    empty = ArmCounts("new", 0, 0, 0, 0, 0.0, 0.0)
    result = phase_result((ARMS[0], empty), [0.5, 0.5])
    assert result.arms[1].ctr.value is None and result.arms[1].value_per_user.value is None
    assert all(c.welch.error == "an arm has no units" for c in result.comparisons)
    assert result.srm.flagged  # 4,000 users against none


def test_weights_must_match_the_arms() -> None:
    with pytest.raises(ValueError, match="3 arms but 2 weights"):
        phase_result(ARMS, [0.5, 0.5])
