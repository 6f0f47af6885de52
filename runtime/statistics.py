"""The statistics tailor reports: intervals on rates, and the tests behind its findings.

Pure functions of counts, so the KPI endpoint, the rule-health report and the
experiment results all judge a rate the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from scipy.stats import norm, t

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


def mean_interval(total: float, total_squares: float, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The t interval of a mean from its sum and sum of squares; None below two values."""
    if n < 2:
        return None
    mean = total / n
    variance = max(0.0, (total_squares - total * total / n) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(variance / n)
    return Interval(mean - half, mean + half)


@dataclass(frozen=True, slots=True)
class ProportionTest:
    """Two rates compared by the pooled two-proportion z-test: ``rate_a - rate_b``, its z and two-sided p."""

    rate_a: float
    rate_b: float
    z: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"rate_a": self.rate_a, "rate_b": self.rate_b, "z": self.z, "p_value": self.p_value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProportionTest:
        return cls(data["rate_a"], data["rate_b"], data["z"], data["p_value"])


def two_proportion_z_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> ProportionTest | None:
    """Whether two rates differ; None when either has no trials.

    The samples must not overlap: to judge a rule's CTR against its slot's,
    compare the rule with the rest of the slot (the slot's counts less the
    rule's). When neither sample varies (both rates 0, or both 1) z is 0.
    """
    if trials_a <= 0 or trials_b <= 0:
        return None
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if spread == 0:
        return ProportionTest(rate_a, rate_b, 0.0, 1.0)
    z = (rate_a - rate_b) / spread
    return ProportionTest(rate_a, rate_b, z, float(2 * norm.sf(abs(z))))


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm's step-down adjusted p-values, in the given order: reject where adjusted < alpha.

    Many rules tested at once would flag some by chance; Holm keeps the chance
    of any false flag under alpha, and is never less powerful than Bonferroni.
    """
    count = len(p_values)
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(sorted(range(count), key=p_values.__getitem__)):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return tuple(adjusted)
