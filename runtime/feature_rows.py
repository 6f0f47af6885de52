"""A model's input features, written in the rules language, and the rows of numbers they compute.

Training compiles its features exactly as the server compiles a model's
inputs, and computes each row with the same ``input_vector``, so that a model
is served the rows it learned from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.compiler.model_inputs import ModelInput, input_vector
from tailor.compiler.pipeline import compile_ruleset
from tailor.compiler.plan import value_type
from tailor.compiler.values import Values
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.parser import parse_expression
from tailor.dsl.printer import expression_text

from .train_error import TrainError

FEATURES = "features"  # the name training compiles its features under, as the inputs of a model
FEATURE_HINT = (
    'a feature is a number or true/false: feature functions like views("Electronics", 24h), '
    'and user.X or context.X compared, like user.tier == "gold"; segments and models are not available'
)


def parse_feature(text: str) -> ModelInput:
    """A feature written in the rules language, compiled as the server compiles a model's inputs.

    Its text is canonical (the text the model file lists), and it is checked in
    an empty ruleset: feature functions, ``user.X`` and ``context.X`` (typed by
    how the feature uses them) and operators, but no segments or models.
    """
    source = text.strip()
    if not source:
        raise TrainError("a feature is empty", 'write one feature per line, like views("Electronics", 24h)')
    try:
        canonical = expression_text(parse_expression(source, "<feature>"))
    except RulesError as exc:
        first = exc.diagnostics[0]
        raise TrainError(
            f"feature {source} is not an expression of the rules language: {first.message}", first.hint
        ) from None
    compilation = compile_ruleset([], name=FEATURES, model_features={FEATURES: [canonical]}, until="model_inputs")
    if compilation.diagnostics:
        first = compilation.diagnostics[0]
        problem = first.message.removeprefix(f"model {FEATURES}: input 1 ({canonical}): ")
        raise TrainError(f"feature {source}: {problem}", first.hint or FEATURE_HINT)
    return compilation.model_inputs[FEATURES][0]


def parse_features(texts: Iterable[str]) -> list[ModelInput]:
    features = [parse_feature(text) for text in texts]
    seen: set[str] = set()
    for feature in features:
        if feature.text in seen:
            raise TrainError(f"feature {feature.text} is listed twice", "list each feature once")
        seen.add(feature.text)
    if not features:
        raise TrainError("no features to train on", "list them in a file, one per line, or separated by commas")
    return features


def read_feature_list(spec: str) -> list[str]:
    """Feature texts from a file (one per line; # starts a comment) or a comma-separated list."""
    path = Path(spec)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [part.strip() for part in split_top_level(spec) if part.strip()]


def split_top_level(text: str) -> list[str]:
    """Split on the commas outside strings, parentheses and brackets."""
    parts: list[str] = []
    depth = 0
    quoted = escaped = False
    start = 0
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True, slots=True)
class FeatureRows:
    """Model rows of compiled features: ``input_vector`` over ``Values``, as the server computes them.

    Unknown propagates as in rules; a row holds numbers as they are, true/false
    as 1/0 and unknown as NaN. Attributes take any value (``value_type`` with no
    attribute types); counters and ``since()`` are numbers.
    """

    features: tuple[ModelInput, ...]
    refs: dict[str, FeatureRef]  # every value the features read, by text
    types: dict[str, str]  # the type each value must have

    @staticmethod
    def of(features: Iterable[ModelInput]) -> FeatureRows:
        features = tuple(features)
        refs = {ref.text: ref for feature in features for ref in feature.refs}
        return FeatureRows(features, refs, {text: value_type(ref, {}) for text, ref in refs.items()})

    def store_refs(self) -> list[FeatureRef]:
        """What the store answers: everything but the context's attributes."""
        return [ref for ref in self.refs.values() if ref.kind is not FeatureKind.CONTEXT]

    def row(self, fetched: Mapping[str, Any], context: Mapping[str, Any], where: str = "") -> list[float]:
        """One row from what the store answered (by feature text) and the request's context."""
        values = Values(context, fetched, self.refs, self.types)
        try:
            return input_vector(self.features, values)
        except (TypeError, ValueError):  # an attribute of a type its feature cannot compute with
            for feature in self.features:
                try:
                    input_vector([feature], values)
                except (TypeError, ValueError):
                    read = ", ".join(f"{ref.text} = {values[ref.text]!r}" for ref in feature.refs)
                    raise TrainError(
                        f"feature {feature.text} cannot be computed from {read}{where}",
                        "send each attribute as the type its features use it as, like a number where one "
                        "is compared with numbers",
                    ) from None
            raise
