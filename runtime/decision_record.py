"""What one served decision was, as the decision log, feedback joins and KPIs keep it.

A record is built only when something listens (``DecisionService.listen``),
after the response is ready, so deciding costs nothing more without a log.
It holds what a replay needs to be exact: the request's context, the feature
values the decision read (store features as fetched, under those the request
supplied), and the models' scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tailor.compiler.decide import Outcomes
from tailor.compiler.exposure import exposed
from tailor.compiler.features import FeatureKind

if TYPE_CHECKING:
    from tailor.compiler.features import FeatureRef

    from .service import Served

DEFAULT_RULE = "default"  # the rule name a slot's default is recorded and counted under


@dataclass(frozen=True, slots=True)
class SlotServed:
    """What one requested slot showed, and which rule (or the slot's default) chose it."""

    content: str | None = field(metadata={"doc": "null when the slot showed nothing"})
    rule: str | None = field(metadata={"doc": '"default" for the slot\'s default; null when nothing was shown'})
    priority: int | None = field(metadata={"doc": "the winning rule's priority; null for a default or nothing"})

    def to_dict(self) -> dict[str, Any]:
        return {"content": self.content, "rule": self.rule, "priority": self.priority}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotServed:
        return cls(data["content"], data["rule"], data["priority"])


NOTHING_SERVED = SlotServed(None, None, None)  # shared: a slot that showed nothing


@dataclass(frozen=True, slots=True)
class RecordedValues:
    """Where a version's feature values go in its records, computed once per version (``Served``):
    a decision's values are sorted by lookups, not by each one's kind."""

    models: dict[str, str]  # a model's feature text -> the model's name
    features: frozenset[str]  # the texts recorded under "features": store features (context ones are not)

    @classmethod
    def of(cls, features: Mapping[str, FeatureRef]) -> RecordedValues:
        return cls(
            {text: ref.name for text, ref in features.items() if ref.kind is FeatureKind.MODEL},
            frozenset(
                text for text, ref in features.items() if ref.kind not in (FeatureKind.MODEL, FeatureKind.CONTEXT)
            ),
        )


@dataclass(frozen=True, slots=True)
class ExperimentArm:
    """The arm one experiment drew for the decision's user, in the experiment's current phase."""

    experiment: str
    arm: str
    phase: str = field(metadata={"doc": "a hash of the arms, weights, coverage and seed: results never mix phases"})
    exposed: bool = field(
        metadata={"doc": "the decision evaluated a rule that reads the experiment (see compiler/exposure.py)"}
    )
    slots: tuple[str, ...] = field(
        default=(),
        metadata={"doc": "the slots where it did: feedback on them counts for the arm in the experiment's results"},
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "arm": self.arm,
            "phase": self.phase,
            "exposed": self.exposed,
            "slots": list(self.slots),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentArm:
        return cls(data["experiment"], data["arm"], data["phase"], data["exposed"], tuple(data.get("slots", ())))


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision served by ``/v1/decide`` (explain and rule tests are not served decisions)."""

    decision_id: str
    at: float = field(metadata={"doc": "when it was decided: epoch seconds"})
    user_id: str
    ruleset: str
    version: str
    slots: dict[str, SlotServed]
    context: dict[str, Any]
    features: dict[str, Any] = field(metadata={"doc": "the feature values the decision read, by canonical text"})
    models: dict[str, float | None] = field(metadata={"doc": "each model run, with its score (null: it failed)"})
    degraded: bool
    reason: str | None = field(metadata={"doc": "why the decision was degraded: timeout, store_error or model"})
    experiments: tuple[ExperimentArm, ...] = field(
        default=(),
        metadata={"doc": "the arm of each experiment the user was drawn into (not those outside it, nor pinned arms)"},
    )
    holdout: bool = field(default=False, metadata={"doc": "the user is in the holdout: every slot showed its default"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "at": self.at,
            "user_id": self.user_id,
            "ruleset": self.ruleset,
            "version": self.version,
            "slots": {slot: served.to_dict() for slot, served in self.slots.items()},
            "context": self.context,
            "features": self.features,
            "models": self.models,
            "degraded": self.degraded,
            "reason": self.reason,
            "experiments": [entry.to_dict() for entry in self.experiments],
            "holdout": self.holdout,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        return cls(
            data["decision_id"],
            data["at"],
            data["user_id"],
            data["ruleset"],
            data["version"],
            {slot: SlotServed.from_dict(served) for slot, served in data["slots"].items()},
            dict(data["context"]),
            dict(data["features"]),
            dict(data["models"]),
            data["degraded"],
            data["reason"],
            tuple(ExperimentArm.from_dict(entry) for entry in data.get("experiments", ())),
            data.get("holdout", False),
        )

    @classmethod
    def of(
        cls,
        decision_id: str,
        at: float,
        user_id: str,
        context: Mapping[str, Any],
        served: Served,
        outcomes: Outcomes,
        reason: str | None,
    ) -> DecisionRecord:
        """The record of a decision the service just made on ``served``."""
        decision = outcomes.decision
        priorities = served.priorities
        slots: dict[str, SlotServed] = {}
        for slot, answer in decision.slots.items():
            if answer.content is None:
                slots[slot] = NOTHING_SERVED
            elif answer.rule is None:
                slots[slot] = SlotServed(answer.content, DEFAULT_RULE, None)
            else:
                slots[slot] = SlotServed(answer.content, answer.rule, priorities.get(answer.rule))
        read = outcomes.read
        features = {text: read.get(text) for text in decision.fetched}
        models: dict[str, float | None] = {}
        values = outcomes.known
        if values is not None:
            recorded = served.recorded
            model_names, stored = recorded.models, recorded.features
            for text, value in values.items():
                if text in stored:
                    features[text] = value
                elif (name := model_names.get(text)) is not None:
                    models[name] = value
        assignment = outcomes.assignment
        experiments: tuple[ExperimentArm, ...] = ()
        if assignment.hashes:
            exposed_to = exposed(served.decider, context, outcomes)
            planned = served.ruleset.plan.experiments
            experiments = tuple(
                ExperimentArm(name, arm, planned[name].phase, name in exposed_to, exposed_to.get(name, ()))
                for name, arm in assignment.drawn()
            )
        return cls(
            decision_id,
            at,
            user_id,
            decision.ruleset,
            decision.version,
            slots,
            dict(context),
            features,
            models,
            decision.degraded,
            reason if reason is not None else ("model" if decision.degraded else None),
            experiments,
            assignment.holdout,
        )
