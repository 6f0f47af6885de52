"""Experiments as the decision log shows them: users per arm, the SRM check, and the holdout's share.

The log holds every served decision's arms and whether it exposed its user,
but no feedback: from the log alone, a report counts the distinct users
exposed to each arm of each phase (a user counts once per phase, as the
store's exposures do) and checks them against the weights when the rules are
given, and counts the users held out against the holdout's share. Rates and
lifts need the server's counts (``--url``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import binom

from .decision_record import DecisionRecord
from .experiment_statistics import SrmCheck, srm_check

HOLDOUT_CONFIDENCE = 0.999  # the holdout's size is flagged outside this binomial interval (as SRM, rarely by chance)


@dataclass(frozen=True, slots=True)
class LoggedPhase:
    """One phase of an experiment in the log: distinct exposed users per arm, and SRM when the weights are known."""

    experiment: str
    phase: str
    users: dict[str, int]
    current: bool = field(metadata={"doc": "the phase the given rules declare (their weights are known)"})
    srm: SrmCheck | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "phase": self.phase,
            "users": dict(self.users),
            "current": self.current,
            "srm": None if self.srm is None else self.srm.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class LoggedHoldout:
    """The distinct users the log saw, those held out, and whether that count fits the holdout's share."""

    users: int
    held_out: int
    share: float | None
    low: int | None  # the binomial interval of held-out users the share allows (HOLDOUT_CONFIDENCE)
    high: int | None
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "held_out": self.held_out,
            "share": self.share,
            "low": self.low,
            "high": self.high,
            "flagged": self.flagged,
        }

    @classmethod
    def of(cls, users: int, held_out: int, share: float | None) -> LoggedHoldout:
        if share is None or users == 0:
            return cls(users, held_out, share, None, None, False)
        low, high = binom.interval(HOLDOUT_CONFIDENCE, users, share)
        return cls(users, held_out, share, int(low), int(high), not low <= held_out <= high)


@dataclass(frozen=True, slots=True)
class LogReport:
    phases: tuple[LoggedPhase, ...]
    holdout: LoggedHoldout
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": [phase.to_dict() for phase in self.phases],
            "holdout": self.holdout.to_dict(),
            "notes": list(self.notes),
        }

    def render(self) -> str:
        lines = []
        for phase in self.phases:
            users = ", ".join(f"{arm} {count:,}" for arm, count in phase.users.items())
            lines.append(
                f"experiment {phase.experiment} (phase {phase.phase}{'' if phase.current else ', not current'})"
            )
            lines.append(f"  exposed users: {users}")
            if phase.srm is not None:
                verdict = "SAMPLE RATIO MISMATCH" if phase.srm.flagged else "no sample ratio mismatch"
                lines.append(f"  {verdict} (p = {phase.srm.p_value:.3g})")
        held = self.holdout
        if held.share is not None:
            verdict = "OUTSIDE" if held.flagged else "within"
            lines.append(
                f"holdout {held.share * 100:g}%: {held.held_out:,} of {held.users:,} users held out, "
                f"{verdict} the {HOLDOUT_CONFIDENCE * 100:g}% binomial bounds [{held.low:,}, {held.high:,}]"
            )
        elif held.held_out:
            lines.append(f"holdout: {held.held_out:,} of {held.users:,} users held out")
        return "\n".join(lines) + "\n" if lines else "no experiment in the log\n"


def log_report(
    records: Iterable[DecisionRecord],
    declared: Mapping[str, tuple[str, Mapping[str, float]]],
    holdout_share: float | None,
    only: str | None = None,
) -> LogReport:
    """``declared``: per experiment, its current phase and arms' weights (from the rules; may be empty)."""
    exposed: dict[tuple[str, str], dict[str, set[str]]] = {}
    seen: set[str] = set()
    held: set[str] = set()
    for record in records:
        seen.add(record.user_id)
        if record.holdout:
            held.add(record.user_id)
        for entry in record.experiments:
            if entry.exposed and (only is None or entry.experiment == only):
                arms = exposed.setdefault((entry.experiment, entry.phase), {})
                arms.setdefault(entry.arm, set()).add(record.user_id)
    phases = []
    notes = ["rates and lifts need the server's counts: tailor experiments --url URL"]
    for (experiment, phase), arms in sorted(exposed.items()):
        current = declared.get(experiment)
        is_current = current is not None and current[0] == phase
        if is_current:
            weights = current[1]
            users = {arm: len(arms.get(arm, ())) for arm in weights}
            srm = srm_check(list(users.values()), list(weights.values()))
        else:
            users = {arm: len(found) for arm, found in sorted(arms.items())}
            srm = None
        phases.append(LoggedPhase(experiment, phase, users, is_current, srm))
    if not declared:
        notes.append("the SRM check and the holdout's bounds need the arms' weights: give the rules (--rules PATH)")
    return LogReport(tuple(phases), LoggedHoldout.of(len(seen), len(held), holdout_share), tuple(notes))
