"""Rate intervals against values computed independently (Wilson 1927; Newcombe 1998, table I)."""

import pytest

from tailor.runtime.statistics import wilson_interval


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
