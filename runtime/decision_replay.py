"""A logged decision decided again, by any version of the rules, from what the log holds alone.

A ``DecisionRecord`` holds the request (user, context, the slots asked for)
and every value the decision read: the store features stage 0 left to
fetch (as fetched, under those the request supplied), those stage 2 read,
and the models' scores. Replayed through the very version that made it, the
same flow (``decision_flow.begin``/``finish``, without a store) gets the same
values and so the same answer: experiment arms and the holdout are drawn
again from the user id, a degraded decision's unknowns stay unknown, and a
model's score is the logged one, never a new inference.

Another version may read what the decision never read. A store feature its
candidates need that the logged version did not fetch is not in the log, and
guessing it (a count of 0, an unknown) would be a silent lie, so the replay
names it: ``Replayed.unlogged`` lists what was missing, and the decision is
not replayable for that version. A model is different: its inputs are store
features the candidates reading it need, so once those are all logged, a
model the logged decision never ran (or one whose file changed) is run on
them, and scores exactly what serving would have scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from tailor.compiler.decide import NOTHING, Decider, SlotDecision
from tailor.compiler.features import FeatureKind

from . import decision_flow
from .decision_record import DEFAULT_RULE, DecisionRecord
from .inference import ModelRunner

NEEDED_SETS = 8192  # sets of needed features kept; as many as the decider keeps tuples, and some
SlotAnswer = tuple[str | None, str | None]  # (content, rule): "default" for a slot's default, None for nothing


class Replayed(NamedTuple):
    """One version's answer to one logged request. A named tuple: built twice per replayed record."""

    slots: dict[str, SlotAnswer]
    models_run: int  # models the decision read (logged scores count: the live decision ran them)
    unlogged: tuple[str, ...] = ()  # store features (by text) it needed that the log lacks


def logged(record: DecisionRecord) -> Replayed:
    """What the record says was served: the live side of a shadow diff."""
    return Replayed({slot: (served.content, served.rule) for slot, served in record.slots.items()}, len(record.models))


def _answer(answer: SlotDecision) -> SlotAnswer:
    content = answer.content
    return (content, answer.rule if answer.rule is not None else (DEFAULT_RULE if content is not None else None))


class Replayer:
    """Replays records through one version: its ``Decider``, its models, and which logged scores it trusts."""

    __slots__ = ("_answers", "_arm_texts", "_model_texts", "_needed_sets", "decider", "models")

    def __init__(self, decider: Decider, logged_models: Mapping[str, str] | None = None):
        """``logged_models``: each model's version as the log's scores came from it (default: this version's
        own, the log's server); a model of another version, or missing from the log, is run on logged inputs."""
        self.decider = decider
        ruleset = decider.ruleset
        features = ruleset.plan.features
        own = {name: model.version for name, model in ruleset.models.items()}
        logged_models = own if logged_models is None else logged_models
        self._model_texts = {
            ref.name: text
            for text, ref in features.items()
            if ref.kind is FeatureKind.MODEL and ref.name in own and own[ref.name] == logged_models.get(ref.name)
        }
        # Arms are drawn again from the user id: a logged arm among the values would pin it.
        self._arm_texts = frozenset(text for text, ref in features.items() if ref.kind is FeatureKind.EXPERIMENT)
        self.models = ModelRunner(ruleset) if ruleset.models else None
        # Each answer a decision can give is one shared object (the decider's choices): by identity, its pair.
        self._answers = {id(choice): _answer(choice) for choice in (*decider.choices, NOTHING)}
        self._needed_sets: dict[int, tuple[tuple[str, ...], frozenset[str]]] = {}

    @property
    def version(self) -> str:
        return self.decider.ruleset.version

    def replay(self, record: DecisionRecord) -> Replayed:
        """The version's answer to the record's request, from the record's values alone."""
        values = self._values(record)
        pending = decision_flow.begin(self.decider, record.user_id, record.context, record.slots, values, store=False)
        needed = pending.needed
        unlogged = () if self._needed_set(needed) <= values.keys() else tuple(t for t in needed if t not in values)
        outcomes = decision_flow.finish(pending, None, self.models)
        decision = outcomes.decision
        answers = self._answers
        slots = {slot: answers.get(id(answer)) or _answer(answer) for slot, answer in decision.slots.items()}
        return Replayed(slots, len(decision.models_run), unlogged)

    def _needed_set(self, needed: tuple[str, ...]) -> frozenset[str]:
        """``needed`` as a set: the decider keeps one tuple per set of surviving candidates, so by identity."""
        sets = self._needed_sets
        entry = sets.get(id(needed))
        if entry is None or entry[0] is not needed:
            if len(sets) >= NEEDED_SETS:
                sets.clear()
            entry = sets[id(needed)] = (needed, frozenset(needed))
        return entry[1]

    def _values(self, record: DecisionRecord) -> Mapping[str, Any]:
        """The record's feature values, with the scores it trusts under this version's texts for them."""
        features = record.features
        arms = self._arm_texts
        if arms and not arms.isdisjoint(features):
            features = {text: value for text, value in features.items() if text not in arms}
        models = record.models
        texts = self._model_texts
        if not models or not texts:
            return features
        values = dict(features)
        for name, score in models.items():
            text = texts.get(name)
            if text is not None:
                values[text] = score
        return values
