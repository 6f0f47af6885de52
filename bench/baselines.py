"""The contenders the compiled engine is measured against.

- ``IfChain``: what a person would write by hand without the compiler: one
  Python function per slot, one ``if CONDITION: return "CONTENT"`` per rule in
  priority order, reading the request dicts directly. Its source is generated
  from the ruleset and then ``exec``-ed. It uses plain two-valued Python logic,
  so it is only right when every feature a rule reads is supplied (as in the
  benchmark workload); context attributes are read with ``.get`` so ``==`` and
  ``in`` are right for a missing one too.
- ``NaiveInterpreter``: walks each rule's syntax tree per request, with the
  language's three-valued logic; the reference every other contender must
  agree with.
- ``ZenTables``: the same ruleset as GoRules zen-engine decision tables (one
  table per slot, hit policy "first", rows in priority order, the default as
  a last catch-all row, a column per feature the slot's rules test, features
  under plain names). Optional: only when the ``zen`` module is installed.

Requests are ``(context, features)``: ``context`` holds ``context.NAME`` as
``NAME``; ``features`` holds everything else keyed by its canonical text
(``user.tier``, ``views("Books", 24h)``, a model's name).
"""

from __future__ import annotations

import importlib
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.compiler.check import CheckedRule, Program, check
from tailor.dsl import ast
from tailor.dsl.collector import collector_paused
from tailor.dsl.diagnostics import RulesError, Severity
from tailor.dsl.parser import parse
from tailor.dsl.printer import expression_text

Decision = dict[str, str | None]
DecideFn = Callable[[Mapping[str, Any], Mapping[str, Any]], Decision]


def load_program(text: str, name: str = "bench") -> Program:
    """Parse and check one ruleset file's text; raise ``RulesError`` on any error."""
    with collector_paused():
        program, problems = check([parse(text, f"{name}.rules")], name)
    errors = [p for p in problems if p.severity == Severity.ERROR]
    if errors:
        raise RulesError(errors)
    return program


def rules_by_slot(program: Program) -> dict[str, list[CheckedRule]]:
    """Each slot's rules in decision order: highest priority first, then ruleset order."""
    slots: dict[str, list[CheckedRule]] = {slot: [] for slot in program.slots}
    for rule in program.rules:
        slots[rule.slot].append(rule)
    for rules in slots.values():
        rules.sort(key=lambda rule: (-rule.priority, rule.order))
    return slots


def default_content(program: Program, slot: str) -> str | None:
    default = program.defaults.get(slot)
    return default.content.name if default is not None else None


# --- the hand-written if-chain ---------------------------------------------------


class Unsupported(Exception):
    """The ruleset uses something this contender cannot express."""


def _feature_key(expr: ast.Attribute | ast.Call) -> str:
    return expression_text(expr)


def python_condition(expr: ast.Expr, program: Program) -> str:
    """``expr`` as a plain Python expression over ``context`` and ``features``."""
    match expr:
        case ast.And(operands):
            return " and ".join(_python_operand(operand, program, ast.Or) for operand in operands)
        case ast.Or(operands):
            return " or ".join(python_condition(operand, program) for operand in operands)
        case ast.Not(operand):
            return f"not {_python_operand(operand, program, ast.And | ast.Or)}"
        case ast.Compare(op, left, right):
            if op in ("in", "not in") and not isinstance(right, ast.ListLiteral):
                raise Unsupported(f"'{op}' needs a written-out list")
            return f"{_python_operand(left, program)} {op} {_python_operand(right, program)}"
        case ast.IsMissing(operand, negated):
            return f"{_python_operand(operand, program)} is {'not ' if negated else ''}None"
        case ast.Arithmetic(op, left, right):
            return f"{_python_operand(left, program)} {op} {_python_operand(right, program)}"
        case ast.Negate(operand):
            return f"-{_python_operand(operand, program)}"
        case ast.String(value):
            return json.dumps(value, ensure_ascii=False)
        case ast.Number():
            return repr(expr.amount)
        case ast.Duration():
            return repr(expr.seconds)
        case ast.Boolean(value):
            return repr(value)
        case ast.ListLiteral(items):
            texts = [python_condition(item, program) for item in items]
            return f"({texts[0]},)" if len(texts) == 1 else "(" + ", ".join(texts) + ")"
        case ast.Attribute(scope, name):
            if scope == "context":
                return f"context.get({json.dumps(name)})"
            return f"features[{_feature_key(expr)!r}]"
        case ast.Call():
            return f"features[{_feature_key(expr)!r}]"
        case ast.Name(name):
            if name in program.segments:
                return f"({python_condition(program.segments[name].condition, program)})"
            return f"features[{name!r}]"
    raise Unsupported(f"not an expression: {expr!r}")


_ATOMS = (ast.String, ast.Number, ast.Duration, ast.Boolean, ast.ListLiteral, ast.Attribute, ast.Call, ast.Name)


def _python_operand(expr: ast.Expr, program: Program, loose: Any = None) -> str:
    """``expr`` as an operand: in parentheses unless it is an atom or binds tighter than ``loose``."""
    text = python_condition(expr, program)
    if isinstance(expr, _ATOMS) or (loose is not None and not isinstance(expr, loose)):
        return text
    return f"({text})"


def if_chain_source(program: Program) -> str:
    """The module a person would write: one function per slot and a ``decide``."""
    lines = ['"""Hand-written decisions: one if per rule, in priority order."""', ""]
    slots = rules_by_slot(program)
    for index, (slot, rules) in enumerate(slots.items()):
        lines.append(f"def slot_{index}(context, features):  # {slot}")
        for rule in rules:
            condition = python_condition(rule.decl.condition, program)
            lines.append(f"    if {condition}:")
            lines.append(f"        return {json.dumps(rule.decl.content.name)}")
        default = default_content(program, slot)
        lines.append(f"    return {'None' if default is None else json.dumps(default)}")
        lines.append("")
    calls = ", ".join(f"{json.dumps(slot)}: slot_{index}(context, features)" for index, slot in enumerate(slots))
    lines.append("def decide(context, features):")
    lines.append(f"    return {{{calls}}}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class IfChain:
    source: str
    decide: DecideFn

    @classmethod
    def build(cls, program: Program) -> IfChain:
        source = if_chain_source(program)
        namespace: dict[str, Any] = {}
        exec(compile(source, "<hand-written if-chain>", "exec"), namespace)
        return cls(source, namespace["decide"])


def rule_predicates(program: Program) -> list[tuple[CheckedRule, Callable[[Mapping, Mapping], Any]]]:
    """Every rule with its condition as a Python function (for workload statistics)."""
    result = []
    for rule in program.rules:
        code = f"lambda context, features: {python_condition(rule.decl.condition, program)}"
        result.append((rule, eval(compile(code, "<rule>", "eval"))))
    return result


# --- the naive interpreter -------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


class NaiveInterpreter:
    """Walks each rule's tree for every request; ``None`` stands for unknown.

    Per slot, rules are tried in decision order and the first whose condition
    is true wins; unknown does not fire. Counters and totals that are not
    supplied are 0 (they are never unknown); anything else not supplied is
    unknown. Nothing is precomputed but the rule order and, per call node, its
    canonical text (the key its value is supplied under).
    """

    def __init__(self, program: Program):
        self.program = program
        self.slots = rules_by_slot(program)
        self.defaults = {slot: default_content(program, slot) for slot in self.slots}
        self._keys: dict[int, str] = {}
        self._visit: dict[type, Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]] = {
            ast.And: self._and,
            ast.Or: self._or,
            ast.Not: self._not,
            ast.Compare: self._compare,
            ast.IsMissing: self._is_missing,
            ast.Arithmetic: self._arithmetic,
            ast.Negate: self._negate,
            ast.String: self._literal,
            ast.Boolean: self._literal,
            ast.Number: self._number,
            ast.Duration: self._duration,
            ast.ListLiteral: self._list,
            ast.Attribute: self._attribute,
            ast.Call: self._call,
            ast.Name: self._name,
        }

    def decide(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> Decision:
        return {slot: content for slot, (content, _rule) in self.explain(context, features).items()}

    def explain(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, tuple[str | None, str]]:
        """Per slot: the content shown and the name of the rule that won (or "default")."""
        result: dict[str, tuple[str | None, str]] = {}
        for slot, rules in self.slots.items():
            for rule in rules:
                if self.evaluate(rule.decl.condition, context, features) is True:
                    result[slot] = (rule.decl.content.name, rule.name)
                    break
            else:
                result[slot] = (self.defaults[slot], "default")
        return result

    def evaluate(self, expr: ast.Expr, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        """The value of ``expr``: True, False, a number, a string, a list, or None (unknown)."""
        return self._visit[type(expr)](expr, context, features)

    def _and(self, expr: ast.And, context: Mapping[str, Any], features: Mapping[str, Any]) -> bool | None:
        unknown = False
        for operand in expr.operands:
            value = self.evaluate(operand, context, features)
            if value is False:
                return False
            if value is None:
                unknown = True
        return None if unknown else True

    def _or(self, expr: ast.Or, context: Mapping[str, Any], features: Mapping[str, Any]) -> bool | None:
        unknown = False
        for operand in expr.operands:
            value = self.evaluate(operand, context, features)
            if value is True:
                return True
            if value is None:
                unknown = True
        return None if unknown else False

    def _not(self, expr: ast.Not, context: Mapping[str, Any], features: Mapping[str, Any]) -> bool | None:
        value = self.evaluate(expr.operand, context, features)
        return None if value is None else not value

    def _compare(self, expr: ast.Compare, context: Mapping[str, Any], features: Mapping[str, Any]) -> bool | None:
        left = self.evaluate(expr.left, context, features)
        if left is None:
            return None
        right = self.evaluate(expr.right, context, features)
        if right is None:
            return None
        return _COMPARE[expr.op](left, right)

    def _is_missing(self, expr: ast.IsMissing, context: Mapping[str, Any], features: Mapping[str, Any]) -> bool:
        missing = self.evaluate(expr.operand, context, features) is None
        return not missing if expr.negated else missing

    def _arithmetic(self, expr: ast.Arithmetic, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        left = self.evaluate(expr.left, context, features)
        right = self.evaluate(expr.right, context, features)
        if left is None or right is None:
            return None
        match expr.op:
            case "+":
                return left + right
            case "-":
                return left - right
            case "*":
                return left * right
        return None if right == 0 else left / right

    def _negate(self, expr: ast.Negate, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        value = self.evaluate(expr.operand, context, features)
        return None if value is None else -value

    def _literal(self, expr: ast.String | ast.Boolean, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        return expr.value

    def _number(self, expr: ast.Number, context: Mapping[str, Any], features: Mapping[str, Any]) -> int | float:
        return expr.amount

    def _duration(self, expr: ast.Duration, context: Mapping[str, Any], features: Mapping[str, Any]) -> int | float:
        return expr.seconds

    def _list(self, expr: ast.ListLiteral, context: Mapping[str, Any], features: Mapping[str, Any]) -> list:
        return [self.evaluate(item, context, features) for item in expr.items]

    def _key(self, expr: ast.Expr) -> str:
        key = self._keys.get(id(expr))
        if key is None:
            key = self._keys[id(expr)] = expression_text(expr)
        return key

    def _attribute(self, expr: ast.Attribute, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        if expr.scope == "context":
            return context.get(expr.name)
        return features.get(self._key(expr))

    def _call(self, expr: ast.Call, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        value = features.get(self._key(expr))
        if value is None and expr.function != "since":
            return 0  # counters and totals are never unknown
        return value

    def _name(self, expr: ast.Name, context: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        segment = self.program.segments.get(expr.name)
        if segment is not None:
            return self.evaluate(segment.condition, context, features)
        return features.get(expr.name)


# --- GoRules zen-engine ----------------------------------------------------------


def zen_module() -> Any | None:
    """The ``zen`` module when zen-engine is installed, else None."""
    try:
        return importlib.import_module("zen")
    except ImportError:
        return None


def zen_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("zen-engine")
    except Exception:
        return None


class ZenNames:
    """Plain identifiers for feature keys: zen reads ``f.views_Books_24h`` much faster
    than ``features['views("Books", 24h)']``, so the tables get its best form."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}

    def field(self, expr: ast.Expr) -> str:
        if isinstance(expr, ast.Attribute) and expr.scope == "context":
            return f"context.{expr.name}"
        if isinstance(expr, ast.Attribute | ast.Call):
            return f"f.{self.name(_feature_key(expr))}"
        raise Unsupported(f"zen tables compare features, not {expression_text(expr)}")

    def name(self, key: str) -> str:
        name = self.by_key.get(key)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_") or "feature"
            name = base
            while name in self.by_key.values():
                name = f"{base}_{len(self.by_key)}"
            self.by_key[key] = name
        return name

    def features(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """The supplied features the tables read, under their plain names."""
        return {name: features[key] for key, name in self.by_key.items() if key in features}


def _zen_value(expr: ast.Expr) -> str:
    match expr:
        case ast.String(value):
            return json.dumps(value)
        case ast.Number() | ast.Duration():
            value = expr.amount if isinstance(expr, ast.Number) else expr.seconds
            return repr(value)
        case ast.Boolean(value):
            return "true" if value else "false"
        case ast.ListLiteral(items):
            return "[" + ", ".join(_zen_value(item) for item in items) + "]"
        case ast.Negate(operand):
            return f"-{_zen_value(operand)}"
    raise Unsupported(f"zen tables compare with written-out values, not {expression_text(expr)}")


def _zen_cell(tests: list[tuple[str, ast.Expr]]) -> str:
    """One table cell (a unary test on the column's value) for a rule's tests on one field."""
    if len(tests) == 1:
        op, right = tests[0]
        if op == "==" and not isinstance(right, ast.ListLiteral):
            return _zen_value(right)
        if op == "in" and isinstance(right, ast.ListLiteral):
            return ", ".join(_zen_value(item) for item in right.items)
        if op in ("<", "<=", ">", ">="):
            return f"{op} {_zen_value(right)}"
    parts = []
    for op, right in tests:
        if op == "not in":
            parts.append(f"not ($ in {_zen_value(right)})")
        else:
            parts.append(f"$ {op} {_zen_value(right)}")
    return " and ".join(parts)


def _conjuncts(expr: ast.Expr) -> list[ast.Compare]:
    operands = expr.operands if isinstance(expr, ast.And) else (expr,)
    result = []
    for operand in operands:
        if not isinstance(operand, ast.Compare):
            raise Unsupported(f"zen tables hold 'and's of comparisons, not {expression_text(operand)}")
        result.append(operand)
    return result


def zen_graph(program: Program, names: ZenNames) -> dict[str, Any]:
    """The ruleset as a JDM graph: input -> one "first"-hit table per slot -> output.

    The input is ``{"context": {...}, "f": {...}}`` with features named by ``names``.
    """
    nodes: list[dict[str, Any]] = [
        {"id": "request", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}, "content": {}}
    ]
    edges: list[dict[str, Any]] = []
    for index, (slot, rules) in enumerate(rules_by_slot(program).items()):
        columns: dict[str, str] = {}
        rows: list[dict[str, str]] = []
        for rule in rules:
            by_field: dict[str, list[tuple[str, ast.Expr]]] = {}
            for compare in _conjuncts(rule.decl.condition):
                field = names.field(compare.left)
                by_field.setdefault(field, []).append((compare.op, compare.right))
            row = {"_id": rule.name, "out": json.dumps(rule.decl.content.name)}
            for field, tests in by_field.items():
                column = columns.setdefault(field, f"in{len(columns)}")
                row[column] = _zen_cell(tests)
            rows.append(row)
        default = default_content(program, slot)
        if default is not None:
            rows.append({"_id": "default", "out": json.dumps(default)})
        for row in rows:
            for column in columns.values():
                row.setdefault(column, "")
        table_id = f"table{index}"
        nodes.append(
            {
                "id": table_id,
                "type": "decisionTableNode",
                "name": slot,
                "position": {"x": 300, "y": 200 * index},
                "content": {
                    "hitPolicy": "first",
                    "inputs": [{"id": column, "name": field, "field": field} for field, column in columns.items()],
                    "outputs": [{"id": "out", "name": slot, "field": slot}],
                    "rules": rows,
                },
            }
        )
        edges.append({"id": f"in-{table_id}", "sourceId": "request", "targetId": table_id, "type": "edge"})
        edges.append({"id": f"{table_id}-out", "sourceId": table_id, "targetId": "response", "type": "edge"})
    nodes.append({"id": "response", "type": "outputNode", "name": "Response", "position": {"x": 600, "y": 0}})
    return {"nodes": nodes, "edges": edges}


class ZenTables:
    """The ruleset evaluated by zen-engine; ``decide`` returns content per slot."""

    def __init__(self, program: Program, zen: Any):
        self.slots = tuple(rules_by_slot(program))
        self.names = ZenNames()
        self.graph = zen_graph(program, self.names)
        self.engine = zen.ZenEngine()
        self.decision = self.engine.create_decision(json.dumps(self.graph))

    def request(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
        """A request as the tables read it (what a caller of zen would send)."""
        return {"context": context, "f": self.names.features(features)}

    def decide(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> Decision:
        result = self.decision.evaluate(self.request(context, features))["result"]
        return {slot: result.get(slot) for slot in self.slots}


# --- comparing contenders --------------------------------------------------------


def content_name(value: Any, payload_names: Mapping[str, str] | None = None) -> str | None:
    """A contender's answer for one slot as a content name (or None for nothing)."""
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(value, Mapping) and payload_names is not None:
        found = payload_names.get(json.dumps(value, sort_keys=True))
        if found is not None:
            return found
    raise TypeError(f"cannot tell which content this is: {value!r}")


def payload_names(program: Program) -> dict[str, str]:
    """Content names by their payload (as sorted JSON), to recognize a returned payload."""
    return {json.dumps(decl.payload, sort_keys=True): name for name, decl in program.contents.items()}


def engine_decide(engine: Any, program: Program) -> DecideFn:
    """Adapt ``tailor.Engine.decide`` to return content names per slot."""
    names = payload_names(program)
    slots = tuple(program.slots)

    def decide(context: Mapping[str, Any], features: Mapping[str, Any]) -> Decision:
        decision = engine.decide(context=context, features=features)
        result: Decision = {}
        for slot in slots:
            chosen = decision.slots.get(slot) if hasattr(decision.slots, "get") else decision.slots[slot]
            result[slot] = None if chosen is None else content_name(chosen.content, names)
        return result

    return decide


@dataclass(frozen=True)
class Mismatch:
    request: int
    expected: Decision
    got: Decision

    def __str__(self) -> str:
        slots = [slot for slot in self.expected if self.expected[slot] != self.got.get(slot)]
        detail = ", ".join(f"{slot}: expected {self.expected[slot]!r}, got {self.got.get(slot)!r}" for slot in slots)
        return f"request {self.request}: {detail or f'expected {self.expected}, got {self.got}'}"


def decisions(decide: DecideFn, requests: Sequence[Mapping[str, Any]]) -> list[Decision]:
    return [decide(request["context"], request["features"]) for request in requests]


def disagreements(
    expected: Sequence[Decision], contender: DecideFn, requests: Sequence[Mapping[str, Any]], limit: int = 5
) -> list[Mismatch]:
    """Requests on which ``contender`` decides otherwise than ``expected`` (at most ``limit``)."""
    found = []
    for index, (want, request) in enumerate(zip(expected, requests, strict=True)):
        got = contender(request["context"], request["features"])
        if {slot: got.get(slot) for slot in want} != want:
            found.append(Mismatch(index, want, got))
            if len(found) >= limit:
                break
    return found
