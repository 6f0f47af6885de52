"""One phase of an experiment as a report shows it: each arm's counts and rates, each arm against the first.

The decision log counts, per arm, the users exposed, impressions, clicks,
users who converted and the value they brought; ``phase_result`` turns those
counts into rates with intervals, the lift of every later arm over the first
(the control) by the three methods of ``experiment_statistics``, and the
sample-ratio-mismatch check against the configured weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .experiment_statistics import (
    ALPHA,
    N_STAR,
    Comparison,
    MetricSample,
    SrmCheck,
    bayesian_test,
    sequential_test,
    srm_check,
    welch_test,
)
from .statistics import Interval, mean_interval, wilson_interval

Metric = Literal["ctr", "conversion_rate", "value_per_user"]
METRICS: tuple[Metric, ...] = ("ctr", "conversion_rate", "value_per_user")


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """What the decision log holds of one arm in one phase.

    ``conversions`` counts users who converted (at most ``users``);
    ``value_squares`` is the sum over users of the square of each user's
    value, which the value-per-user interval and tests need.
    """

    arm: str
    users: int
    impressions: int
    clicks: int
    conversions: int
    value: float
    value_squares: float

    def sample(self, metric: Metric) -> MetricSample:
        """The metric's sample: clicks per impression, converters per user, or value per user."""
        if metric == "ctr":
            return MetricSample.of_proportion(self.clicks, self.impressions)
        if metric == "conversion_rate":
            return MetricSample.of_proportion(self.conversions, self.users)
        return MetricSample(self.users, self.value, self.value_squares)


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate and its 95% interval; None where there is nothing to divide by (or too little for an interval)."""

    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, value: float | None, interval: Interval | None) -> Rate:
        return cls(value, None, None) if interval is None else cls(value, interval.low, interval.high)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rate:
        return cls(data["value"], data["low"], data["high"])


def _proportion(successes: int, trials: int) -> Rate:
    """Wilson's interval, when the counts make a proportion (a click without its impression does not)."""
    if trials <= 0:
        return Rate(None, None, None)
    interval = wilson_interval(successes, trials) if 0 <= successes <= trials else None
    return Rate.of(successes / trials, interval)


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm's counts, with click-through rate, conversion rate and value per user."""

    arm: str
    users: int
    impressions: int
    clicks: int
    conversions: int
    value: float
    ctr: Rate
    conversion_rate: Rate
    value_per_user: Rate

    @classmethod
    def of(cls, counts: ArmCounts) -> ArmResult:
        per_user = counts.value / counts.users if counts.users > 0 else None
        return cls(
            counts.arm,
            counts.users,
            counts.impressions,
            counts.clicks,
            counts.conversions,
            counts.value,
            _proportion(counts.clicks, counts.impressions),
            _proportion(counts.conversions, counts.users),
            Rate.of(per_user, mean_interval(counts.value, counts.value_squares, counts.users)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "users": self.users,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "value": self.value,
            "ctr": self.ctr.to_dict(),
            "conversion_rate": self.conversion_rate.to_dict(),
            "value_per_user": self.value_per_user.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmResult:
        return cls(
            data["arm"],
            data["users"],
            data["impressions"],
            data["clicks"],
            data["conversions"],
            data["value"],
            Rate.from_dict(data["ctr"]),
            Rate.from_dict(data["conversion_rate"]),
            Rate.from_dict(data["value_per_user"]),
        )


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One arm against the control on one metric, by each method: relative lift, interval, verdict."""

    arm: str
    control: str
    metric: Metric
    welch: Comparison
    sequential: Comparison
    bayesian: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "control": self.control,
            "metric": self.metric,
            "welch": self.welch.to_dict(),
            "sequential": self.sequential.to_dict(),
            "bayesian": self.bayesian.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricComparison:
        return cls(
            data["arm"],
            data["control"],
            data["metric"],
            Comparison.from_dict(data["welch"]),
            Comparison.from_dict(data["sequential"]),
            Comparison.from_dict(data["bayesian"]),
        )


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """A phase of an experiment: its arms, each later arm against the first on every metric, and SRM."""

    arms: tuple[ArmResult, ...]
    comparisons: tuple[MetricComparison, ...]
    srm: SrmCheck

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": [arm.to_dict() for arm in self.arms],
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "srm": self.srm.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseResult:
        return cls(
            tuple(ArmResult.from_dict(arm) for arm in data["arms"]),
            tuple(MetricComparison.from_dict(comparison) for comparison in data["comparisons"]),
            SrmCheck.from_dict(data["srm"]),
        )


def compare_metric(
    control: ArmCounts, arm: ArmCounts, metric: Metric, *, alpha: float = ALPHA, n_star: float = N_STAR
) -> MetricComparison:
    """``arm`` against ``control`` on ``metric``, as a relative lift, by Welch, sequential and Bayesian tests."""
    a, b = control.sample(metric), arm.sample(metric)
    return MetricComparison(
        arm.arm,
        control.arm,
        metric,
        welch_test(a, b, alpha=alpha),
        sequential_test(a, b, alpha=alpha, n_star=n_star),
        bayesian_test(a, b, alpha=alpha),
    )


def phase_result(
    arms: Sequence[ArmCounts], weights: Sequence[float], *, alpha: float = ALPHA, n_star: float = N_STAR
) -> PhaseResult:
    """The report of one phase: ``arms`` in their declared order (the first is the control), ``weights`` theirs."""
    if len(arms) != len(weights):
        raise ValueError(f"{len(arms)} arms but {len(weights)} weights")
    comparisons = tuple(
        compare_metric(arms[0], arm, metric, alpha=alpha, n_star=n_star) for arm in arms[1:] for metric in METRICS
    )
    return PhaseResult(
        tuple(ArmResult.of(arm) for arm in arms),
        comparisons,
        srm_check([arm.users for arm in arms], weights),
    )
