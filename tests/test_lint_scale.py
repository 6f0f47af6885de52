"""Shadowing and ambiguity among thousands of rules: indexed, and equal to comparing every pair.

``compiler.lint`` compares a rule only with the rules above it that its
indexes say can cover or overlap it. The reference here is the analysis it
replaces, every rule against every rule above it in its slot; the two must
give the same warnings, in the same order, on random and generated rulesets.
"""

from __future__ import annotations

import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import rulegen
from hypothesis import HealthCheck, given, settings

import tailor
from bench.workload import ruleset_text, sku_ruleset_text, wide_ruleset_text
from tailor.compiler import lint as lint_module
from tailor.compiler.check import CheckedRule, Program
from tailor.compiler.ir import Atom
from tailor.compiler.lint import _shadowed, _shadowing_and_ambiguity, _terms, implies, lint
from tailor.compiler.normalize import merge_conjunction, normalize
from tailor.compiler.plan import DecisionPlan, build_plan
from tailor.dsl.diagnostics import Diagnostic
from tailor.runtime.ruleset_loader import lint_path


def satisfiable(predicates: Any) -> bool:
    by_feature: dict = defaultdict(list)
    for predicate in predicates:
        if isinstance(predicate, Atom):
            by_feature[predicate.feature].append(predicate)
    return all(merge_conjunction(feature, atoms) is not None for feature, atoms in by_feature.items())


def covers(upper: Any, upper_features: Any, lower: Any, lower_features: Any) -> bool:
    for conjunction, needs in zip(lower, lower_features, strict=True):
        if not any(
            features <= needs and all(implies(conjunction, p) for p in candidate)
            for candidate, features in zip(upper, upper_features, strict=True)
        ):
            return False
    return True


def overlap(first: Any, second: Any) -> bool:
    return any(satisfiable((*a, *b)) for a in first for b in second)


def pairwise(plan: DecisionPlan, checked: dict[str, CheckedRule]) -> list[Diagnostic]:
    """Every rule against every rule above it in its slot (what lint did before it was indexed)."""
    found = []
    by_slot: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
    for conjunction in plan.conjunctions:
        rules = by_slot[conjunction.rule.slot]
        if not rules or rules[-1][0] != conjunction.rule.name:
            rules.append((conjunction.rule.name, []))
        rules[-1][1].append(_terms(conjunction))
    uses_model = lint_module._rules_using_models(plan)
    for rules in by_slot.values():
        features = [
            [
                frozenset(f.text for p in c for f in lint_module.predicate_features(p)) if c is not None else None
                for c in cs
            ]
            for _, cs in rules
        ]
        for index, (name, conjunctions) in enumerate(rules):
            rule = checked[name]
            if not conjunctions or None in conjunctions:
                continue
            tied_with = []
            shadowing = None
            for other_index in range(index):
                other_name, other_conjunctions = rules[other_index]
                other = checked[other_name]
                if None in other_conjunctions:
                    continue
                if covers(other_conjunctions, features[other_index], conjunctions, features[index]):
                    shadowing = other
                    break
                if (
                    other.priority == rule.priority
                    and other.decl.content.name != rule.decl.content.name
                    and overlap(other_conjunctions, conjunctions)
                ):
                    tied_with.append(other)
            if tied_with:  # one finding per rule, naming every rule above it it ties with
                found.append(lint_module._ambiguous(rule, tied_with))
            if shadowing is not None:
                found.append(_shadowed(rule, shadowing, name in uses_model))
    return found


def plan_of(program: Program) -> DecisionPlan:
    """The plan as lint sees it: no model inputs, no statistics."""
    return build_plan(normalize(program))


def both(text: str) -> tuple[list[Diagnostic], list[Diagnostic]]:
    program = tailor.loads(text, name="t").program
    plan = plan_of(program)
    checked = {r.name: r for r in program.rules}
    return _shadowing_and_ambiguity(plan, checked), pairwise(plan, checked)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rulegen.rulesets())
def test_random_rulesets_warn_as_comparing_every_pair_does(ruleset: rulegen.GeneratedRuleset) -> None:
    plan = plan_of(ruleset.program)
    checked = {r.name: r for r in ruleset.program.rules}
    assert _shadowing_and_ambiguity(plan, checked) == pairwise(plan, checked)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(ruleset_text(300), id="workload"),
        pytest.param(ruleset_text(200, model_share=0.3), id="workload-with-model"),
        pytest.param(wide_ruleset_text(400, slots=4), id="wide"),
        pytest.param(sku_ruleset_text(600), id="sku"),
    ],
)
def test_generated_rulesets_warn_as_comparing_every_pair_does(text: str) -> None:
    indexed, reference = both(text)
    assert indexed == reference
    assert any(d.code in ("shadowed", "ambiguous") for d in indexed)


def _sku_rules(n: int) -> list[str]:
    return [f'rule p{i} when context.sku == "sku-{i}" then show c{i % 7} in hero priority {i % 50}' for i in range(n)]


PLANTED = """
rule campaign when context.sku in ["sku-4321", "sku-77"] then show c1 in hero priority 60
rule gold_77 when context.sku == "sku-77" and user.tier == "gold" then show c2 in hero priority 55
rule product_page when context.sku == "sku-1234" and context.page == "product" then show c5 in hero priority 0
rule twin when context.sku in ["sku-999", "sku-new"] then show c6 in hero priority 49
"""


def test_real_shadowing_is_found_among_thousands_of_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 6_000  # above the 5,000 rules per slot past which lint used to skip a slot
    contents = "\n".join(f"content c{i} = {{}}" for i in range(7))
    text = f"{contents}\ndefault show c0 in hero\n" + "\n".join(_sku_rules(n)) + PLANTED
    compared = 0
    for name in ("_covers", "_overlap"):
        exact = getattr(lint_module, name)

        def counted(*args: Any, exact: Any = exact) -> bool:
            nonlocal compared
            compared += 1
            return exact(*args)

        monkeypatch.setattr(lint_module, name, counted)
    found = [(d.code, d.message) for d in lint(plan_of(tailor.loads(text, name="t").program))]
    assert (
        "shadowed",
        "rule 'p4321' can never win slot 'hero': rule 'campaign' has a higher priority and fires whenever it would",
    ) in found
    assert (
        "shadowed",
        "rule 'p77' can never win slot 'hero': rule 'campaign' has a higher priority and fires whenever it would",
    ) in found
    assert (
        "shadowed",
        "rule 'gold_77' can never win slot 'hero': rule 'campaign' has a higher priority and fires whenever it would",
    ) in found
    assert (
        "shadowed",
        "rule 'product_page' can never win slot 'hero': rule 'p1234' has a higher priority and fires whenever it would",
    ) in found
    assert (
        "ambiguous",
        "rules 'p999' and 'twin' can both apply to slot 'hero' with the same priority (49) but different content;"
        " only file order decides",
    ) in found
    assert len([code for code, _ in found if code in ("shadowed", "ambiguous")]) == 5
    assert compared < 20  # rules on different SKUs are never compared


def test_a_5_mb_string_literal_lints_in_little_memory(tmp_path: Path) -> None:
    """Linting holds the text a few times over, not 1 GB: the memory (not the time) is what is asserted."""
    big = "x" * 5_000_000
    (tmp_path / "big.rules").write_text(
        f'content a = {{}}\nrule r when context.page == "{big}" then show a\ndefault show a\n'
    )
    tracemalloc.start()
    try:
        found = lint_path(tmp_path / "big.rules")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.code for d in found] == ["undeclared-attribute"]  # a note: context.page's type was inferred
    assert peak < 200e6  # about 25 MB: the literal read, parsed and planned; it was 1.2 GB
