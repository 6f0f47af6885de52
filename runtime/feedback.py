"""Feedback on served decisions: what an item is, what its decision's join record holds, and
how an item is judged against it.

A served decision leaves a join record in the store (``Join``) for the
attribution window: who it was for, the ruleset version, when, and per slot
the rule and the content shown. A feedback item names a decision and a slot;
joined to the record, it becomes a ``Tally`` the store counts once, and a
behavioural event keyed by the content's name. The stores do the counting
(atomically, so several server processes agree); the judging is here, once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

from .decision_record import DecisionRecord
from .events import Event

DEFAULT_ATTRIBUTION = 7 * 86400.0  # seconds a decision's join record is kept, and feedback on it counted
MAX_FEEDBACK = 1000  # items in one POST /v1/feedback
FEEDBACK_TYPE = r"^[a-z][a-z0-9_]*$"  # impression, click, conversion, or any custom lower-case word

IMPRESSION = "impression"
#: The KPI measure each feedback type adds to; other types become events only.
MEASURES = {IMPRESSION: "impressions", "click": "clicks", "conversion": "conversions"}
DECISIONS = "decisions"
VALUE = "value"  # the sum of conversions' values
CONVERSION = "conversion"
ArmKey = tuple[str, str, str]  # experiment, phase, arm


class Impressions(Enum):
    """Where impressions come from: feedback items (the default), or every served slot."""

    FEEDBACK = "feedback"
    SERVED = "served"


class Outcome(Enum):
    """What became of one feedback item."""

    ACCEPTED = "accepted"  # counted, and recorded as an event
    DUPLICATE = "duplicate"  # counted before: the same (decision, slot, type), or the same id and payload
    IGNORED = "ignored"  # an impression while impressions are counted as served
    CONFLICT = "conflict"  # its id was counted before with another payload (or decision): the first stands
    UNKNOWN_DECISION = "unknown_decision"  # never served, or its join record is gone
    UNKNOWN_SLOT = "unknown_slot"  # the decision showed nothing in that slot
    EXPIRED = "expired"  # it happened after the decision's attribution window
    WRONG_USER = "wrong_user"  # its user_id is not the decision's user
    NO_CONSENT = "no_consent"  # its user declined personalization: dropped, never stored


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One item of ``POST /v1/feedback``, as its request model checked it."""

    decision_id: str
    slot: str
    type: str
    value: float | None = None
    ts: float | None = None
    id: str | None = None
    user_id: str | None = None
    consent: bool | None = None  # False: the user declined, and the item is dropped

    def fingerprint(self) -> str:
        """What tells a retry (same payload) from a reuse of its id (another one)."""
        text = "\x1f".join(map(repr, (self.decision_id, self.slot, self.type, self.value, self.ts, self.user_id)))
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class JoinArm(NamedTuple):
    """An experiment the decision exposed its user to: feedback on ``slots`` counts for ``arm`` in ``phase``."""

    experiment: str
    arm: str
    phase: str
    slots: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "arm": self.arm, "phase": self.phase, "slots": list(self.slots)}


class FeedbackMark(NamedTuple):
    """Feedback of one type on one slot of a decision, counted: kept in its join record, the first time only."""

    slot: str
    type: str
    ts: float  # when it happened: the item's ts, else when it was received

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "type": self.type, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class Join:
    """A served decision's join record: what feedback on it is attributed to."""

    decision_id: str
    user_id: str
    version: str
    at: float = field(metadata={"doc": "when it was decided: epoch seconds"})
    slots: Mapping[str, tuple[str, str]] = field(
        metadata={"doc": "slot -> [rule, content], for the slots that showed something"}
    )
    experiments: tuple[JoinArm, ...] = field(
        default=(), metadata={"doc": "the experiments it exposed its user to, and on which slots"}
    )
    models: Mapping[str, float] = field(
        default_factory=dict, metadata={"doc": "the score of each model the decision ran (live AUC, calibration)"}
    )
    feedback: tuple[FeedbackMark, ...] = field(
        default=(), metadata={"doc": "each (slot, type) of feedback counted on it, first time only (training labels)"}
    )

    def arms_of(self, slot: str) -> tuple[ArmKey, ...]:
        """(experiment, phase, arm) of each experiment whose results feedback on ``slot`` counts in."""
        return tuple((x.experiment, x.phase, x.arm) for x in self.experiments if slot in x.slots)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "user_id": self.user_id,
            "version": self.version,
            "at": self.at,
            "slots": {slot: list(shown) for slot, shown in self.slots.items()},
            "experiments": [x.to_dict() for x in self.experiments],
            "models": dict(self.models),
            "feedback": [mark.to_dict() for mark in self.feedback],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Join:
        return cls(
            data["decision_id"],
            data["user_id"],
            data["version"],
            data["at"],
            {slot: (rule, content) for slot, (rule, content) in data["slots"].items()},
            tuple(
                JoinArm(x["experiment"], x["arm"], x["phase"], tuple(x["slots"])) for x in data.get("experiments", ())
            ),
            dict(data.get("models", {})),
            tuple(FeedbackMark(m["slot"], m["type"], m["ts"]) for m in data.get("feedback", ())),
        )

    @property
    def day(self) -> str:
        """The UTC day its KPIs are counted under (feedback on it too, whenever it comes)."""
        return utc_day(self.at)

    @classmethod
    def of(cls, record: DecisionRecord) -> Join:
        slots = {
            slot: (served.rule, served.content)
            for slot, served in record.slots.items()
            if served.content is not None and served.rule is not None
        }
        experiments = tuple(
            JoinArm(entry.experiment, entry.arm, entry.phase, tuple(slot for slot in entry.slots if slot in slots))
            for entry in record.experiments
            if entry.exposed
        )
        models = {name: score for name, score in record.models.items() if score is not None}
        return cls(record.decision_id, record.user_id, record.version, record.at, slots, experiments, models)


def utc_day(at: float) -> str:
    return _day_text(int(at // 86400))


@functools.lru_cache(maxsize=64)
def _day_text(day: int) -> str:
    """A UTC day's text by its number since the epoch: a feedback batch asks for a few days many times."""
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Tally:
    """A joined item for the store to count once: deduplicated by its id, else by (decision, slot, type)."""

    decision_id: str
    slot: str
    type: str
    id: str | None
    fingerprint: str
    version: str
    day: str
    rule: str
    content: str
    measure: str | None  # the KPI measure it adds 1 to; None for a custom type
    value: float  # what it adds to VALUE: a conversion's value, else 0
    user_id: str = ""  # the decision's user: a conversion counts once per user in an experiment's results;
    # a store also indexes the item's id under it, for erasure
    arms: tuple[ArmKey, ...] = ()  # (experiment, phase, arm) whose results it also counts in


@dataclass(frozen=True, slots=True)
class ItemResult:
    """An item that was not counted, and why."""

    index: int = field(metadata={"doc": "its position in the batch, from 0"})
    status: Outcome

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "status": self.status.value}


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """The answer to a batch: counts, and each item that was neither accepted nor a duplicate."""

    accepted: int = field(metadata={"doc": "items counted now"})
    duplicates: int = field(metadata={"doc": "items counted before (a retry): not counted again"})
    ignored: int = field(metadata={"doc": "impressions sent while the server counts served slots as impressions"})
    results: tuple[ItemResult, ...] = field(
        metadata={"doc": "the items not counted for another reason, with why; nothing else in the batch is lost"}
    )
    dropped_no_consent: int = field(
        default=0,
        metadata={"doc": "items for users without consent, or on decisions made without it: dropped, never stored"},
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "results": [result.to_dict() for result in self.results],
            "dropped_no_consent": self.dropped_no_consent,
        }

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> FeedbackResult:
        problems = tuple(
            ItemResult(index, outcome)
            for index, outcome in enumerate(outcomes)
            if outcome not in (Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.IGNORED)
        )
        return cls(
            sum(o is Outcome.ACCEPTED for o in outcomes),
            sum(o is Outcome.DUPLICATE for o in outcomes),
            sum(o is Outcome.IGNORED for o in outcomes),
            problems,
            sum(o is Outcome.NO_CONSENT for o in outcomes),
        )


@dataclass(slots=True)
class Judged:
    """A batch judged against its join records: an outcome per item, the tallies for the store to count
    (``counted[i]`` is the index of ``tallies[i]``'s item), and each tallied item's event."""

    outcomes: list[Outcome | None]  # None: for the store to say (accepted, duplicate or conflict)
    tallies: list[Tally]
    counted: list[int]
    events: list[Event]


def judge(
    items: Sequence[FeedbackItem],
    joins: Mapping[str, Join],
    *,
    attribution: float,
    impressions: Impressions,
    now: float,
) -> Judged:
    """Join each item to its decision; what the store must count, and the events the counted items make.

    An item's time is its ``ts``, else ``now``; it expires once the decision is
    older than ``attribution`` by then. Events carry an id made of the item's
    identity, so recording them again after a failed batch never counts one twice.
    """
    judged = Judged([], [], [], [])
    for index, item in enumerate(items):
        outcome = _problem(item, joins.get(item.decision_id), attribution, impressions, now)
        judged.outcomes.append(outcome)
        if outcome is not None:
            continue
        join = joins[item.decision_id]
        rule, content = join.slots[item.slot]
        measure = MEASURES.get(item.type)
        value = item.value if item.type == "conversion" and item.value is not None else 0.0
        fingerprint = item.fingerprint()
        judged.tallies.append(
            Tally(
                item.decision_id,
                item.slot,
                item.type,
                item.id,
                fingerprint,
                join.version,
                join.day,
                rule,
                content,
                measure,
                value,
                join.user_id,
                join.arms_of(item.slot),
            )
        )
        judged.counted.append(index)
        event_id = f"fb:{item.decision_id}:{item.slot}:{item.type}:{item.id or ''}"
        ts = item.ts if item.ts is not None else now
        judged.events.append(Event(join.user_id, item.type, content, item.value, ts, event_id))
    return judged


def _problem(
    item: FeedbackItem, join: Join | None, attribution: float, impressions: Impressions, now: float
) -> Outcome | None:
    """Why ``item`` cannot be counted; None when the store is to count it."""
    if item.type == IMPRESSION and impressions is Impressions.SERVED:
        return Outcome.IGNORED
    if join is None:
        return Outcome.UNKNOWN_DECISION
    if item.user_id is not None and item.user_id != join.user_id:
        return Outcome.WRONG_USER
    if item.slot not in join.slots:
        return Outcome.UNKNOWN_SLOT
    when = item.ts if item.ts is not None else now
    if when > join.at + attribution:
        return Outcome.EXPIRED
    return None


def served_impressions(join: Join) -> list[Event]:
    """The impression events of a decision's slots, when served slots count as impressions."""
    return [
        Event(join.user_id, IMPRESSION, content, None, join.at, f"fb:{join.decision_id}:{slot}:{IMPRESSION}:")
        for slot, (_, content) in join.slots.items()
    ]
