"""The statistics tailor reports: intervals on rates, and the tests behind its findings.

Pure functions of counts, so the KPI endpoint, the rule-health report and the
experiment results all judge a rate the same way.
"""

from __future__ import annotations

import math
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
