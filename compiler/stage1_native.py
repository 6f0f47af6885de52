"""Stage 1 in C, when the package was built with its helper (``_stage1.c``).

The generated ``stage1`` is plain Python: per store feature some ten
bytecodes around one table lookup and one AND, which is most of a decision's
time in a large ruleset. The helper runs the same lookups and ANDs over the
plan's tables with no interpreter in between. It decides exactly as the
generated code does (the property test holds them to it), so which one runs
is a matter of speed alone:

- without a C compiler at install time the helper is not built, and the
  generated code runs;
- ``TAILOR_NO_NATIVE=1`` in the environment makes every plan use the
  generated code (so tests exercise both);
- a plan with a flip table (one rule per product, see codegen_tables) keeps the
  generated code, whose flips hold a fraction of the memory masks would;
- a fetch that is not a plain dict goes to the generated code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tailor.dsl.native import NO_NATIVE, allowed

from .codegen_tables import _small_integers, _sparse  # the generated code's own choices
from .features import FeatureKind
from .plan import DecisionPlan
from .predicate_tables import STAGE_STORE, FeatureTable

try:
    from . import _stage1  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the generated code runs
    _stage1 = None

__all__ = ["NO_NATIVE", "available", "native_stage1"]
_KINDS = {"string": 0, "bool": 1, "number": 3}  # anything else (2): a value but None is known

Stage1 = Callable[[int, Mapping[str, Any]], int]


def available() -> bool:
    """Whether plans get the C stage 1 (built, and not switched off)."""
    return _stage1 is not None and allowed()


def native_stage1(plan: DecisionPlan, generated: Stage1) -> Stage1:
    """The fastest stage 1 for ``plan``: the helper over its tables, else ``generated`` (the plan's own)."""
    if not available():
        return generated
    tables = [t for t in plan.tables_for(STAGE_STORE) if t.atoms]
    width = len(plan.conjunctions)
    if any(not t.numeric and _sparse(t, width) for t in tables):
        return generated
    spec = tuple(_table(t) for t in tables)
    run = _stage1.stage1  # type: ignore[union-attr]

    def stage1(alive: int, fetched: Mapping[str, Any]) -> int:
        if type(fetched) is dict:
            return run(alive, fetched, spec)
        return generated(alive, fetched)

    return stage1


def _table(table: FeatureTable) -> tuple[Any, ...]:
    """One table as the helper reads it (see ``_stage1.c``)."""
    ref = table.ref
    absent = 0 if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL) else None
    kind = _KINDS.get(table.value_type, 2)
    if table.numeric:
        small = _small_integers(table)
        return (ref.text, absent, kind, {}, small, table.cuts, table.keep_by_region, 0, table.keep_unknown)
    by_value = {value: table.keep_for_value(value) for value in table.flips_by_value}
    return (ref.text, absent, kind, by_value, (), (), (), table.keep_other, table.keep_unknown)
