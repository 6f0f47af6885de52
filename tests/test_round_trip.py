"""Every public shape reads back what it writes: ``X.from_dict(x.to_dict()) == x``, on real objects.

A decision and its explanation from the retail example (its click model
runs, so there are model inputs, some unknown), the rules of a ruleset, the
diagnostics of a broken edit (spans, hints, related places, and a problem
with no span), and the status ``GET /v1/ruleset`` reports. Each also goes
through JSON where JSON can hold it exactly.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from broken_edit import BROKEN

import tailor
from tailor.compiler.decide import NOTHING, Decision, SlotDecision
from tailor.compiler.explain import CandidateTrace, Explanation, SlotTrace
from tailor.compiler.ruleset import RuleInfo
from tailor.dsl.diagnostics import Diagnostic, Related, RulesError, render
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService
from tailor.runtime.status import RulesetStatus, VersionInfo

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
REQUEST: dict[str, Any] = {
    "context": {"page": "home", "device": "mobile"},
    "features": {'views("Electronics", 24h)': 5},
    "slots": ["hero", "sidebar", "nowhere"],
}


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


@pytest.fixture(scope="module")
def engine() -> tailor.Engine:
    return tailor.Engine(tailor.load(RETAIL))


@pytest.fixture(scope="module")
def diagnostics(tmp_path_factory: pytest.TempPathFactory) -> list[Diagnostic]:
    root = tmp_path_factory.mktemp("broken") / "retail"
    shutil.copytree(RETAIL, root)
    (root / "broken.rules").write_text(BROKEN)
    with pytest.raises(RulesError) as failed:
        tailor.load(root)
    missing = tailor.Diagnostic(tailor.Severity.ERROR, "no such file or directory", None, file="nowhere.rules")
    return [*failed.value.diagnostics, missing]


def test_decisions(engine: tailor.Engine) -> None:
    decision = engine.decide(**REQUEST)
    assert decision.models_run and decision.slots["nowhere"] is NOTHING
    assert Decision.from_dict(decision.to_dict()) == decision
    assert Decision.from_dict(through_json(decision.to_dict())) == decision
    for answer in decision.slots.values():
        assert SlotDecision.from_dict(answer.to_dict()) == answer


def test_explanations(engine: tailor.Engine) -> None:
    explanation = engine.explain(**REQUEST)
    assert any(math.isnan(value) for value in explanation.model_inputs["p_click"].values())
    assert Explanation.from_dict(explanation.to_dict()) == explanation
    decision = explanation.decision
    rebuilt = Explanation.from_dict(
        explanation.to_dict(), ruleset=decision.ruleset, version=decision.version, degraded=decision.degraded
    )
    assert rebuilt.decision == decision  # all of the decision is there, with what the response around it says
    traces = explanation.slots.values()
    assert any(trace.candidates for trace in traces)
    for trace in traces:
        assert SlotTrace.from_dict(trace.to_dict()) == trace
        assert SlotTrace.from_dict(through_json(trace.to_dict())) == trace
        for candidate in trace.candidates:
            assert CandidateTrace.from_dict(candidate.to_dict()) == candidate


def test_explanations_through_json_render_alike(engine: tailor.Engine) -> None:
    explanation = engine.explain(**REQUEST)
    assert Explanation.from_dict(through_json(explanation.to_dict())).render() == explanation.render()


def test_rules(engine: tailor.Engine) -> None:
    rules = engine.ruleset.rules
    assert rules
    for rule in rules:
        assert RuleInfo.from_dict(rule.to_dict()) == rule
        assert RuleInfo.from_dict(through_json(rule.to_dict())) == rule


def test_diagnostics(diagnostics: list[Diagnostic]) -> None:
    assert any(d.related for d in diagnostics) and any(d.hint for d in diagnostics)
    assert any(d.span is None for d in diagnostics)
    for diagnostic in diagnostics:
        assert Diagnostic.from_dict(diagnostic.to_dict()) == diagnostic
        assert Diagnostic.from_dict(through_json(diagnostic.to_dict())) == diagnostic
        for related in diagnostic.related:
            assert Related.from_dict(related.to_dict()) == related


def test_a_diagnostic_read_back_renders_its_place(diagnostics: list[Diagnostic]) -> None:
    diagnostic = next(d for d in diagnostics if d.related)
    text = render(Diagnostic.from_dict(diagnostic.to_dict()))
    assert text.startswith(f"{diagnostic.file}:{diagnostic.line}:{diagnostic.column}: error: {diagnostic.message}")
    related = diagnostic.related[0]
    assert f"note: {related.message} at {related.file}:{related.line}:{related.column}" in text


def test_ruleset_status(tmp_path: Path, diagnostics: list[Diagnostic]) -> None:
    root = tmp_path / "retail"
    shutil.copytree(RETAIL, root)
    service = DecisionService(root, MemoryStore())
    service.open()
    (root / "home.rules").write_text((root / "home.rules").read_text() + "\n# a second version\n")
    assert service.install(service.prepare())
    service.failed(diagnostics)
    status = RulesetStatus.of(service)
    assert status.previous and status.last_error and status.rules
    assert RulesetStatus.from_dict(status.to_dict()) == status
    assert RulesetStatus.from_dict(through_json(status.to_dict())) == status
    for old in status.previous:
        assert VersionInfo.from_dict(old.to_dict()) == old
