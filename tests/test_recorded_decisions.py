"""Decisions are byte-identical to a recorded set: refactoring must not change what is served.

The record (tests/golden/decisions.json) holds its inputs as well as its
answers: generated rulesets with requests, the benchmark's 1,000-rule
workload, and the retail example with its click model. A change that is meant
to alter decisions re-records it with ``python tests/golden/record_decisions.py``
and says why in its commit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import tailor

ROOT = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).resolve().parent / "golden" / "decisions.json"


def _scrub(value: Any) -> Any:
    """JSON cannot hold NaN or infinities faithfully in every reader: name them."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _decision(engine: tailor.Engine, request: dict) -> dict:
    decision = engine.decide(
        user_id="u1", context=request["context"], features=request["features"], slots=request["slots"]
    )
    return _scrub(
        {
            "slots": {slot: answer.to_dict() for slot, answer in decision.slots.items()},
            "models_run": list(decision.models_run),
            "fetched": sorted(decision.fetched),
            "degraded": decision.degraded,
        }
    )


def decide_all(cases: dict[str, list[dict]]) -> dict[str, list[list[dict]]]:
    decisions: dict[str, list[list[dict]]] = {}
    for group, entries in cases.items():
        decisions[group] = []
        for entry in entries:
            path = entry.get("path")
            ruleset = tailor.load(ROOT / path) if path else tailor.loads(entry["text"], name="shop")
            engine = tailor.Engine(ruleset)
            decisions[group].append([_decision(engine, request) for request in entry["requests"]])
    return decisions


def test_decisions_match_the_record() -> None:
    record = json.loads(RECORDED.read_text(encoding="utf-8"))
    expected = record["decisions"]
    got = decide_all(record["cases"])
    assert sum(len(r) for group in expected.values() for r in group) >= 900
    for group, entries in expected.items():
        for index, (want, have) in enumerate(zip(entries, got[group], strict=True)):
            for number, (a, b) in enumerate(zip(want, have, strict=True)):
                assert a == b, f"{group} case {index}, request {number}: recorded {a}, now {b}"
