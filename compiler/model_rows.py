"""A model's input row as generated code: one function per model, from the decision's raw values.

``input_vector`` computes a row from ``Values``, which loads each feature on
first use through one generic method: for a model of a dozen inputs most of
the cost of a decision around its inference. The function written here reads
each input's features straight from the request's context and the fetched
values, checks each value's type in place (what ``values.validate`` does for
the feature's type), and computes every input with the stage-2 check
writer's expressions, which give conditions and arithmetic the same
three-valued meaning as ``values.condition_value`` and ``values.term_value``.
So it returns exactly the row ``input_vector`` would (the tests compare them),
with NaN for unknown (or a NaN the arithmetic made): always ``math.nan``
itself, so that rows with unknowns compare equal as cache keys.

A model whose inputs read experiments gets no function: its rows come from
``input_vector``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .codegen_checks import CheckWriter
from .codegen_names import Namer
from .codegen_source import CodeWriter
from .features import FeatureKind, FeatureRef
from .ir import Feature
from .model_inputs import ModelInput
from .values import arith_value

Row = Callable[[Mapping[str, Any], Mapping[str, Any]], list[float]]  # (context, fetched) -> the model's row

_CHECKS = {  # a raw value ``x`` of the feature's type, else None: values.validate, written out per type
    "number": "x if type(x) is int or (type(x) is float and x == x) else None",
    "string": "x if type(x) is str else None",
    "bool": "x if type(x) is bool else None",
}
_READABLE = (FeatureKind.EXPERIMENT, FeatureKind.MODEL)  # what a row cannot read without Values


def row_source(model: str, inputs: Sequence[ModelInput], types: Mapping[str, str]) -> str | None:
    """The module defining ``row(context, fetched)`` for ``model``; None when an input reads an experiment.

    ``types`` gives each feature's value type by text (``plan.value_type``); a feature not in it is a number.
    """
    refs: dict[str, FeatureRef] = {}
    for model_input in inputs:
        for ref in model_input.refs:
            if ref.kind in _READABLE:
                return None
            refs.setdefault(ref.text, ref)
    namer = Namer()
    names = {text: namer.name(text, "feature", index) for index, text in enumerate(refs)}
    checks = CheckWriter(names)
    items = []
    for model_input in inputs:
        if model_input.condition is not None:
            items.append(f"nan if (t := {checks.truth_function(model_input.condition)}(V)) is None else float(t)")
        else:
            term = model_input.term
            value = f"V[{term.ref.text!r}]" if isinstance(term, Feature) else checks.term_expression(term)
            items.append(f"float(v) if (type(v := {value}) is int or type(v) is float) and v == v else nan")
    code = CodeWriter()
    code.line(f"# The input row of model {model!r}: generated code, do not edit.")
    for function in checks.functions:
        code.line()
        code.lines.extend(function)
    code.line()
    code.line("def row(context, fetched):")
    code.indent()
    code.line(f'"""The {len(inputs)} inputs of {model}, in column order: numbers, true/false as 1/0, NaN unknown."""')
    code.line("V = {")
    code.indent()
    for text, ref in refs.items():
        if ref.kind is FeatureKind.CONTEXT:
            read = f"context.get({ref.name!r})"
        elif ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
            read = f"fetched.get({text!r}, 0)"
        else:
            read = f"fetched.get({text!r})"
        check = _CHECKS.get(types.get(text, "number"), "x")
        code.line(f"{text!r}: {check.replace('type(x)', f'type(x := {read})', 1) if check != 'x' else read},")
    code.outdent()
    code.line("}")
    code.line("return [")
    code.indent()
    for item, model_input in zip(items, inputs, strict=True):
        code.line(f"{item},  # {model_input.text}")
    code.outdent()
    code.line("]")
    code.outdent()
    return code.source()


def row_function(model: str, inputs: Sequence[ModelInput], types: Mapping[str, str]) -> Row | None:
    """``row_source``'s function, ready to call; None when the model has none."""
    source = row_source(model, inputs, types)
    if source is None:
        return None
    namespace: dict[str, Any] = {"nan": math.nan, "arith_value": arith_value, "__name__": f"tailor_row_{model}"}
    exec(compile(source, f"<row {model}>", "exec"), namespace)
    return namespace.pop("row")  # out of its own globals: no cycle, so freed without the garbage collector
