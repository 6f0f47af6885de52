"""Rate and mean intervals, the two-proportion test and Holm's correction, against independent values."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from tailor.runtime.statistics import ProportionTest, holm, mean_interval, two_proportion_z_test, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe's example 1
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_published_values(successes: int, trials: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, trials)
    assert interval is not None
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)


def test_no_trials_no_interval() -> None:
    assert wilson_interval(0, 0) is None


def test_interval_holds_the_rate_and_stays_in_bounds() -> None:
    for successes in range(0, 11):
        interval = wilson_interval(successes, 10)
        assert interval is not None
        assert 0.0 <= interval.low <= successes / 10 <= interval.high <= 1.0


# --- the t interval of a mean, from its sums ---


@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=60).filter(lambda values: len(set(values)) > 1))
def test_mean_interval_is_scipys_t_interval_of_the_values(values: list[int]) -> None:
    interval = mean_interval(float(sum(values)), float(sum(v * v for v in values)), len(values))
    assert interval is not None
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert interval.low == pytest.approx(low, rel=1e-9, abs=1e-9)
    assert interval.high == pytest.approx(high, rel=1e-9, abs=1e-9)


def test_no_interval_of_fewer_than_two_values() -> None:
    assert mean_interval(3.0, 9.0, 1) is None


# --- two rates: the pooled z-test is the 2x2 chi-square test without continuity correction ---


@pytest.mark.parametrize(("a", "n_a", "b", "n_b"), [(45, 500, 30, 500), (120, 4000, 95, 4100), (3, 40, 9, 38)])
def test_two_proportion_z_test_agrees_with_the_chi_square_test(a: int, n_a: int, b: int, n_b: int) -> None:
    result = two_proportion_z_test(a, n_a, b, n_b)
    assert result is not None
    chi_square, p_value, _, _ = stats.chi2_contingency([[a, n_a - a], [b, n_b - b]], correction=False)
    assert result.z**2 == pytest.approx(chi_square)
    assert result.p_value == pytest.approx(p_value)
    assert (result.rate_a, result.rate_b) == (a / n_a, b / n_b)
    assert (result.z > 0) == (a / n_a > b / n_b)


def test_two_proportion_z_test_edges() -> None:
    assert two_proportion_z_test(0, 0, 3, 10) is None
    assert two_proportion_z_test(0, 10, 0, 20) == ProportionTest(0.0, 0.0, 0.0, 1.0)


# --- Holm's step-down correction (Holm 1979; values as R's p.adjust(method = "holm")) ---


def test_holm_matches_published_adjustments() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert holm([0.5, 0.9]) == (1.0, 1.0)
    assert holm([]) == ()


@given(st.lists(st.floats(0, 1), max_size=30))
def test_holm_never_lowers_a_p_value_and_keeps_their_order(p_values: list[float]) -> None:
    adjusted = holm(p_values)
    assert all(raw <= adj <= 1 for raw, adj in zip(p_values, adjusted, strict=True))
    for i, j in itertools.combinations(range(len(p_values)), 2):
        if p_values[i] < p_values[j]:
            assert adjusted[i] <= adjusted[j]
    assert all(adj <= min(1.0, raw * len(p_values)) for raw, adj in zip(p_values, adjusted, strict=True))
