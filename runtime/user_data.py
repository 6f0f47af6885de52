"""What a store holds about one user, as ``GET /v1/users/{id}/export`` shows it, and what erasing it removed.

Both stores answer ``FeatureStore.export`` and ``FeatureStore.erase`` with
these shapes, so an export or an erasure reads the same on either store:
counters decoded per event type, key and resolution, bucket by bucket, with
each bucket's start as epoch seconds; the experiments the user was exposed
to, and their converted value in each phase where they converted (what an
experiment's per-user totals are updated from); the join records of the
decisions served to them (what feedback is attributed to, with its marks)
and the feedback ids counted for them. Aggregates that do not name the user
(KPI counters, experiments' per-arm counters, models' counters) are not theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .feedback import FeedbackMark, Join, JoinArm


@dataclass(frozen=True, slots=True)
class Bucket:
    """The events of one series that fell in one bucket."""

    start: float = field(metadata={"doc": "the bucket's start: epoch seconds"})
    count: int
    total: float = field(metadata={"doc": "the sum of the events' values (1 each when they had none)"})

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "count": self.count, "total": self.total}


@dataclass(frozen=True, slots=True)
class SeriesData:
    """One counter series: an event type and key at one resolution, as the store keeps it."""

    event: str
    key: str = field(metadata={"doc": '"any" counts every key of the event type'})
    resolution: str = field(metadata={"doc": "m (minutes), h (hours) or d (days)"})
    buckets: tuple[Bucket, ...]
    last: float | None = field(metadata={"doc": "the latest event's time (day series only), epoch seconds"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "key": self.key,
            "resolution": self.resolution,
            "buckets": [bucket.to_dict() for bucket in self.buckets],
            "last": self.last,
        }


@dataclass(frozen=True, slots=True)
class ExposureData:
    """A first exposure to one phase of an experiment, remembered so the user is counted once."""

    experiment: str
    phase: str
    arm: str

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "phase": self.phase, "arm": self.arm}


@dataclass(frozen=True, slots=True)
class ExperimentValue:
    """The user's converted value in one phase of an experiment, kept to count them once among converters."""

    experiment: str
    phase: str
    value: float = field(metadata={"doc": "the sum of the user's conversion values in the phase"})

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "phase": self.phase, "value": self.value}


@dataclass(frozen=True, slots=True)
class JoinedSlot:
    """What one slot of a served decision showed, as its join record keeps it."""

    rule: str
    content: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "content": self.content}


@dataclass(frozen=True, slots=True)
class JoinData:
    """A served decision's join record: what feedback on it is attributed to."""

    decision_id: str
    version: str
    at: float = field(metadata={"doc": "when it was decided: epoch seconds"})
    slots: dict[str, JoinedSlot]
    experiments: tuple[JoinArm, ...] = field(metadata={"doc": "the experiments it exposed the user to"})
    models: dict[str, float] = field(metadata={"doc": "the score of each model the decision ran"})
    feedback: tuple[FeedbackMark, ...] = field(metadata={"doc": "feedback counted on it, first time per slot and type"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "version": self.version,
            "at": self.at,
            "slots": {slot: joined.to_dict() for slot, joined in self.slots.items()},
            "experiments": [x.to_dict() for x in self.experiments],
            "models": dict(self.models),
            "feedback": [mark.to_dict() for mark in self.feedback],
        }

    @classmethod
    def of(cls, join: Join) -> JoinData:
        """A join record as exported: all it keeps but the user's id."""
        slots = {slot: JoinedSlot(rule, content) for slot, (rule, content) in join.slots.items()}
        return cls(join.decision_id, join.version, join.at, slots, join.experiments, dict(join.models), join.feedback)


@dataclass(frozen=True, slots=True)
class UserData:
    """Everything one store holds about a user (the decision log aside)."""

    profile: dict[str, Any] = field(metadata={"doc": "profile attributes, as set with PUT /v1/users/{id}"})
    series: tuple[SeriesData, ...] = field(metadata={"doc": "behavioural counters, caps' impressions among them"})
    event_ids: tuple[str, ...] = field(metadata={"doc": "event ids seen in the last 24 h, kept to count retries once"})
    exposures: tuple[ExposureData, ...]
    experiment_values: tuple[ExperimentValue, ...]
    joins: tuple[JoinData, ...] = field(metadata={"doc": "decisions served to the user, still open to feedback"})
    feedback_ids: tuple[str, ...] = field(metadata={"doc": "ids of feedback items counted on those decisions"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "series": [series.to_dict() for series in self.series],
            "event_ids": list(self.event_ids),
            "exposures": [exposure.to_dict() for exposure in self.exposures],
            "experiment_values": [value.to_dict() for value in self.experiment_values],
            "joins": [join.to_dict() for join in self.joins],
            "feedback_ids": list(self.feedback_ids),
        }

    @property
    def empty(self) -> bool:
        return not (
            self.profile
            or self.series
            or self.event_ids
            or self.exposures
            or self.experiment_values
            or self.joins
            or self.feedback_ids
        )


@dataclass(frozen=True, slots=True)
class StoreErasure:
    """What a store deleted of one user: all zero when it held nothing (erasing twice is harmless)."""

    profile_attributes: int
    series: int = field(metadata={"doc": "counter series, each event type and key at each resolution"})
    event_ids: int
    exposures: int = field(metadata={"doc": "first exposures forgotten, each taken off its arm's count"})
    experiment_values: int = field(metadata={"doc": "converted values per experiment phase"})
    joins: int = field(metadata={"doc": "join records of decisions served to the user"})
    feedback_ids: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_attributes": self.profile_attributes,
            "series": self.series,
            "event_ids": self.event_ids,
            "exposures": self.exposures,
            "experiment_values": self.experiment_values,
            "joins": self.joins,
            "feedback_ids": self.feedback_ids,
        }

    @property
    def anything(self) -> bool:
        return any(self.to_dict().values())


def decoded_series(
    event: str, key: str, resolution: str, width: int, cells: Sequence[tuple[int, int, float]], last: float | None
) -> SeriesData:
    """A series from its ``(bucket, count, total)`` cells, oldest first."""
    buckets = tuple(Bucket(float(bucket * width), int(count), float(total)) for bucket, count, total in sorted(cells))
    return SeriesData(event, key, resolution, buckets, last)
