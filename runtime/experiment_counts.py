"""An experiment's counters, per phase and arm: what its results are computed from.

Feedback on a slot where a decision exposed its user to an experiment
(``Join.experiments``) counts for the user's arm in that phase, beside the
KPI counters and in the same atomic step: impressions, clicks and
conversions (items), the conversions' value, in total and per UTC day. Two
more totals are per user, as ``ArmCounts`` needs them: ``converters``, the
users who converted at least once, and ``value_squares``, the sum over users
of the square of each user's total value. A store keeps each user's value
per phase to update them exactly (``value_squares`` grows by ``new² - old²``).
Users themselves are the exposures (``FeatureStore.exposures``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .feedback import CONVERSION, VALUE, ArmKey, Join, Tally

CONVERTERS = "converters"  # users with at least one conversion (totals only)
VALUE_SQUARES = "value_squares"  # sum over users of (the user's value)² (totals only)
PER_USER = (CONVERTERS, VALUE_SQUARES)

ArmMeasures = dict[str, dict[str, float]]  # arm -> measure -> amount


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """One phase's counters: in total, and per UTC day (impressions, clicks, conversions and value)."""

    total: ArmMeasures = field(default_factory=dict)
    days: dict[str, ArmMeasures] = field(default_factory=dict)

    def amount(self, arm: str, measure: str) -> float:
        return self.total.get(arm, {}).get(measure, 0.0)


def add(into: ArmMeasures, arm: str, measure: str, amount: float) -> None:
    measures = into.get(arm)
    if measures is None:
        measures = into[arm] = {}
    measures[measure] = measures.get(measure, 0) + amount


def tally_counts(tally: Tally) -> list[tuple[str, float]]:
    """What an accepted tally adds to each of its arms, per period: (measure, amount), per-user totals aside."""
    counts = []
    if tally.measure is not None:
        counts.append((tally.measure, 1.0))
    if tally.value:
        counts.append((VALUE, tally.value))
    return counts


def is_conversion(tally: Tally) -> bool:
    return tally.type == CONVERSION


def served_impressions(join: Join) -> list[ArmKey]:
    """The arm of each exposed slot a served decision showed, when served slots count as impressions."""
    return [(x.experiment, x.phase, x.arm) for x in join.experiments for slot in x.slots if slot in join.slots]


def per_user_step(before: float | None, amount: float) -> tuple[float, float, float]:
    """A conversion of ``amount`` by a user whose value so far is ``before`` (None: never converted):
    (the user's new value, what ``converters`` gains, what ``value_squares`` gains)."""
    after = (before or 0.0) + amount
    return after, (1.0 if before is None else 0.0), after * after - (before or 0.0) ** 2
