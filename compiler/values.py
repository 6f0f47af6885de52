"""Feature values as one decision sees them, and three-valued evaluation.

``Values`` is a dict from canonical feature text to a validated value (None
when unknown) that loads each feature on first use: context attributes from
the request, everything else from what the store fetched (or the caller
supplied), models through a callback. Loading at most once per decision is
what makes every feature and model cost at most one read.

A supplied value whose type does not fit how the ruleset uses the feature is
unknown, not an error: a page sent as 5 where rules compare it with strings
makes those rules not fire.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .features import FeatureKind, FeatureRef
from .ir import UNKNOWN, All, Any_, Atom, Condition, CondTerm, Const, Feature, Neg, Term, Test, Truth
from .normalize import arithmetic, compare


def validate(raw: Any, value_type: str) -> Any:
    """The value if it has the expected type, else None (unknown)."""
    if raw is None:
        return None
    if value_type == "number":
        if type(raw) is int or (type(raw) is float and not math.isnan(raw)):
            return raw
        return None
    if value_type == "string":
        return raw if type(raw) is str else None
    if value_type == "bool":
        return raw if type(raw) is bool else None
    return raw


class Values(dict):
    """Validated feature values by text, loaded on first use."""

    __slots__ = (
        "_arms",
        "_context",
        "_features",
        "_refs",
        "_run_model",
        "_types",
        "model_inputs",
        "models_failed",
        "models_run",
    )

    def __init__(
        self,
        context: Mapping[str, Any],
        features: Mapping[str, Any],
        refs: Mapping[str, FeatureRef],
        types: Mapping[str, str],
        run_model: Callable[[str, Values], Any] | None = None,
        arms: Mapping[str, Any] | None = None,
    ):
        """``arms``: each experiment's arm by name; None reads arms from ``features``, by the same names."""
        super().__init__()
        self._arms = arms
        self._context = context
        self._features = features
        self._refs = refs
        self._types = types
        self._run_model = run_model
        self.models_run: list[str] = []
        self.models_failed: list[str] = []  # models that failed or ran out of time: unknown
        self.model_inputs: dict[str, dict[str, float]] = {}  # what each model was given, for explain

    @property
    def sources(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """What the values load from: the request's context, and the fetched values under the supplied ones."""
        return self._context, self._features

    def __missing__(self, text: str) -> Any:
        ref = self._refs[text]
        kind = ref.kind
        if kind is FeatureKind.CONTEXT:
            raw = self._context.get(ref.name)
        elif kind is FeatureKind.MODEL:
            self.models_run.append(ref.name)
            if text in self._features or self._run_model is None:
                raw = self._features.get(text)  # supplied (a test or a preview): no inference
            else:
                raw = self._run_model(ref.name, self)
                if raw is None:
                    self.models_failed.append(ref.name)
        elif kind is FeatureKind.EXPERIMENT:
            raw = self._arms.get(ref.name) if self._arms is not None else self._features.get(text)
        elif kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
            raw = self._features.get(text, 0)
        else:
            raw = self._features.get(text)
        value = validate(raw, self._types.get(text, "number"))
        self[text] = value
        return value


def arith_value(op: str, left: Any, right: Any) -> Any:
    """Arithmetic where None is unknown; ``neg`` negates ``left``."""
    if left is None or right is None:
        return None
    if op == "neg":
        return -left
    result = arithmetic(op, left, right)
    return None if result is UNKNOWN else result


def term_value(term: Term, values: Mapping[str, Any]) -> Any:
    """A term's value; None when unknown."""
    if isinstance(term, Const):
        return None if term.value is UNKNOWN else term.value
    if isinstance(term, Feature):
        return values[term.ref.text]
    if isinstance(term, Neg):
        return arith_value("neg", term_value(term.operand, values), 0)
    if isinstance(term, CondTerm):
        return condition_value(term.condition, values)
    return arith_value(term.op, term_value(term.left, values), term_value(term.right, values))


def predicate_value(predicate: Atom | Test, values: Mapping[str, Any]) -> bool | None:
    """Three-valued truth of a predicate."""
    if isinstance(predicate, Atom):
        value = values[predicate.feature.text]
        right = predicate.value
    else:
        value = term_value(predicate.left, values)
        right = term_value(predicate.right, values) if predicate.right is not None else None
        if predicate.right is not None and right is None:
            return None
    if predicate.op == "missing":
        return value is None
    if predicate.op == "present":
        return value is not None
    if value is None:
        return None
    return compare(predicate.op, value, right)


def condition_value(condition: Condition, values: Mapping[str, Any]) -> bool | None:
    """Kleene three-valued truth of a normalized condition."""
    if isinstance(condition, Truth):
        return condition.value
    if isinstance(condition, Atom | Test):
        return predicate_value(condition, values)
    results = [condition_value(item, values) for item in condition.items]
    if isinstance(condition, All):
        if False in results:
            return False
        return None if None in results else True
    assert isinstance(condition, Any_)
    if True in results:
        return True
    return None if None in results else False
