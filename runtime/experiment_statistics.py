"""How an experiment's arm compares with its control: Welch, sequential and Bayesian tests, and the SRM check.

Pure functions of each arm's sufficient statistics (units, sum, sum of
squares), reproducing GrowthBook's statistics engine (gbstats) and its
back-end's sample-ratio-mismatch check, whose own test cases pin them:

- the effect is relative, ``(mean_b - mean_a) / |mean_a|``, with the delta
  method's variance ``var_b / (n_b mean_a²) + var_a mean_b² / (n_a mean_a⁴)``
  (or absolute, ``mean_b - mean_a`` with ``var_a / n_a + var_b / n_b``);
- Welch's t-test, with Welch-Satterthwaite degrees of freedom;
- the sequential test: the closed-form always-valid confidence sequence of
  Waudby-Smith et al. (2023, eq. 9) tuned for ``N*`` units, so a result may
  be looked at every day without inflating false positives;
- the Bayesian test: a normal posterior on the effect (flat prior unless one
  is given), with the chance to win and the risk (expected loss) of each choice;
- SRM: a chi-square goodness-of-fit test of the users against the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scipy.stats import chi2, norm, t

ALPHA = 0.05  # every test's significance level and interval, unless a caller asks otherwise
N_STAR = 5000  # the sequential test's tuning: the number of units at which its interval is narrowest
SRM_P_VALUE = 0.001  # SRM is flagged below this p-value...
SRM_MIN_USERS = 8  # ...once every arm is expected to hold at least this many users

Method = Literal["welch", "sequential", "bayesian"]
Alternative = Literal["two-sided", "greater"]  # greater: the treatment beats the control (a one-sided test)

_ONE_SIDED_P_RANGE = (1e-5, 0.4999)  # the sequential one-sided p-value is searched for, and clamped, in here


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One arm's metric: ``n`` units and the sum and sum of squares of their values.

    A proportion (each unit 0 or 1: converted or not) has variance ``p(1 - p)``;
    any other metric the sample variance ``(sum_squares - sum²/n) / (n - 1)``.
    """

    n: int
    sum: float
    sum_squares: float
    proportion: bool = False

    @classmethod
    def of_proportion(cls, successes: int, n: int) -> MetricSample:
        return cls(n, successes, successes, True)

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        if self.proportion:
            p = self.mean
            return p * (1 - p)
        if self.n < 2:
            return 0.0
        return max(0.0, (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A normal prior on the effect, on the effect's scale (relative lift or absolute difference)."""

    mean: float
    variance: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment against its control by one method: the lift, its interval and what the method concludes.

    ``expected`` is the lift (relative unless ``relative`` is false);
    [``low``, ``high``] its interval (confidence, always-valid or credible),
    infinite on the open side of a one-sided test. Welch and sequential give
    ``p_value``; Bayesian gives ``chance_to_win`` and ``risk``: the expected
    loss of choosing the control and of choosing the treatment. ``error``
    says why nothing could be concluded (every number is then 0, the p-value 1).
    """

    method: Method
    relative: bool
    expected: float
    low: float
    high: float
    stddev: float
    p_value: float | None = None
    chance_to_win: float | None = None
    risk: tuple[float, float] | None = None
    error: str | None = None

    @classmethod
    def failed(cls, method: Method, relative: bool, error: str) -> Comparison:
        """Gbstats' uninformative answer: no lift, a p-value of 1, an even chance to win, no risk."""
        bayesian = method == "bayesian"
        return cls(
            method,
            relative,
            0.0,
            0.0,
            0.0,
            0.0,
            p_value=None if bayesian else 1.0,
            chance_to_win=0.5 if bayesian else None,
            risk=(0.0, 0.0) if bayesian else None,
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "relative": self.relative,
            "expected": self.expected,
            "low": self.low,
            "high": self.high,
            "stddev": self.stddev,
            "p_value": self.p_value,
            "chance_to_win": self.chance_to_win,
            "risk": None if self.risk is None else list(self.risk),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        risk = data["risk"]
        return cls(
            data["method"],
            data["relative"],
            data["expected"],
            data["low"],
            data["high"],
            data["stddev"],
            data["p_value"],
            data["chance_to_win"],
            None if risk is None else (risk[0], risk[1]),
            data["error"],
        )


def _effect(control: MetricSample, treatment: MetricSample, relative: bool) -> tuple[float, float] | str:
    """The effect and the variance of its estimate, or why there is none."""
    if control.n <= 0 or treatment.n <= 0:
        return "an arm has no units"
    if any(sample.proportion and not 0 <= sample.sum <= sample.n for sample in (control, treatment)):
        return "a proportion counts more successes than units"
    mean_a, mean_b = control.mean, treatment.mean
    if relative and mean_a == 0:
        return "the control's mean is zero: a relative lift is undefined"
    var_a, var_b = control.variance, treatment.variance
    if var_a <= 0 or var_b <= 0:
        return "an arm's values do not vary"
    if not relative:
        return mean_b - mean_a, var_a / control.n + var_b / treatment.n
    variance = var_b / (mean_a**2 * treatment.n) + var_a * mean_b**2 / (mean_a**4 * control.n)
    return (mean_b - mean_a) / abs(mean_a), variance


def _welch_dof(control: MetricSample, treatment: MetricSample) -> float:
    """Welch-Satterthwaite degrees of freedom (of the raw variances, as gbstats computes them)."""
    a = control.variance / control.n
    b = treatment.variance / treatment.n
    return (a + b) ** 2 / (b * b / (treatment.n - 1) + a * a / (control.n - 1))


def welch_test(
    control: MetricSample,
    treatment: MetricSample,
    *,
    relative: bool = True,
    alpha: float = ALPHA,
    alternative: Alternative = "two-sided",
) -> Comparison:
    """Welch's t-test of the effect: its p-value and (1 - alpha) confidence interval."""
    effect = _effect(control, treatment, relative)
    if isinstance(effect, str):
        return Comparison.failed("welch", relative, effect)
    estimate, variance = effect
    stddev = math.sqrt(variance)
    dof = _welch_dof(control, treatment)
    if alternative == "greater":
        half = float(t.ppf(1 - alpha, dof)) * stddev
        p_value = float(t.sf(estimate / stddev, dof))
        return Comparison("welch", relative, estimate, estimate - half, math.inf, stddev, p_value)
    half = float(t.ppf(1 - alpha / 2, dof)) * stddev
    p_value = float(2 * t.sf(abs(estimate) / stddev, dof))
    return Comparison("welch", relative, estimate, estimate - half, estimate + half, stddev, p_value)


def _rho(alpha: float, n_star: float, two_sided: bool) -> float:
    """The mixing parameter that makes the confidence sequence narrowest at ``n_star`` units."""
    level = alpha if two_sided else 2 * alpha
    return math.sqrt((-2 * math.log(level) + math.log(-2 * math.log(level) + 1)) / n_star)


def _sequential_half(variance: float, n: int, rho: float, alpha: float, two_sided: bool) -> float:
    """The confidence sequence's half-width at ``n`` units (``variance`` is the estimate's)."""
    s2 = variance * n
    tr2p1 = n * rho * rho + 1
    if two_sided:
        return math.sqrt(s2) * math.sqrt(2 * tr2p1 * math.log(math.sqrt(tr2p1) / alpha) / (n * rho) ** 2)
    return math.sqrt(s2 * 2 * tr2p1 / (n * rho) ** 2 * math.log(1 + math.sqrt(tr2p1) / (2 * alpha)))


def sequential_test(
    control: MetricSample,
    treatment: MetricSample,
    *,
    relative: bool = True,
    alpha: float = ALPHA,
    n_star: float = N_STAR,
    alternative: Alternative = "two-sided",
) -> Comparison:
    """The always-valid test: an interval and p-value that stay valid however often they are looked at."""
    effect = _effect(control, treatment, relative)
    if isinstance(effect, str):
        return Comparison.failed("sequential", relative, effect)
    estimate, variance = effect
    stddev = math.sqrt(variance)
    n = control.n + treatment.n
    if alternative == "greater":
        if alpha >= 0.5:
            return Comparison.failed("sequential", relative, "a one-sided sequential test needs alpha below 0.5")
        rho = _rho(alpha, n_star, two_sided=False)
        low = estimate - _sequential_half(variance, n, rho, alpha, two_sided=False)
        p_value = _bisect_alpha(lambda level: estimate - _sequential_half(variance, n, rho, level, two_sided=False))
        return Comparison("sequential", relative, estimate, low, math.inf, stddev, p_value)
    rho = _rho(alpha, n_star, two_sided=True)
    half = _sequential_half(variance, n, rho, alpha, two_sided=True)
    # Waudby-Smith et al. eq. 155: p = min(1, 1 / e-value), with the log taken to avoid overflow.
    tr2p1 = n * rho * rho + 1
    log_e_value = rho * rho * (estimate * estimate * n / variance) / (2 * tr2p1) - 0.5 * math.log(tr2p1)
    p_value = min(1.0, math.exp(-log_e_value))
    return Comparison("sequential", relative, estimate, estimate - half, estimate + half, stddev, p_value)


def _bisect_alpha(lower_bound: Callable[[float], float]) -> float | None:
    """The alpha at which the one-sided interval's lower bound reaches 0 (gbstats' search, clamped)."""
    low, high = _ONE_SIDED_P_RANGE
    if lower_bound(low) > 0:
        return low
    if lower_bound(high) < 0:
        return high
    level = (low + high) / 2
    for _ in range(100):
        gap = lower_bound(level)
        if gap < 0:
            low = level
        else:
            high = level
        level = (low + high) / 2
        if abs(gap) < 1e-6:
            return level
    return None  # did not converge


def bayesian_test(
    control: MetricSample,
    treatment: MetricSample,
    *,
    relative: bool = True,
    alpha: float = ALPHA,
    prior: GaussianPrior | None = None,
) -> Comparison:
    """The posterior of the effect (flat prior unless ``prior``): chance to win, credible interval, risk."""
    effect = _effect(control, treatment, relative)
    if isinstance(effect, str):
        return Comparison.failed("bayesian", relative, effect)
    estimate, variance = effect
    if prior is None:
        mean, stddev = estimate, math.sqrt(variance)
    else:
        precision = 1 / variance + 1 / prior.variance
        mean = (estimate / variance + prior.mean / prior.variance) / precision
        stddev = math.sqrt(1 / precision)
    z = mean / stddev
    density = float(norm.pdf(z))
    win = float(norm.cdf(z))  # P(effect > 0)
    lose = float(norm.cdf(-z))
    # Expected loss: choosing the control forgoes E[max(X, 0)], the treatment costs E[max(-X, 0)].
    risk = (mean * win + stddev * density, stddev * density - mean * lose)
    low = float(norm.ppf(alpha / 2, mean, stddev))
    high = float(norm.ppf(1 - alpha / 2, mean, stddev))
    return Comparison("bayesian", relative, mean, low, high, stddev, chance_to_win=win, risk=risk)


@dataclass(frozen=True, slots=True)
class SrmCheck:
    """Whether the arms got the users their weights promise: a chi-square test, flagged at p < 0.001.

    ``expected`` is each arm's expected users under the weights (0 for an
    arm of weight 0, which is left out of the test with its users). It is
    flagged only when every weighted arm expects at least 8 users, so a
    new experiment is not flagged on noise, yet an arm that gets none is.
    """

    users: tuple[int, ...]
    expected: tuple[float, ...]
    p_value: float
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": list(self.users),
            "expected": list(self.expected),
            "p_value": self.p_value,
            "flagged": self.flagged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SrmCheck:
        return cls(tuple(data["users"]), tuple(data["expected"]), data["p_value"], data["flagged"])


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """The chi-square p-value of ``users`` against ``weights``, as GrowthBook's back-end computes it.

    Arms of weight 0 are dropped with their users; arms beyond the shorter
    list are ignored; with fewer than two arms left, or no users, it is 1.
    """
    arms = [(count, weight) for count, weight in zip(users, weights, strict=False) if weight > 0]
    total_users = sum(count for count, _ in arms)
    if len(arms) < 2 or total_users <= 0:
        return 1.0
    total_weight = sum(weight for _, weight in arms)
    statistic = 0.0
    for count, weight in arms:
        expected = weight / total_weight * total_users
        statistic += (count - expected) ** 2 / expected
    return float(chi2.sf(statistic, len(arms) - 1))


def srm_check(users: Sequence[int], weights: Sequence[float]) -> SrmCheck:
    """The SRM check of one phase of an experiment: its p-value, and whether it is flagged."""
    p_value = srm_p_value(users, weights)
    total_weight = sum(weight for weight in weights[: len(users)] if weight > 0)
    total_users = sum(count for count, weight in zip(users, weights, strict=False) if weight > 0)
    expected = tuple(
        weight / total_weight * total_users if weight > 0 and total_weight > 0 else 0.0
        for weight in weights[: len(users)]
    )
    enough = all(count >= SRM_MIN_USERS for count, weight in zip(expected, weights, strict=False) if weight > 0)
    return SrmCheck(tuple(users), expected, p_value, enough and p_value < SRM_P_VALUE)
