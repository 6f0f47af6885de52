"""An experiment's report: what a server answers at ``/v1/experiments`` and ``tailor experiments`` shows.

``ExperimentInfo`` is an experiment as the served rules declare it (arms,
weights, coverage, seed, phase, and the slots its rules are in). A report is
one phase of it: each arm's exposed users (``FeatureStore.exposures``) and
feedback counters (``FeatureStore.arm_totals``) turned into rates and lifts
by ``experiment_results.phase_result``; the CTR lift of each arm over the
control day by day, cumulative, by the always-valid sequential test (the
one that may be looked at every day); and what a marketer may conclude, in
plain sentences. Only the served phase's weights are known, so a report is of
the current phase: results never mix phases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler.experiments import ExperimentPlan, HoldoutPlan
from tailor.compiler.plan import DecisionPlan

from .experiment_counts import CONVERTERS, VALUE_SQUARES, ArmTotals
from .experiment_results import METRICS, ArmCounts, MetricComparison, PhaseResult, phase_result
from .experiment_statistics import Comparison, MetricSample, SrmCheck, sequential_test
from .feedback import MEASURES, VALUE
from .store import FeatureStore

LABELS: dict[str, str] = {"ctr": "CTR", "conversion_rate": "conversion rate", "value_per_user": "value per user"}
HEADLINE = "sequential"  # the method conclusions are drawn from: always valid, so results may be read daily


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """An experiment as the served rules declare it."""

    name: str
    arms: tuple[str, ...] = field(metadata={"doc": "in declared order: the first is the control"})
    weights: tuple[float, ...] = field(metadata={"doc": "each arm's share of the users who enter, from 0 to 1"})
    coverage: float = field(metadata={"doc": "the share of users who enter, from 0 to 1"})
    seed: str
    phase: str = field(metadata={"doc": "the current phase: a hash of the arms, weights, coverage and seed"})
    slots: tuple[str, ...] = field(metadata={"doc": "the slots whose rules read the experiment"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arms": list(self.arms),
            "weights": list(self.weights),
            "coverage": self.coverage,
            "seed": self.seed,
            "phase": self.phase,
            "slots": list(self.slots),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentInfo:
        return cls(
            data["name"],
            tuple(data["arms"]),
            tuple(data["weights"]),
            data["coverage"],
            data["seed"],
            data["phase"],
            tuple(data["slots"]),
        )

    @classmethod
    def of(cls, plan: DecisionPlan, experiment: ExperimentPlan) -> ExperimentInfo:
        from tailor.compiler.exposure import ExposureIndex

        uses = ExposureIndex(plan).uses.get(experiment.name, 0)
        slots = tuple(name for name, slot in plan.slots.items() if slot.mask & uses)
        return cls(
            experiment.name,
            experiment.arms,
            experiment.weights,
            experiment.coverage,
            experiment.seed,
            experiment.phase,
            slots,
        )


@dataclass(frozen=True, slots=True)
class HoldoutInfo:
    """The ruleset's holdout: users whose hash under ``seed`` is below ``share`` see only defaults."""

    share: float
    seed: str

    def to_dict(self) -> dict[str, Any]:
        return {"share": self.share, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HoldoutInfo:
        return cls(data["share"], data["seed"])

    @classmethod
    def of(cls, holdout: HoldoutPlan) -> HoldoutInfo:
        return cls(holdout.share, holdout.seed)


@dataclass(frozen=True, slots=True)
class ExperimentList:
    """The answer of ``GET /v1/experiments``: the served rules' experiments, and their holdout."""

    ruleset: str
    version: str
    experiments: tuple[ExperimentInfo, ...]
    holdout: HoldoutInfo | None = field(metadata={"doc": "null when the rules declare no holdout"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset,
            "version": self.version,
            "experiments": [experiment.to_dict() for experiment in self.experiments],
            "holdout": None if self.holdout is None else self.holdout.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentList:
        holdout = data.get("holdout")
        return cls(
            data["ruleset"],
            data["version"],
            tuple(ExperimentInfo.from_dict(experiment) for experiment in data["experiments"]),
            None if holdout is None else HoldoutInfo.from_dict(holdout),
        )

    @classmethod
    def of(cls, plan: DecisionPlan, ruleset: str, version: str) -> ExperimentList:
        experiments = tuple(ExperimentInfo.of(plan, experiment) for experiment in plan.experiments.values())
        return cls(ruleset, version, experiments, None if plan.holdout is None else HoldoutInfo.of(plan.holdout))


@dataclass(frozen=True, slots=True)
class LiftPoint:
    """An arm's CTR lift over the control with everything counted up to the end of a UTC day."""

    day: str
    arm: str
    expected: float | None = field(metadata={"doc": "relative lift; null when it cannot be computed yet"})
    low: float | None = field(metadata={"doc": "the always-valid 95% interval (the sequential test)"})
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "arm": self.arm, "expected": self.expected, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiftPoint:
        return cls(data["day"], data["arm"], data["expected"], data["low"], data["high"])


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    """The answer of ``GET /v1/experiments/{name}``: one phase's results, over time, and what they mean."""

    experiment: ExperimentInfo
    phase: str = field(metadata={"doc": "the phase reported on: always the current one"})
    result: PhaseResult
    over_time: tuple[LiftPoint, ...] = field(metadata={"doc": "per day and arm after the first, cumulative"})
    conclusions: tuple[str, ...] = field(metadata={"doc": "what a marketer may conclude, in plain sentences"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.to_dict(),
            "phase": self.phase,
            "result": self.result.to_dict(),
            "over_time": [point.to_dict() for point in self.over_time],
            "conclusions": list(self.conclusions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentReport:
        return cls(
            ExperimentInfo.from_dict(data["experiment"]),
            data["phase"],
            PhaseResult.from_dict(data["result"]),
            tuple(LiftPoint.from_dict(point) for point in data["over_time"]),
            tuple(data["conclusions"]),
        )


async def read_report(store: FeatureStore, info: ExperimentInfo) -> ExperimentReport:
    """The report of ``info``'s current phase from what ``store`` counted (two reads: exposures, counters)."""
    users = await store.exposures(info.name, info.phase)
    totals = await store.arm_totals(info.name, info.phase)
    return report_of(info, users, totals)


def arm_counts(info: ExperimentInfo, users: Mapping[str, int], totals: ArmTotals) -> list[ArmCounts]:
    """Each declared arm's counts: its exposed users, and the feedback counted for it."""
    return [
        ArmCounts(
            arm,
            int(users.get(arm, 0)),
            int(totals.amount(arm, MEASURES["impression"])),
            int(totals.amount(arm, MEASURES["click"])),
            int(totals.amount(arm, CONVERTERS)),
            totals.amount(arm, VALUE),
            totals.amount(arm, VALUE_SQUARES),
        )
        for arm in info.arms
    ]


def report_of(info: ExperimentInfo, users: Mapping[str, int], totals: ArmTotals) -> ExperimentReport:
    """The report of the current phase of ``info`` from its store counts."""
    result = phase_result(arm_counts(info, users, totals), info.weights)
    return ExperimentReport(info, info.phase, result, over_time(info, totals), conclusions(result))


def over_time(info: ExperimentInfo, totals: ArmTotals) -> tuple[LiftPoint, ...]:
    """Each later arm's CTR lift over the control, cumulative to the end of each day counted."""
    running: dict[str, list[int]] = {arm: [0, 0] for arm in info.arms}  # impressions, clicks
    points = []
    control = info.arms[0]
    for day in sorted(totals.days):
        for arm, measures in totals.days[day].items():
            if arm in running:
                running[arm][0] += int(measures.get(MEASURES["impression"], 0))
                running[arm][1] += int(measures.get(MEASURES["click"], 0))
        a = _ctr_sample(*running[control])
        for arm in info.arms[1:]:
            lift = sequential_test(a, _ctr_sample(*running[arm]))
            if lift.error is None:
                points.append(LiftPoint(day, arm, lift.expected, lift.low, lift.high))
            else:
                points.append(LiftPoint(day, arm, None, None, None))
    return tuple(points)


def _ctr_sample(impressions: int, clicks: int) -> MetricSample:
    return MetricSample.of_proportion(min(clicks, impressions), impressions)


# --- what a marketer may conclude ---


def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def verdict(comparison: MetricComparison) -> str:
    """One sentence on one arm against the control on one metric, from the always-valid test."""
    lift: Comparison = getattr(comparison, HEADLINE)
    label = LABELS[comparison.metric]
    arm, control = comparison.arm, comparison.control
    if lift.error is not None:
        return f"{arm} against {control} on {label}: nothing to conclude yet ({lift.error})"
    numbers = f"{_percent(lift.expected)} (95% CI {_percent(lift.low)} to {_percent(lift.high)}), always-valid"
    if lift.low > 0:
        return f"{arm} beats {control} on {label} by {numbers}"
    if lift.high < 0:
        return f"{arm} loses to {control} on {label} by {numbers}"
    return f"no clear difference yet between {arm} and {control} on {label}: {numbers}"


def srm_sentence(srm: SrmCheck, arms: Sequence[str]) -> str:
    if srm.flagged:
        counts = ", ".join(
            f"{arm} {users:,} (expected {expected:,.0f})"
            for arm, users, expected in zip(arms, srm.users, srm.expected, strict=False)
        )
        return (
            f"sample ratio mismatch (p = {srm.p_value:.2g}): users per arm are {counts}; assignment or tracking "
            "is broken, so do not trust these lifts"
        )
    return "no sample ratio mismatch"


def conclusions(result: PhaseResult) -> tuple[str, ...]:
    """The report's plain sentences: each comparison's verdict, the SRM check last (it qualifies them all)."""
    arms = tuple(arm.arm for arm in result.arms)
    order = {metric: index for index, metric in enumerate(METRICS)}
    comparisons = sorted(result.comparisons, key=lambda c: (arms.index(c.arm), order[c.metric]))
    srm = srm_sentence(result.srm, arms)
    sentences = [verdict(comparison) for comparison in comparisons]
    if sentences and not result.srm.flagged:
        sentences[0] = f"{sentences[0]}; {srm}"
    return (srm, *sentences) if result.srm.flagged else (*sentences, srm)
