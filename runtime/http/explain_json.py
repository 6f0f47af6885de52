"""An explanation as the API sends it: file names relative to the ruleset, and numbers JSON cannot hold.

JSON has no infinity and no NaN (orjson writes them as null), yet a total of
very large values is infinite, and null already means unknown. So values
that are not finite numbers are written as the strings ``"inf"``, ``"-inf"``
and ``"nan"``. In ``model_inputs`` NaN is how a model is told an input is
unknown, so there it stays null.
"""

from __future__ import annotations

import math
from typing import Any

from ..ruleset_root import RulesetRoot

NON_FINITE = ("inf", "-inf", "nan")


def json_number(value: Any) -> Any:
    """``value`` with every float that is not finite (in lists too) written as its name."""
    if type(value) is float and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if type(value) is list:
        return [json_number(item) for item in value]
    return value


def explanation_json(explain: dict[str, Any], root: RulesetRoot) -> dict[str, Any]:
    """``Explanation.to_dict()``'s output, made fit to send (in place: it is built for one response)."""
    for trace in explain["slots"].values():
        for candidate in trace["candidates"]:
            candidate["file"] = root.name(candidate["file"])
    explain["values"] = {text: json_number(value) for text, value in explain["values"].items()}
    explain["models"] = {name: json_number(score) for name, score in explain["models"].items()}
    explain["model_inputs"] = {
        model: {text: _model_input(value) for text, value in inputs.items()}
        for model, inputs in explain["model_inputs"].items()
    }
    return explain


def _model_input(value: Any) -> Any:
    """NaN, an unknown input, is written as null (by orjson); an infinity by its name."""
    return value if type(value) is float and math.isnan(value) else json_number(value)
