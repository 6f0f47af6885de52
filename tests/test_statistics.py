"""Rates and tests against values computed independently.

Intervals: Wilson 1927, Newcombe 1998 table I. Tests: R's ``prop.test(correct = FALSE)``
and ``p.adjust(method = "holm")``.
"""

import itertools

import pytest

from tailor.runtime.statistics import holm, two_proportion_test, wilson_interval


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


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b", "p_value"),
    [
        (45, 100, 30, 100, 0.02846),  # X-squared = 4.8
        (15, 50, 25, 50, 0.04123),  # X-squared = 4.1667
        (30, 100, 30, 100, 1.0),
        (120, 1000, 40, 800, 2.1534e-7),
    ],
)
def test_two_proportion_test_matches_r(a: int, n_a: int, b: int, n_b: int, p_value: float) -> None:
    assert two_proportion_test(a, n_a, b, n_b) == pytest.approx(p_value, rel=1e-3)
    assert two_proportion_test(b, n_b, a, n_a) == pytest.approx(p_value, rel=1e-3)  # two-sided


def test_two_proportion_test_without_variance_finds_nothing() -> None:
    assert two_proportion_test(0, 10, 0, 20) == 1.0
    assert two_proportion_test(10, 10, 20, 20) == 1.0
    with pytest.raises(ValueError):
        two_proportion_test(0, 0, 1, 10)


@pytest.mark.parametrize(
    ("p_values", "adjusted"),
    [
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5, 0.6], [1.0, 1.0]),  # capped at 1
        ([0.02], [0.02]),
        ([], []),
    ],
)
def test_holm_matches_r(p_values: list[float], adjusted: list[float]) -> None:
    assert holm(p_values) == pytest.approx(adjusted)


def test_holm_is_monotone_in_the_order_of_the_raw_values() -> None:
    raw = [0.001, 0.2, 0.011, 0.012, 0.04, 0.9]
    adjusted = holm(raw)
    ranked = sorted(range(len(raw)), key=raw.__getitem__)
    assert all(adjusted[i] <= adjusted[j] for i, j in itertools.pairwise(ranked))
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
