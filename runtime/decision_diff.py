"""What a change to the rules does to decisions: two versions' answers to the same logged requests, compared.

One accumulator serves both ``tailor diff`` (both sides replayed from the
log) and shadow serving's ``GET /v1/shadow`` (the live side as served, the
candidate replayed), so the two report the same shape: ``DecisionDiff``.

A slot *changed* when its content or the rule that chose it differs (a
priority alone is not a change); a decision changed when any slot did. A
decision either side cannot replay (it needs a value the log lacks, see
``decision_replay``) is counted apart, per missing feature, and not compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler.ruleset_changes import DeclarationChange

from .decision_record import DecisionRecord
from .decision_replay import Replayed, Replayer, SlotAnswer

EXAMPLES = 3  # user ids kept per transition
TRANSITIONS = 50  # transitions per slot in the report, the most frequent first


@dataclass(frozen=True, slots=True)
class Transition:
    """Decisions whose slot went from one answer to another."""

    slot: str
    before: SlotAnswer = field(metadata={"doc": "(content, rule) the old version served"})
    after: SlotAnswer = field(metadata={"doc": "(content, rule) the new version serves"})
    count: int
    users: tuple[str, ...] = field(metadata={"doc": f"up to {EXAMPLES} example user ids"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": {"content": self.before[0], "rule": self.before[1]},
            "to": {"content": self.after[0], "rule": self.after[1]},
            "count": self.count,
            "users": list(self.users),
        }


@dataclass(frozen=True, slots=True)
class SlotDiff:
    slot: str
    decisions: int = field(metadata={"doc": "replayed decisions that asked for the slot"})
    changed: int
    transitions: tuple[Transition, ...] = field(metadata={"doc": "the most frequent first"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "decisions": self.decisions,
            "changed": self.changed,
            "transitions": [t.to_dict() for t in self.transitions],
        }


@dataclass(frozen=True, slots=True)
class RuleShift:
    """A rule that wins decisions it did not win before, or stops winning some it won."""

    rule: str
    slot: str
    decisions: int = field(metadata={"doc": "decisions it newly wins (or no longer wins)"})
    before: int = field(metadata={"doc": "decisions it won under the old version"})
    after: int = field(metadata={"doc": "decisions it wins under the new version"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "slot": self.slot,
            "decisions": self.decisions,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class DecisionDiff:
    """Two versions' answers to the same decisions, compared."""

    old: str = field(metadata={"doc": "the old version (or what was served, for shadow serving)"})
    new: str = field(metadata={"doc": "the new version"})
    decisions: int = field(metadata={"doc": "decisions replayed and compared"})
    changed: int = field(metadata={"doc": "decisions with any slot different"})
    slots: tuple[SlotDiff, ...]
    newly_winning: tuple[RuleShift, ...]
    no_longer_winning: tuple[RuleShift, ...]
    models_before: float = field(metadata={"doc": "model runs per decision, old version"})
    models_after: float = field(metadata={"doc": "model runs per decision, new version"})
    not_replayable: int = field(metadata={"doc": "decisions left out: a version needs a value the log lacks"})
    unlogged: dict[str, int] = field(metadata={"doc": "per feature (or model) the log lacked, the decisions it cost"})
    degraded: int = field(metadata={"doc": "replayed decisions that were degraded when served: unknowns stay unknown"})
    logged_versions: dict[str, int] = field(metadata={"doc": "decisions read, by the version that served them"})
    reproduced: int | None = field(
        metadata={"doc": "of the decisions the old version served, those its replay reproduced; null when none"}
    )
    reproducible: int = field(metadata={"doc": "decisions the old version served (and could replay)"})
    declarations: tuple[DeclarationChange, ...] = field(
        default=(), metadata={"doc": "the static side: declarations added, removed or changed"}
    )
    notes: tuple[str, ...] = field(default=(), metadata={"doc": "what a reader should know, said plainly"})

    @property
    def changed_share(self) -> float:
        return self.changed / self.decisions if self.decisions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "decisions": self.decisions,
            "changed": self.changed,
            "changed_share": self.changed_share,
            "slots": [slot.to_dict() for slot in self.slots],
            "rules": {
                "newly_winning": [shift.to_dict() for shift in self.newly_winning],
                "no_longer_winning": [shift.to_dict() for shift in self.no_longer_winning],
            },
            "models_per_decision": {
                "before": self.models_before,
                "after": self.models_after,
                "change": self.models_after - self.models_before,
            },
            "not_replayable": {"decisions": self.not_replayable, "features": dict(self.unlogged)},
            "degraded": self.degraded,
            "logged_versions": dict(self.logged_versions),
            "self_check": {"decisions": self.reproducible, "reproduced": self.reproduced},
            "declarations": [change.to_dict() for change in self.declarations],
            "notes": list(self.notes),
        }


_NOTHING: SlotAnswer = (None, None)


class DiffCounter:
    """Accumulates a ``DecisionDiff`` one record at a time, in memory bounded by the distinct answers.

    The hot part counts one pair (slot, old answer, new answer) per slot;
    everything else (per-slot counts, transitions, rules' wins) is derived
    from the pairs when the report is made.
    """

    def __init__(self, old: str, new: str):
        self.old = old
        self.new = new
        self.decisions = 0
        self.changed = 0
        self.not_replayable = 0
        self.degraded = 0
        self.models_before = 0
        self.models_after = 0
        self.reproducible = 0
        self.reproduced = 0
        self.unlogged: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, SlotAnswer, SlotAnswer]] = Counter()
        self.examples: dict[tuple[str, SlotAnswer, SlotAnswer], list[str]] = {}

    def add(self, record: DecisionRecord, before: Replayed, after: Replayed, *, served_by_old: bool = False) -> bool:
        """Count one decision; True when it changed. ``served_by_old``: ``before`` replays the version that
        served the record, so it must reproduce the log (the self-check)."""
        self.versions[record.version] += 1
        if before.unlogged or after.unlogged:
            self.not_replayable += 1
            self.unlogged.update(set(before.unlogged) | set(after.unlogged))
            return False
        self.decisions += 1
        old_slots, new_slots = before.slots, after.slots
        if served_by_old:
            self.reproducible += 1
            if all(old_slots.get(slot) == (served.content, served.rule) for slot, served in record.slots.items()):
                self.reproduced += 1
        if record.degraded:
            self.degraded += 1
        self.models_before += before.models_run
        self.models_after += after.models_run
        pairs = self.pairs
        if old_slots == new_slots:
            for slot, answer in old_slots.items():
                pairs[slot, answer, answer] += 1
            return False
        for slot in old_slots.keys() | new_slots.keys():
            key = (slot, old_slots.get(slot, _NOTHING), new_slots.get(slot, _NOTHING))
            pairs[key] += 1
            if key[1] != key[2]:
                examples = self.examples.setdefault(key, [])
                if len(examples) < EXAMPLES and record.user_id not in examples:
                    examples.append(record.user_id)
        self.changed += 1
        return True

    def report(self, declarations: tuple[DeclarationChange, ...] = ()) -> DecisionDiff:
        decided: Counter[str] = Counter()
        changed: Counter[str] = Counter()
        transitions: dict[str, Counter[tuple[SlotAnswer, SlotAnswer]]] = {}
        wins_before: Counter[tuple[str, str]] = Counter()
        wins_after: Counter[tuple[str, str]] = Counter()
        gained: Counter[tuple[str, str]] = Counter()
        lost: Counter[tuple[str, str]] = Counter()
        for (slot, was, now), count in self.pairs.items():
            decided[slot] += count
            if was[1] is not None:
                wins_before[slot, was[1]] += count
            if now[1] is not None:
                wins_after[slot, now[1]] += count
            if was == now:
                continue
            changed[slot] += count
            transitions.setdefault(slot, Counter())[was, now] += count
            if was[1] != now[1]:
                if was[1] is not None:
                    lost[slot, was[1]] += count
                if now[1] is not None:
                    gained[slot, now[1]] += count
        slots = tuple(
            SlotDiff(
                slot,
                decided[slot],
                changed[slot],
                tuple(
                    Transition(slot, was, now, count, tuple(self.examples.get((slot, was, now), ())))
                    for (was, now), count in sorted(
                        transitions.get(slot, Counter()).items(), key=lambda item: (-item[1], repr(item[0]))
                    )[:TRANSITIONS]
                ),
            )
            for slot in sorted(decided)
        )

        def shifts(moved: Counter[tuple[str, str]]) -> tuple[RuleShift, ...]:
            return tuple(
                RuleShift(rule, slot, count, wins_before[slot, rule], wins_after[slot, rule])
                for (slot, rule), count in sorted(moved.items(), key=lambda item: (-item[1], item[0]))
            )

        decisions = self.decisions
        return DecisionDiff(
            self.old,
            self.new,
            decisions,
            self.changed,
            slots,
            shifts(gained),
            shifts(lost),
            self.models_before / decisions if decisions else 0.0,
            self.models_after / decisions if decisions else 0.0,
            self.not_replayable,
            dict(self.unlogged.most_common()),
            self.degraded,
            dict(self.versions.most_common()),
            self.reproduced if self.reproducible else None,
            self.reproducible,
            declarations,
            tuple(self.notes()),
        )

    def notes(self) -> list[str]:
        """The log's versions against the old one, the self-check, and what could not be replayed."""
        found = []
        others = sum(count for version, count in self.versions.items() if version != self.old)
        if others:
            names = ", ".join(sorted(version for version in self.versions if version != self.old))
            found.append(
                f"{others} of {sum(self.versions.values())} logged decisions were served by another version "
                f"than the old one ({names}); they are replayed through both versions all the same"
            )
        if self.reproducible and self.reproduced != self.reproducible:
            found.append(
                f"self-check: the old version's replay reproduced {self.reproduced} of the "
                f"{self.reproducible} decisions it served; the log does not match these rules"
            )
        if self.not_replayable:
            found.append(
                f"{self.not_replayable} decisions are not replayable: a version needs a value the log lacks "
                "(see not_replayable); they are left out"
            )
        return found

    def _shifts(self, moved: Counter[tuple[str, str]]) -> tuple[RuleShift, ...]:
        return tuple(
            RuleShift(rule, slot, count, self.wins_before[slot, rule], self.wins_after[slot, rule])
            for (slot, rule), count in sorted(moved.items(), key=lambda item: (-item[1], item[0]))
        )


def replay_all(
    records: Iterable[DecisionRecord],
    old: Replayer,
    new: Replayer,
    limit: int | None = None,
    declarations: tuple[DeclarationChange, ...] = (),
) -> DecisionDiff:
    """Both versions' answers to every record (the first ``limit``), compared: ``tailor diff``."""
    counter = DiffCounter(old.version, new.version)
    same = old is new
    old_version = old.version
    for index, record in enumerate(records):
        if limit is not None and index >= limit:
            break
        before = old.replay(record)
        after = before if same else new.replay(record)
        counter.add(record, before, after, served_by_old=record.version == old_version)
    return counter.report(declarations)
