"""A model's input features: texts from the model file, compiled like conditions.

A model file lists its inputs in canonical feature text (``views("Books",
24h)``, ``context.device == "mobile"``). Each is parsed and type-checked in
the ruleset's namespace and normalized exactly (unknown stays unknown), so an
input vector is computed from the same values a decision already has:
numbers as they are, booleans as 1/0, unknown as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, RulesError, error
from tailor.dsl.parser import parse_expression
from tailor.dsl.source import Span

from .check import Program, check_expression, walk
from .features import FeatureRef
from .ir import Condition, Term, predicate_features, predicates, term_features
from .normalize import Normalizer
from .types import BOOL
from .values import condition_value, term_value


@dataclass(frozen=True, slots=True)
class ModelInput:
    text: str
    condition: Condition | None  # a true/false input, in exact normal form
    term: Term | None  # a numeric input
    refs: tuple[FeatureRef, ...]  # what it reads


def compile_inputs(
    program: Program, model: str, texts: Sequence[str], at: Span | None
) -> tuple[tuple[ModelInput, ...], list[Diagnostic]]:
    """The inputs of ``model``; problems are reported on the model's declaration."""
    normalizer = Normalizer(program)
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
        if kind is None or kind.name not in ("number", "duration", "bool"):
            report(index, text, f"inputs are numbers, durations or true/false, not {kind or 'an unknown type'}")
            continue
        if kind == BOOL:
            condition = normalizer._condition(expr, False, exact=True)
            refs = tuple(dict.fromkeys(r for p in predicates(condition) for r in predicate_features(p)))
            inputs.append(ModelInput(text, condition, None, refs))
        else:
            term = normalizer.term(expr)
            inputs.append(ModelInput(text, None, term, tuple(dict.fromkeys(term_features(term)))))
    return tuple(inputs), problems


def input_vector(inputs: Sequence[ModelInput], values: Mapping[str, Any]) -> list[float]:
    """One model row: numbers as they are, true/false as 1/0, unknown as NaN."""
    row = []
    for model_input in inputs:
        if model_input.condition is not None:
            value: Any = condition_value(model_input.condition, values)
        else:
            value = term_value(model_input.term, values)
        row.append(math.nan if value is None else float(value))
    return row
