"""The statistics tailor reports: intervals on rates, and the tests behind its findings.

Pure functions of counts, so the KPI endpoint, the rule-health report and the
experiment results all judge a rate the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from scipy.stats import norm

CONFIDENCE = 0.95  # every interval tailor reports, unless a caller asks otherwise


class Interval(NamedTuple):
    low: float
    high: float


def z_score(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile: 1.96 for 95%."""
    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval of ``successes / trials``; None with no trials.

    Unlike the normal approximation it stays inside [0, 1] and is honest at
    the small counts a new rule or a rare conversion has.
    """
    if trials <= 0:
        return None
    z = z_score(confidence)
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends, not 1e-17 off
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return Interval(low, high)


def two_proportion_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """The two-sided p-value of the pooled two-proportion z-test that two rates are equal.

    It is ``prop.test(correct = FALSE)`` in R. With no variance to speak of
    (no successes, or nothing but successes, on both sides) there is no
    evidence of a difference: 1.
    """
    if trials_a <= 0 or trials_b <= 0:
        raise ValueError("each side needs at least one trial")
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return float(min(1.0, 2 * norm.sf(abs(z))))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values, in their order.

    The smallest is multiplied by the family's size, the next by one less,
    and so on; each adjusted value is at least the one before it in that
    order, and at most 1. Comparing them with a significance level keeps the chance
    of any false finding in the family below that level.
    """
    count = len(p_values)
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(sorted(range(count), key=p_values.__getitem__)):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
