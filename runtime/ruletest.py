"""Running the rule tests of a ruleset (``*_test.rules``), for ``tailor test``.

A test describes a visitor with ``given`` values and says what each slot must
show; ``given hero_test = "model"`` puts the visitor in an experiment's arm
(tests have no user id, so nothing is drawn and no one is held out). It is
checked against the ruleset like rules are (unknown slots, contents
and features are errors with the same diagnostics), then decided by the real
compiled engine, so a passing test means the served decision would be the
same. Models never run here: a test that needs a score gives it, which keeps
tests deterministic and independent of model files.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailor.compiler.decide import SlotDecision
from tailor.compiler.features import FeatureKind
from tailor.compiler.plan import value_type
from tailor.compiler.ruleset import RuleInfo, Ruleset
from tailor.compiler.values import Values, predicate_value
from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, Related, did_you_mean, error, has_errors, sorted_unique
from tailor.dsl.loader import ParsedFile, is_test_file, read_file, rules_files
from tailor.dsl.printer import expression_text

from .engine import Engine
from .ruleset_loader import compile_path

NOTHING, DEFAULT = "nothing", "default"


@dataclass(frozen=True, slots=True)
class TestCase:
    """One checked test: the values it gives, ready for the engine."""

    __test__ = False  # not a pytest test class

    title: str
    file: str
    line: int
    expect: tuple[tuple[str, str], ...]  # (slot, content | "nothing" | "default")
    context: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Suite:
    ruleset: Ruleset
    cases: tuple[TestCase, ...]


@dataclass(frozen=True, slots=True)
class SlotFailure:
    slot: str
    expected: str
    actual: str
    explain: str  # Explanation.render() of this slot: why the expected content did not win


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False

    case: TestCase
    failures: tuple[SlotFailure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class Coverage:
    rules: tuple[tuple[RuleInfo, bool], ...]  # every rule, and whether some test made it win its slot
    predicates: tuple[tuple[str, bool, bool], ...]  # (text, seen true, seen false)
    arms: tuple[tuple[str, str, bool], ...] = ()  # (experiment, arm, whether some test gave that arm)

    @property
    def rules_covered(self) -> int:
        return sum(covered for _rule, covered in self.rules)

    @property
    def rule_percent(self) -> float:
        return 100.0 * self.rules_covered / len(self.rules) if self.rules else 100.0

    @property
    def arms_covered(self) -> int:
        return sum(covered for _experiment, _arm, covered in self.arms)

    @property
    def predicates_covered(self) -> int:
        return sum(seen_true and seen_false for _text, seen_true, seen_false in self.predicates)


@dataclass(frozen=True, slots=True)
class Report:
    ruleset: str
    results: tuple[TestResult, ...]
    coverage: Coverage

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


# --- reading and checking ---


def test_files(root: Path) -> tuple[Path, list[Path]]:
    """The ruleset to load and its test files: a directory's ``*_test.rules``, or a file's sibling."""
    if root.is_dir():
        return root, rules_files(root, tests=True)
    if is_test_file(root):
        return root.parent, [root]
    sibling = root.with_name(root.name.removesuffix(".rules") + "_test.rules")
    return root, [sibling] if sibling.is_file() else []


def prepare(root: Path) -> tuple[Suite | None, list[Diagnostic]]:
    """Compile the ruleset (without its models) and check its tests; None when anything has errors."""
    ruleset_root, paths = test_files(root)
    loaded = compile_path(ruleset_root, models=False)
    if not loaded.compilation.ok:
        return None, loaded.diagnostics
    ruleset = loaded.ruleset()
    parsed = [read_file(path) for path in paths]
    problems = [d for f in parsed for d in f.diagnostics]
    if has_errors(problems):
        return None, sorted_unique(problems)
    cases, found = _Checker(ruleset).run(parsed)
    problems = sorted_unique([*problems, *found])
    return (None if has_errors(problems) else Suite(ruleset, tuple(cases))), problems


class _Checker:
    """Resolves a test's names against the compiled ruleset, as the rules checker does for rules."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.plan = ruleset.plan
        self.problems: list[Diagnostic] = []

    def run(self, files: list[ParsedFile]) -> tuple[list[TestCase], list[Diagnostic]]:
        cases: list[TestCase] = []
        titles: dict[str, ast.TestDecl] = {}
        for parsed in files:
            for decl in parsed.module.declarations:
                if not isinstance(decl, ast.TestDecl):
                    self.problems.append(
                        error(
                            "a _test.rules file holds only tests",
                            decl.span,
                            code="misplaced",
                            hint="move this declaration to a .rules file of the ruleset",
                        )
                    )
                    continue
                first = titles.setdefault(decl.title.value, decl)
                if first is not decl:
                    self.problems.append(
                        error(
                            f'there is already a test titled "{decl.title.value}"',
                            decl.title.span,
                            code="duplicate",
                            related=[Related("the first one is here", first.title.span)] if first.title.span else [],
                        )
                    )
                case = self._case(decl, parsed.module.name)
                if case is not None:
                    cases.append(case)
        return cases, self.problems

    def _report(self, message: str, span: Any, **extra: Any) -> None:
        self.problems.append(error(message, span, **extra))

    def _case(self, decl: ast.TestDecl, file: str) -> TestCase | None:
        before = len(self.problems)
        context: dict[str, Any] = {}
        features: dict[str, Any] = {}
        given: dict[str, ast.Given] = {}
        for item in decl.given:
            text = expression_text(item.feature)
            if text in given:
                self._report(f"{text} is already given in this test", item.feature.span, code="duplicate")
                continue
            given[text] = item
            ref = self.plan.features.get(text)
            if ref is None:
                hint = did_you_mean(text, self.plan.features) or "a test can give only what the rules read"
                self._report(
                    f"unknown feature {text}: no rule of the ruleset reads it",
                    item.feature.span,
                    code="unknown-name",
                    hint=hint,
                )
                continue
            value = self._value(item.value)
            if value is None:
                continue
            expected = value_type(ref, self.plan.attribute_kinds)
            if not _fits(value, expected):
                self._report(
                    f"{text} is {_article(expected)} in the rules, but this test gives {expression_text(item.value)}",
                    item.value.span,
                    code="type",
                )
                continue
            experiment = self.plan.experiments.get(ref.name) if ref.kind is FeatureKind.EXPERIMENT else None
            if experiment is not None and value not in experiment.arms:
                self._report(
                    f"experiment '{ref.name}' has no arm {expression_text(item.value)}",
                    item.value.span,
                    code="unknown-arm",
                    hint=did_you_mean(value, experiment.arms) or "its arms are " + ", ".join(experiment.arms),
                )
                continue
            if ref.kind is FeatureKind.CONTEXT:
                context[ref.name] = value
            else:
                features[text] = value
        expect = tuple(self._expectation(item) for item in decl.expect)
        slots: set[str] = set()
        for item, (slot, _content) in zip(decl.expect, expect, strict=True):
            if slot in slots:
                self._report(f"slot '{slot}' is already expected in this test", item.slot.span, code="duplicate")
            slots.add(slot)
        at = self._at(decl.at) if decl.at is not None else None
        if len(self.problems) > before:
            return None
        line = decl.span.line if decl.span is not None else 0
        return TestCase(decl.title.value, file, line, expect, context, features, at)

    def _value(self, expr: ast.Expr) -> Any:
        match expr:
            case ast.String(value) | ast.Boolean(value):
                return value
            case ast.Number():
                return expr.amount
            case ast.Duration():
                return expr.seconds
            case ast.Negate(ast.Number() | ast.Duration() as operand):
                return -self._value(operand)
            case ast.ListLiteral(items):
                values = [self._value(item) for item in items]
                return None if None in values else values
        self._report(
            f"a given value must be written out, not {expression_text(expr)}",
            expr.span,
            code="type",
            hint='write a number, a duration, "text", true, false or a list',
        )
        return None

    def _expectation(self, item: ast.Expectation) -> tuple[str, str]:
        slot, content = item.slot.name, item.content.name
        plan_slot = self.plan.slots.get(slot)
        if plan_slot is None:
            self._report(
                f"unknown slot '{slot}'",
                item.slot.span,
                code="unknown-name",
                hint=did_you_mean(slot, self.plan.slots) or "the slots are " + ", ".join(self.plan.slots),
            )
        elif content == DEFAULT and plan_slot.default is None:
            self._report(f"slot '{slot}' has no default", item.content.span, code="unknown-name")
        if content not in (NOTHING, DEFAULT) and content not in self.ruleset.payloads:
            self._report(
                f"unknown content '{content}'",
                item.content.span,
                code="unknown-name",
                hint=did_you_mean(content, self.ruleset.payloads) or "expect a content, nothing or default",
            )
        return slot, content

    def _at(self, expr: ast.Expr) -> float | None:
        if isinstance(expr, ast.Number):
            return float(expr.amount)
        if isinstance(expr, ast.String):
            try:
                moment = datetime.fromisoformat(expr.value)
            except ValueError:
                moment = None
            if moment is not None:
                return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        self._report(
            f"'at' needs a time, not {expression_text(expr)}",
            expr.span,
            code="type",
            hint='write epoch seconds or a date, such as "2026-01-15T12:00:00Z"',
        )
        return None


def _fits(value: Any, expected: str) -> bool:
    if expected == "number":
        return type(value) in (int, float)
    if expected == "string":
        return type(value) is str
    if expected == "bool":
        return type(value) is bool
    return True


def _article(kind: str) -> str:
    return {"number": "a number", "string": "text", "bool": "true or false"}.get(kind, "a value")


# --- running ---


def run(suite: Suite, pattern: str | None = None) -> Report:
    """Decide every selected test (title contains ``pattern``, any case) and gather coverage."""
    ruleset = suite.ruleset
    engine = Engine(ruleset)  # the ruleset carries no models: nothing is inferred, a score not given is unknown
    plan = ruleset.plan
    types = {text: value_type(ref, plan.attribute_kinds) for text, ref in plan.features.items()}
    seen: dict[str, set[bool]] = {p.text(): set() for p in plan.predicates}
    winners: set[str] = set()
    results = []
    for case in suite.cases:
        if pattern and pattern.casefold() not in case.title.casefold():
            continue
        slots = tuple(dict.fromkeys(slot for slot, _content in case.expect))
        explanation = engine.explain(None, case.context, slots, case.features, case.at)
        failures = []
        for slot, expected in case.expect:
            answer = explanation.decision.slots[slot]
            if answer.rule is not None:
                winners.add(answer.rule)
            if not _matches(ruleset, slot, expected, answer):
                shown = replace(explanation, slots={slot: explanation.slots[slot]})
                failures.append(SlotFailure(slot, expected, describe(answer), shown.render()))
        # Every predicate, read or not by the decision: coverage asks what the tests' visitors make true.
        values = Values(case.context, case.features, plan.features, types)
        for predicate in plan.predicates:
            verdict = predicate_value(predicate, values)
            if verdict is not None:
                seen[predicate.text()].add(verdict)
        results.append(TestResult(case, tuple(failures)))
    given_arms = {(name, case.features.get(name)) for case in suite.cases for name in plan.experiments}
    coverage = Coverage(
        tuple((rule, rule.name in winners) for rule in ruleset.rules),
        tuple((text, True in outcomes_, False in outcomes_) for text, outcomes_ in seen.items()),
        tuple(
            (name, arm, (name, arm) in given_arms)
            for name, experiment in plan.experiments.items()
            for arm in experiment.arms
        ),
    )
    return Report(ruleset.name, tuple(results), coverage)


def _matches(ruleset: Ruleset, slot: str, expected: str, answer: SlotDecision) -> bool:
    if expected == NOTHING:
        return answer.content is None
    if expected == DEFAULT:
        return answer.rule is None and answer.content is not None and answer.content == ruleset.plan.slots[slot].default
    return answer.content == expected


def describe(answer: SlotDecision) -> str:
    if answer.content is None:
        return "nothing"
    return f"{answer.content} (rule {answer.rule})" if answer.rule else f"{answer.content} (the slot's default)"


# --- reports ---


_GREEN, _RED, _RESET = "\033[32m", "\033[1;31m", "\033[0m"


def render_text(report: Report, *, coverage: bool = False, color: bool = False) -> str:
    """Plain text; ``color`` marks PASS and FAIL for a terminal."""
    lines = []
    for result in report.results:
        case = result.case
        verdict = "PASS" if result.passed else "FAIL"
        if color:
            verdict = f"{_GREEN if result.passed else _RED}{verdict}{_RESET}"
        lines.append(f"{verdict}  {case.title}  [{case.file}:{case.line}]")
        for failure in result.failures:
            lines.append(f"  {failure.slot}: expected {failure.expected}, got {failure.actual}")
            lines.extend("    " + line for line in failure.explain.splitlines())
    total, failed = len(report.results), report.failed
    lines.append(f"{total} test{'' if total == 1 else 's'}: {total - failed} passed, {failed} failed")
    if coverage:
        lines.extend(render_coverage(report.coverage))
    return "\n".join(lines)


def render_coverage(coverage: Coverage) -> list[str]:
    rules, preds = coverage.rules, coverage.predicates
    lines = [
        f"rule coverage: {coverage.rules_covered}/{len(rules)} rules won their slot ({coverage.rule_percent:.1f}%)"
    ]
    lines.extend(f"  not covered: {rule.name} [{rule.file}:{rule.line}]" for rule, covered in rules if not covered)
    lines.append(f"predicate coverage: {coverage.predicates_covered}/{len(preds)} predicates were both true and false")
    for text, seen_true, seen_false in preds:
        if not (seen_true and seen_false):
            never = "true" if not seen_true else ""
            never += (" or " if never else "") + "false" if not seen_false else ""
            lines.append(f"  never {never}: {text}")
    if coverage.arms:
        lines.append(f"arm coverage: {coverage.arms_covered}/{len(coverage.arms)} experiment arms were given in a test")
        lines.extend(
            f"  not given: {experiment} = {json.dumps(arm)}"
            for experiment, arm, covered in coverage.arms
            if not covered
        )
    return lines


def report_json(report: Report) -> dict[str, Any]:
    coverage = report.coverage
    return {
        "ruleset": report.ruleset,
        "summary": {
            "total": len(report.results),
            "passed": len(report.results) - report.failed,
            "failed": report.failed,
        },
        "tests": [
            {
                "title": r.case.title,
                "file": r.case.file,
                "line": r.case.line,
                "passed": r.passed,
                "failures": [
                    {"slot": f.slot, "expected": f.expected, "actual": f.actual, "explain": f.explain}
                    for f in r.failures
                ],
            }
            for r in report.results
        ],
        "coverage": {
            "rules": [
                {"rule": rule.name, "slot": rule.slot, "file": rule.file, "line": rule.line, "covered": covered}
                for rule, covered in coverage.rules
            ],
            "rule_percent": round(coverage.rule_percent, 2),
            "predicates": [
                {"predicate": text, "true": seen_true, "false": seen_false}
                for text, seen_true, seen_false in coverage.predicates
            ],
            "arms": [
                {"experiment": experiment, "arm": arm, "given": covered} for experiment, arm, covered in coverage.arms
            ],
        },
    }


def render_junit(report: Report) -> str:
    """JUnit XML, which CI systems show as a test report."""
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=report.ruleset,
        tests=str(len(report.results)),
        failures=str(report.failed),
        errors="0",
        skipped="0",
    )
    for result in report.results:
        case = result.case
        element = ET.SubElement(
            suite,
            "testcase",
            name=case.title,
            classname=re.sub(r"\.rules$", "", case.file).replace("/", "."),
            file=case.file,
            line=str(case.line),
        )
        if result.failures:
            failure = ET.SubElement(
                element,
                "failure",
                message="; ".join(f"{f.slot}: expected {f.expected}, got {f.actual}" for f in result.failures),
                type="AssertionError",
            )
            failure.text = "\n\n".join(f.explain for f in result.failures)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# --- explain output from a server ---


def render_explain_json(data: Mapping[str, Any]) -> str:
    """The text ``Explanation.render()`` gives, from the JSON of POST /v1/explain."""
    from tailor.compiler.explain import Explanation

    return Explanation.from_dict(data.get("explain") or {}).render()


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2)
