"""Experiments and the holdout as the compiler settles them: who gets which arm, drawn from the request.

An experiment's arm is a pure function of the ``user_id`` (``bucketing``), so
the compiler draws it before stage 0, with no store access: stage 0's tables
then treat ``hero_test == "model"`` as they treat ``context.page == "home"``.
A user outside the coverage has no arm (``hero_test`` is missing), and so
does every user in the holdout, who gets every slot's default: no rule is
looked at, so no model runs and no behavioural feature is fetched.

An experiment's *phase* is a hash of its arms, weights, coverage and seed:
a reload that changes any of them starts a new phase, so results never mix
one split with another. A reload that changes none keeps the phase, and with
it every user's arm.

A request may pin an arm by giving the experiment's name among its features
(``tailor test``'s ``given hero_test = "model"``, a preview): a pinned arm is
decided on, but it was not drawn, so it is neither logged nor an exposure.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from tailor.dsl.printer import number_text

from .bucketing import bucket_ranges, choose_arm, fnv1a32, hash_after

if TYPE_CHECKING:
    from .check import Program


@dataclass(frozen=True, slots=True)
class ExperimentPlan:
    """One experiment, ready to draw arms: its ranges are fixed at compile time."""

    name: str
    arms: tuple[str, ...]
    weights: tuple[float, ...]  # fractions, summing to 1
    coverage: float  # the fraction of users who enter
    seed: str
    ranges: tuple[tuple[float, float], ...]  # each arm's half-open range of hash values
    phase: str
    state: int = field(repr=False)  # FNV-1a's state after the seed: the hot path hashes only the user id

    def draw(self, user_id: str) -> tuple[float, str | None]:
        """The user's hash and arm (None outside the coverage)."""
        value = hash_after(self.state, user_id)
        index = choose_arm(value, self.ranges)
        return value, (self.arms[index] if index >= 0 else None)


@dataclass(frozen=True, slots=True)
class HoldoutPlan:
    """The holdout: users whose hash under ``seed`` is below ``share`` get only defaults."""

    share: float
    seed: str
    state: int = field(repr=False)

    def draw(self, user_id: str) -> tuple[float, bool]:
        value = hash_after(self.state, user_id)
        return value, value < self.share


def phase_of(arms: tuple[str, ...], weights: tuple[str, ...], coverage: str, seed: str) -> str:
    """A short hash of what splits the users: equal splits, equal phases, in every process."""
    text = json.dumps({"arms": arms, "weights": weights, "coverage": coverage, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def experiment_plans(program: Program) -> dict[str, ExperimentPlan]:
    plans = {}
    for name, decl in program.experiments.items():
        arms = tuple(arm.name.name for arm in decl.arms)
        weights = tuple(float(arm.weight.amount) for arm in decl.arms)
        coverage = decl.coverage_share
        seed = decl.seed_text
        written = tuple(number_text(arm.weight.value) for arm in decl.arms)
        phase = phase_of(arms, written, number_text(coverage * 100), seed)
        ranges = tuple(bucket_ranges(len(arms), coverage, weights))
        plans[name] = ExperimentPlan(name, arms, weights, coverage, seed, ranges, phase, fnv1a32(seed))
    return plans


def holdout_seed(ruleset: str) -> str:
    return f"{ruleset}-holdout"


def holdout_plan(program: Program) -> HoldoutPlan | None:
    decl = program.holdout
    if decl is None:
        return None
    seed = decl.seed.value if decl.seed is not None else holdout_seed(program.name)
    return HoldoutPlan(float(decl.share.amount), seed, fnv1a32(seed))


class Assignment(NamedTuple):
    """What one request drew: its arms (what stage 0 reads), and whether it is in the holdout.

    A named tuple: built per decision. ``hashes`` keeps each drawn hash, for explain.
    """

    arms: Mapping[str, str | None]  # experiment -> arm; None outside the coverage, in the holdout, or with no user
    holdout: bool = False
    hashes: Mapping[str, float] = {}  # experiment -> the user's hash (drawn experiments only)
    holdout_hash: float | None = None
    pinned: frozenset[str] = frozenset()  # experiments whose arm the request gave

    def drawn(self) -> list[tuple[str, str]]:
        """(experiment, arm) of each experiment the user was drawn into, in declaration order."""
        return [(name, arm) for name, arm in self.arms.items() if arm is not None and name not in self.pinned]


NO_ASSIGNMENT = Assignment({})
_UNPINNED: frozenset[str] = frozenset()
_new_tuple = tuple.__new__


class Assigner:
    """Draws a request's arms and holdout for one compiled plan."""

    __slots__ = ("_empty", "_experiments", "experiments", "holdout")

    def __init__(self, experiments: Mapping[str, ExperimentPlan], holdout: HoldoutPlan | None):
        self.experiments = tuple(experiments.values())
        self.holdout = holdout
        self._empty = Assignment(dict.fromkeys(experiments))  # no user, or held out: every arm unknown
        # What drawing needs of each experiment, unpacked once: its name, seed state, arms, and the
        # starts and ends of their ranges (sorted, and disjoint: the last start at or below a hash is
        # the only range that may hold it, as ``choose_arm`` finds it).
        self._experiments = tuple(
            (e.name, e.state, e.arms, tuple(start for start, _ in e.ranges), tuple(end for _, end in e.ranges))
            for e in self.experiments
        )

    def assign(self, user_id: str | None, supplied: Mapping[str, Any] | None = None) -> Assignment:
        """The request's assignment: drawn from ``user_id``, with arms ``supplied`` by experiment name pinned."""
        if user_id is None:
            return self._pinned(self._empty, supplied) if supplied else self._empty
        holdout_hash = None
        holdout = self.holdout
        if holdout is not None:
            holdout_hash = hash_after(holdout.state, user_id)
            if holdout_hash < holdout.share:
                return Assignment(self._empty.arms, True, {}, holdout_hash)
        arms: dict[str, str | None] = {}
        hashes: dict[str, float] = {}
        for name, state, names, starts, ends in self._experiments:  # ExperimentPlan.draw, inlined: the hot path
            value = hashes[name] = hash_after(state, user_id)
            index = bisect_right(starts, value) - 1
            arms[name] = names[index] if index >= 0 and value < ends[index] else None
        assignment = _new_tuple(Assignment, (arms, False, hashes, holdout_hash, _UNPINNED))  # skips __new__
        return self._pinned(assignment, supplied) if supplied else assignment

    def _pinned(self, assignment: Assignment, supplied: Mapping[str, Any]) -> Assignment:
        pinned = [experiment.name for experiment in self.experiments if experiment.name in supplied]
        if not pinned:
            return assignment
        arms = dict(assignment.arms)
        for name in pinned:
            value = supplied[name]
            arms[name] = value if type(value) is str else None
        return assignment._replace(arms=arms, pinned=frozenset(pinned))


# --- how an assignment was drawn: what explain shows ---


@dataclass(frozen=True, slots=True)
class ArmDraw:
    """How a user's arm of one experiment was drawn (or given)."""

    arm: str | None = field(metadata={"doc": "null outside the coverage, in the holdout, or without a user id"})
    how: str = field(
        metadata={
            "doc": "drawn (its hash fell in the arm's range), outside (in no arm's range), "
            "pinned (the request gave the arm), holdout (the user is held out) or no_user"
        }
    )
    hash: float | None = field(metadata={"doc": "the user id's hash under the seed, in [0, 1); null when not drawn"})
    seed: str
    ranges: dict[str, tuple[float, float]] = field(metadata={"doc": "each arm's half-open range of hashes"})
    coverage: float = field(metadata={"doc": "the share of users who enter, from 0 to 1"})
    phase: str = field(metadata={"doc": "a hash of the arms, weights, coverage and seed: results never mix phases"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "how": self.how,
            "hash": self.hash,
            "seed": self.seed,
            "ranges": {arm: list(bounds) for arm, bounds in self.ranges.items()},
            "coverage": self.coverage,
            "phase": self.phase,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmDraw:
        ranges = {arm: (bounds[0], bounds[1]) for arm, bounds in data["ranges"].items()}
        return cls(data["arm"], data["how"], data["hash"], data["seed"], ranges, data["coverage"], data["phase"])

    def render(self, name: str) -> str:
        where = f"seed {json.dumps(self.seed, ensure_ascii=False)}, coverage {_percent(self.coverage)}"
        where += f", phase {self.phase}"
        if self.how == "drawn":
            start, end = self.ranges[self.arm or ""]
            return f"experiment {name}: arm {self.arm} (hash {self.hash:.4f} in [{start:g}, {end:g}); {where})"
        if self.how == "outside":
            return f"experiment {name}: no arm (hash {self.hash:.4f} is outside the coverage; {where})"
        if self.how == "pinned":
            return f"experiment {name}: arm {self.arm} (given by the request, not drawn)"
        if self.how == "holdout":
            return f"experiment {name}: no arm (the user is in the holdout)"
        return f"experiment {name}: no arm (no user id to draw from)"


@dataclass(frozen=True, slots=True)
class HoldoutDraw:
    """Whether the user is in the ruleset's holdout, and how that was drawn."""

    in_holdout: bool = field(metadata={"doc": "true: every slot shows its default, and no rule was looked at"})
    hash: float | None = field(metadata={"doc": "the user id's hash under the seed; null without a user id"})
    share: float = field(metadata={"doc": "the holdout's share of users, from 0 to 1: a hash below it is held out"})
    seed: str

    def to_dict(self) -> dict[str, Any]:
        return {"in_holdout": self.in_holdout, "hash": self.hash, "share": self.share, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HoldoutDraw:
        return cls(data["in_holdout"], data["hash"], data["share"], data["seed"])

    def render(self) -> str:
        seed = json.dumps(self.seed, ensure_ascii=False)
        if self.hash is None:
            return f"holdout {_percent(self.share)}: not drawn (no user id)"
        if self.in_holdout:
            return (
                f"in holdout: hash {self.hash:.4f} < {_percent(self.share)} (seed {seed}): every slot shows its default"
            )
        return f"not in holdout: hash {self.hash:.4f} >= {_percent(self.share)} (seed {seed})"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.6g}%"


def arm_draws(experiments: Mapping[str, ExperimentPlan], assignment: Assignment) -> dict[str, ArmDraw]:
    """How each experiment's arm came about for one request."""
    draws = {}
    for name, experiment in experiments.items():
        arm = assignment.arms.get(name)
        value = assignment.hashes.get(name)
        if name in assignment.pinned:
            how = "pinned"
        elif assignment.holdout:
            how = "holdout"
        elif value is None:
            how = "no_user"
        else:
            how = "drawn" if arm is not None else "outside"
        ranges = dict(zip(experiment.arms, experiment.ranges, strict=True))
        draws[name] = ArmDraw(arm, how, value, experiment.seed, ranges, experiment.coverage, experiment.phase)
    return draws


def holdout_draw(holdout: HoldoutPlan | None, assignment: Assignment) -> HoldoutDraw | None:
    if holdout is None:
        return None
    return HoldoutDraw(assignment.holdout, assignment.holdout_hash, holdout.share, holdout.seed)
