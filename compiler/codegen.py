"""Python source for a decision plan, compiled with ``compile()``.

The generator writes plain, readable Python (``tailor compile --emit
python`` shows it): one straight-line function per stage that applies each
feature's predicate table, and one small function per conjunction whose
remaining predicates the tables could not settle. Tables and constants are
bound as default arguments, so the hot code reads only fast locals. No
generated function grows with the number of rules: the rules live in the
tables, which keeps CPython's compiler far from its recursion limits.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from .features import FeatureKind
from .ir import Arith, CondTerm, Const, Feature, Neg, Predicate, Term, Test
from .plan import STAGE_CONTEXT, STAGE_STORE, DecisionPlan, FeatureTable
from .values import arith_value, condition_value


class CodeWriter:
    """Indentation-aware source builder, after Jinja2's code generator."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._indent = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self._indent + text) if text else "")

    def indent(self) -> None:
        self._indent += 1

    def outdent(self) -> None:
        self._indent -= 1

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    """The generated functions and the source they came from."""

    source: str
    stage0: Any  # (context) -> alive bits
    needed: Any  # (alive) -> texts of store features still needed
    stage1: Any  # (alive, fetched) -> alive bits
    checks: tuple[Any, ...]  # by bit: None, or (values) -> bool, for what the tables could not settle


def generate(plan: DecisionPlan) -> CompiledPlan:
    constants: dict[str, Any] = {"_bisect": bisect_left, "ALL": plan.all_bits}
    writer = CodeWriter()
    writer.line(f"# Decision plan for ruleset {plan.program.name!r}: generated code, do not edit.")
    writer.line(f"# {len(plan.rules)} rules, {len(plan.conjunctions)} conjunctions, {len(plan.tables)} features.")
    writer.line()
    context_tables = [t for t in plan.tables_for(STAGE_CONTEXT) if t.atoms]
    store_tables = plan.tables_for(STAGE_STORE)
    names = {t.ref.text: f"F{i}" for i, t in enumerate(plan.tables)}
    for table in plan.tables:
        _bind_table(constants, names[table.ref.text], table)

    _function(writer, "stage0", ["context"], context_tables, names, constants, source="context")
    writer.line()
    bound = [f"{names[t.ref.text]}_{suffix}" for t in store_tables for suffix in ("USES", "TEXT")]
    writer.line(_signature("needed", ["alive"], bound, constants))
    writer.indent()
    writer.line('"""Store features that a surviving candidate still reads: the one fetch of stage 1."""')
    writer.line("out = []")
    for table in store_tables:
        name = names[table.ref.text]
        writer.line(f"if alive & {name}_USES:")
        writer.indent()
        writer.line(f"out.append({name}_TEXT)")
        writer.outdent()
    writer.line("return out")
    writer.outdent()
    writer.line()
    _function(writer, "stage1", ["alive", "fetched"], [t for t in store_tables if t.atoms], names, constants, "store")
    writer.line()

    check_names: list[str | None] = []
    for conjunction in plan.conjunctions:
        if conjunction.formula is not None:
            name = f"check_{conjunction.bit}"
            constants[f"{name}_FORMULA"] = conjunction.formula
            constants["_condition_value"] = condition_value
            writer.line(f"def {name}(V, _f={name}_FORMULA, _cv=_condition_value):")
            writer.indent()
            writer.line(f"# {conjunction.rule.name}: too large to expand; evaluated as a whole")
            writer.line("return _cv(_f, V) is True")
            writer.outdent()
            writer.line()
            check_names.append(name)
        elif conjunction.residual:
            name = f"check_{conjunction.bit}"
            _check(writer, name, conjunction.rule.name, conjunction.residual, constants)
            writer.line()
            check_names.append(name)
        else:
            check_names.append(None)
    writer.line(
        "CHECKS = (" + ", ".join(n or "None" for n in check_names) + ("," if len(check_names) == 1 else "") + ")"
    )
    source = writer.source()
    namespace = dict(constants)
    exec(compile(source, f"<plan {plan.program.name}>", "exec"), namespace)
    return CompiledPlan(source, namespace["stage0"], namespace["needed"], namespace["stage1"], namespace["CHECKS"])


def _signature(name: str, params: list[str], bound: list[str], constants: dict[str, Any]) -> str:
    defaults = [f"{b}={b}" for b in bound if b in constants]
    return f"def {name}(" + ", ".join(params + defaults) + "):"


def _bind_table(constants: dict[str, Any], name: str, table: FeatureTable) -> None:
    constants[f"{name}_TEXT"] = table.ref.text
    constants[f"{name}_USES"] = table.uses
    constants[f"{name}_UNKNOWN"] = table.keep_unknown
    if table.numeric:
        constants[f"{name}_CUTS"] = table.cuts
        constants[f"{name}_REGIONS"] = table.keep_by_region
        constants[f"{name}_N"] = len(table.cuts)
        small = _small_integers(table)
        if small:
            constants[f"{name}_SMALL"] = small
            constants[f"{name}_SMALL_N"] = len(small)
    else:
        constants[f"{name}_BY_VALUE"] = table.keep_by_value
        constants[f"{name}_OTHER"] = table.keep_other


def _function(
    writer: CodeWriter,
    function: str,
    params: list[str],
    tables: list[FeatureTable] | tuple[FeatureTable, ...],
    names: dict[str, str],
    constants: dict[str, Any],
    source: str,
) -> None:
    bound = ["ALL", "_bisect"]
    for table in tables:
        name = names[table.ref.text]
        bound += [
            f"{name}_{suffix}"
            for suffix in ("TEXT", "USES", "UNKNOWN", "CUTS", "REGIONS", "N", "SMALL", "SMALL_N", "BY_VALUE", "OTHER")
        ]
    writer.line(_signature(function, params, bound, constants))
    writer.indent()
    if source == "context":
        writer.line('"""Stage 0: what the request context alone settles."""')
        writer.line("alive = ALL")
    else:
        writer.line('"""Stage 1: the store features fetched in one round trip."""')
        writer.line("# A feature no survivor reads keeps every surviving bit, so tables apply unconditionally.")
    for table in tables:
        name = names[table.ref.text]
        writer.line(
            f"# {table.ref.text}: "
            + "; ".join(a.text() for a in table.atoms[:4])
            + (" ..." if len(table.atoms) > 4 else "")
        )
        if source == "context":
            writer.line(f"v = context.get({table.ref.name!r})")
        elif table.ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
            writer.line(f"v = fetched.get({name}_TEXT, 0)")
        else:
            writer.line(f"v = fetched.get({name}_TEXT)")
        _apply_table(writer, name, table)
    writer.line("return alive")
    writer.outdent()


# Counts are small integers: a list indexed by the count answers most lookups
# without bisecting. Thresholds above this fall back to bisection.
SMALL_INTEGER_LIMIT = 64


def _small_integers(table: FeatureTable) -> tuple[int, ...]:
    if not table.cuts or max(table.cuts) > SMALL_INTEGER_LIMIT:
        return ()
    return tuple(table.keep_for_number(v) for v in range(int(max(table.cuts)) + 2))


def _apply_table(writer: CodeWriter, name: str, table: FeatureTable) -> None:
    if table.numeric:
        if _small_integers(table):
            writer.line(f"if type(v) is int and 0 <= v < {name}_SMALL_N:")
            writer.indent()
            writer.line(f"alive &= {name}_SMALL[v]")
            writer.outdent()
            writer.line("elif (type(v) is int or type(v) is float) and v == v:")
        else:
            writer.line("if (type(v) is int or type(v) is float) and v == v:")
        writer.indent()
        writer.line(f"i = _bisect({name}_CUTS, v)")
        writer.line(
            f"alive &= {name}_REGIONS[2 * i + 1] if i < {name}_N and {name}_CUTS[i] == v else {name}_REGIONS[2 * i]"
        )
        writer.outdent()
    else:
        check = {"string": "type(v) is str", "bool": "type(v) is bool"}.get(table.value_type, "v is not None")
        writer.line(f"if {check}:")
        writer.indent()
        if table.keep_by_value:
            writer.line(f"alive &= {name}_BY_VALUE.get(v, {name}_OTHER)")
        else:
            writer.line(f"alive &= {name}_OTHER")
        writer.outdent()
    writer.line("else:")
    writer.indent()
    writer.line(f"alive &= {name}_UNKNOWN")
    writer.outdent()


def _check(
    writer: CodeWriter, name: str, rule: str, residual: tuple[Predicate, ...], constants: dict[str, Any]
) -> None:
    """A function that is True when every residual predicate holds (unknown is not true)."""
    writer.line(f"def {name}(V):")
    writer.indent()
    writer.line(f"# {rule}: " + " and ".join(p.text() for p in residual))
    for index, predicate in enumerate(residual):
        left, right = _predicate_sides(predicate, constants, f"{name}_{index}")
        op = predicate.op
        writer.line(f"a = {left}")
        if op == "missing":
            writer.line("if a is not None:")
        elif op == "present":
            writer.line("if a is None:")
        else:
            if isinstance(predicate, Test):
                writer.line(f"b = {right}")
                writer.line(f"if a is None or b is None or not (a {op} b):")
            else:
                writer.line(f"if a is None or not (a {op} {right}):")
        writer.indent()
        writer.line("return False")
        writer.outdent()
    writer.line("return True")
    writer.outdent()


def _predicate_sides(predicate: Predicate, constants: dict[str, Any], prefix: str) -> tuple[str, str]:
    if isinstance(predicate, Test):
        right = _term_code(predicate.right, constants, prefix + "r") if predicate.right is not None else "None"
        return _term_code(predicate.left, constants, prefix + "l"), right
    value_name = f"{prefix}_VALUE"
    constants[value_name] = predicate.value
    return f"V[{predicate.feature.text!r}]", _constant(value_name, predicate.value)


def _constant(name: str, value: Any) -> str:
    """A literal for plain finite values; otherwise the name it is bound to."""
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    return name


def _term_code(term: Term, constants: dict[str, Any], prefix: str) -> str:
    """An expression that is None when the term is unknown."""
    constants.setdefault("_arith", arith_value)
    if isinstance(term, Const):
        return _constant(_bind(constants, prefix, term.value), term.value)
    if isinstance(term, Feature):
        return f"V[{term.ref.text!r}]"
    if isinstance(term, Neg):
        return f"_arith('neg', {_term_code(term.operand, constants, prefix + 'n')}, 0)"
    if isinstance(term, CondTerm):
        constants.setdefault("_condition_value", condition_value)
        return f"_condition_value({_bind(constants, prefix + '_COND', term.condition)}, V)"
    assert isinstance(term, Arith)
    left = _term_code(term.left, constants, prefix + "a")
    right = _term_code(term.right, constants, prefix + "b")
    return f"_arith({term.op!r}, {left}, {right})"


def _bind(constants: dict[str, Any], name: str, value: Any) -> str:
    constants[name] = value
    return name
