"""The model-inputs stage: a model's input features, compiled like conditions.

A model file lists its inputs in canonical feature text (``views("Books",
24h)``, ``context.device == "mobile"``, ``user.age``). The runtime reads the
model files and hands their feature lists to this stage as data; each text is
parsed and type-checked in the ruleset's namespace and normalized exactly
(unknown stays unknown), so an input vector is computed from the same values
a decision already has: numbers as they are, booleans as 1/0, anything else
(unknown, or not a number) as NaN.

An attribute that only a model reads has no type from the rules; read bare,
it is a number input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, RulesError, error
from tailor.dsl.parser import parse_expression

from .check import Program, check_expression
from .features import FeatureRef
from .ir import Condition, Term, predicate_features, predicates, term_features
from .normalize import Normalizer
from .types import BOOL, NUMBER
from .values import condition_value, term_value
from .walk import walk

INPUT_KINDS = ("number", "duration", "bool")


@dataclass(frozen=True, slots=True)
class ModelInput:
    text: str
    condition: Condition | None  # a true/false input, in exact normal form
    term: Term | None  # a numeric input
    refs: tuple[FeatureRef, ...]  # what it reads


ModelInputs = dict[str, tuple[ModelInput, ...]]


def compile_model_inputs(
    program: Program, model_features: Mapping[str, Sequence[str]]
) -> tuple[ModelInputs, list[Diagnostic]]:
    """Each model's inputs from its feature texts; problems are reported on the model's declaration."""
    normalizer = Normalizer(program)
    compiled: ModelInputs = {}
    problems: list[Diagnostic] = []
    for model, texts in model_features.items():
        decl = program.models.get(model)
        inputs, found = _inputs(program, normalizer, model, texts, decl.span if decl is not None else None)
        compiled[model] = inputs
        problems.extend(found)
    return compiled, problems


def _inputs(
    program: Program, normalizer: Normalizer, model: str, texts: Sequence[str], at: Any
) -> tuple[tuple[ModelInput, ...], list[Diagnostic]]:
    inputs: list[ModelInput] = []
    problems: list[Diagnostic] = []

    def report(index: int, text: str, message: str) -> None:
        problems.append(error(f"model {model}: input {index + 1} ({text}): {message}", at, code="model-inputs"))

    for index, text in enumerate(texts):
        try:
            expr = parse_expression(text, f"<{model} input {index + 1}>")
        except RulesError as exc:
            report(index, text, exc.diagnostics[0].message)
            continue
        if any(isinstance(node, ast.Name) and node.name in program.models for node in walk(expr)):
            report(index, text, "a model's inputs cannot use models")
            continue
        kind, found = check_expression(program, expr)
        if found:
            report(index, text, found[0].message)
            continue
        if kind is None and isinstance(expr, ast.Attribute):
            kind = NUMBER  # read only by models: a number, NaN when it is not one
        if kind is None or kind.name not in INPUT_KINDS:
            report(index, text, f"inputs are numbers, durations or true/false, not {kind or 'an unknown type'}")
            continue
        if kind == BOOL:
            condition = normalizer.exact_condition(expr)
            refs = tuple(dict.fromkeys(r for p in predicates(condition) for r in predicate_features(p)))
            inputs.append(ModelInput(text, condition, None, refs))
        else:
            term = normalizer.term(expr)
            inputs.append(ModelInput(text, None, term, tuple(dict.fromkeys(term_features(term)))))
    return tuple(inputs), problems


def input_vector(inputs: Sequence[ModelInput], values: Mapping[str, Any]) -> list[float]:
    """One model row: numbers as they are, true/false as 1/0, anything else as NaN."""
    row = []
    for model_input in inputs:
        if model_input.condition is not None:
            value: Any = condition_value(model_input.condition, values)
            row.append(math.nan if value is None else float(value))
        else:
            value = term_value(model_input.term, values)
            row.append(float(value) if type(value) in (int, float) else math.nan)
    return row
