"""Stages 0 and 1 as code: each feature's predicate table applied in a straight line.

A feature reads its value once, checks its type (a wrong type is unknown),
and narrows the candidate set ``alive`` by what that value leaves. A small
table is a chain of comparisons written in place (``if user_tier in
{'gold', 'platinum'}:``); a large one a named constant looked up by value, or
bisected by number; a very large categorical one whose values each change few
candidates (one rule per product) names, per value, the bits it flips. Either
way a feature costs one lookup and one AND, however many rules test it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .codegen_source import (
    COMMENT_LENGTH,
    INLINE_LENGTH,
    CodeWriter,
    Constants,
    dict_lines,
    mask_literal,
    one_line,
    tuple_literal,
    value_literal,
)
from .features import FeatureKind
from .predicate_tables import FeatureTable

# Counts are small integers: a tuple indexed by the count answers most lookups
# without bisecting. Thresholds above this fall back to bisection.
SMALL_INTEGER_LIMIT = 64
# A categorical table whose values leave at most this many different candidate
# sets, or a numeric one of at most this many intervals, is a chain of
# comparisons: cheaper than a lookup at this size, and readable in place.
CHAIN_GROUPS = 3
CHAIN_BRANCHES = 4
# A categorical table whose masks, one per value, would take more than this
# many bits, and whose values flip at most SPARSE_FLIPS candidates each on
# average, is written as the bits each value flips (built per decision: a few
# shifts) rather than as masks: one rule per product would otherwise make the
# module, and the memory it holds, quadratic in the rule count.
SPARSE_TABLE_BITS = 1 << 23
SPARSE_FLIPS = 64
# How many of a table's predicates its comment shows.
SHOWN_PREDICATES = 4


class TableWriter:
    """Writes ``stage0``, ``needed`` and ``stage1`` into ``code``, naming large tables in ``constants``."""

    def __init__(self, features: Mapping[str, str], constants: Constants, code: CodeWriter):
        self.features = features  # feature text -> its name in the code
        self.constants = constants
        self.code = code
        self.uses_bisect = False

    def stage0(self, tables: Sequence[FeatureTable], experiments: bool = False) -> None:
        """``experiments``: the plan has experiments, so stage 0 also takes each one's arm (``arms``)."""
        code = self.code
        if experiments:
            code.line("def stage0(context, arms):")
            code.indent()
            code.line('"""Stage 0: the candidates the request context and the user\'s experiment arms leave."""')
        else:
            code.line("def stage0(context):")
            code.indent()
            code.line('"""Stage 0: the candidates the request context leaves."""')
        code.line("alive = ALL")
        for table in tables:
            source = "arms" if table.ref.kind is FeatureKind.EXPERIMENT else "context"
            self._apply(table, f"{source}.get({table.ref.name!r})")
        code.line("return alive")
        code.outdent()

    def stage1(self, tables: Sequence[FeatureTable]) -> None:
        code = self.code
        code.line("def stage1(alive, fetched):")
        code.indent()
        code.line('"""Stage 1: the candidates the store features, fetched in one round trip, leave."""')
        code.comment("A feature no survivor reads keeps every surviving bit, so tables apply unconditionally.")
        for table in tables:
            ref = table.ref
            zero = ", 0" if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL) else ""
            self._apply(table, f"fetched.get({ref.text!r}{zero})")
        code.line("return alive")
        code.outdent()

    def needed(self, tables: Sequence[FeatureTable]) -> None:
        code = self.code
        code.line("def needed(alive):")
        code.indent()
        code.line('"""The store features a surviving candidate still reads: the one fetch of stage 1."""')
        code.line("out = []")
        for table in tables:
            code.line(f"if alive & {self.constants.mask(table.uses, self.features[table.ref.text], 'USES')}:")
            code.indent()
            code.line(f"out.append({table.ref.text!r})")
            code.outdent()
        code.line("return out")
        code.outdent()

    def _apply(self, table: FeatureTable, read: str) -> None:
        name = self.features[table.ref.text]
        shown = "; ".join(a.text() for a in table.atoms[:SHOWN_PREDICATES])
        self.code.comment(one_line(shown + (" ..." if len(table.atoms) > SHOWN_PREDICATES else ""), COMMENT_LENGTH))
        self.code.line(f"{name} = {read}")
        if table.numeric:
            self._numeric(table, name)
        else:
            self._categorical(table, name)

    def _numeric(self, table: FeatureTable, name: str) -> None:
        code, constants = self.code, self.constants
        code.line(f"kind = type({name})")
        number = f"(kind is int or kind is float) and {name} == {name}"
        branches = _intervals(name, table)
        if len(branches) <= CHAIN_BRANCHES and all(constants.fits(mask) for _, mask in branches):
            code.line(f"if {number}:")
            code.indent()
            self._chain(branches, name)
            code.outdent()
            self._otherwise(table, name)
            return
        width = constants.width
        small = _small_integers(table)
        if small:
            notes = [f"{name} == {value}" for value in range(len(small))]
            masks = [mask_literal(m, width) for m in small]
            code.line(f"if kind is int and 0 <= {name} < {len(small)}:")
            code.indent()
            code.line(f"alive &= {constants.table(name, 'SMALL', masks, notes)}[{name}]")
            code.outdent()
            code.line(f"elif {number}:")
        else:
            code.line(f"if {number}:")
        code.indent()
        self.uses_bisect = True
        count = len(table.cuts)
        masks = [mask_literal(m, width) for m in table.keep_by_region]
        cuts = constants.table(name, "CUTS", [repr(c) for c in table.cuts], [""] * count, INLINE_LENGTH // 2)
        regions = constants.table(name, "REGIONS", masks, _region_notes(name, table.cuts), INLINE_LENGTH // 2)
        code.line(f"i = bisect_left({cuts}, {name})")
        code.line(f"alive &= {regions}[2 * i + 1] if i < {count} and {cuts}[i] == {name} else {regions}[2 * i]")
        code.outdent()
        self._otherwise(table, name)

    def _categorical(self, table: FeatureTable, name: str) -> None:
        code, constants = self.code, self.constants
        known = {"string": f"type({name}) is str", "bool": f"type({name}) is bool"}.get(
            table.value_type, f"{name} is not None"
        )
        code.line(f"if {known}:")
        code.indent()
        values = sorted(table.flips_by_value, key=repr)
        groups: dict[tuple[int, ...], list[Any]] = {}  # the values that leave the same candidates
        for value in values:
            groups.setdefault(table.flips_by_value[value], []).append(value)
        masks = (
            {flips: table.keep_for_value(vs[0]) for flips, vs in groups.items()} if len(groups) <= CHAIN_GROUPS else {}
        )
        if not values:
            self._narrow(table.keep_other, name, "OTHER")
        elif (
            table.value_type in ("string", "bool")
            and masks
            and all(constants.fits(mask) for mask in (*masks.values(), table.keep_other))
        ):
            branches: list[tuple[str | None, int]] = [(_membership(name, groups[f]), m) for f, m in masks.items()]
            self._chain([*branches, (None, table.keep_other)], name)
        elif _sparse(table, constants.width):
            self._flips(table, name, values)
        else:
            constant = f"{name.upper()}_KEEP"
            entries = [(value_literal(v), mask_literal(table.keep_for_value(v), constants.width), "") for v in values]
            constants.define(constant, dict_lines(constant, entries))
            code.line(f"alive &= {constant}.get({name}, {constants.mask(table.keep_other, name, 'OTHER')})")
        code.outdent()
        self._otherwise(table, name)

    def _flips(self, table: FeatureTable, name: str, values: list[Any]) -> None:
        """A large table whose values each change few candidates: the bits each flips from what any other
        value keeps, rather than a mask as wide as the plan per value."""
        code, constants = self.code, self.constants
        constant = f"{name.upper()}_FLIPS"
        entries = [(value_literal(v), tuple_literal(map(str, table.flips_by_value[v])), "") for v in values]
        constants.define(constant, dict_lines(constant, entries))
        code.line(f"keep = {constants.mask(table.keep_other, name, 'OTHER')}")
        code.line(f"for bit in {constant}.get({name}, ()):")
        code.indent()
        code.line("keep ^= 1 << bit")
        code.outdent()
        code.line("alive &= keep")

    def _otherwise(self, table: FeatureTable, name: str) -> None:
        self.code.line("else:")
        self.code.indent()
        self._narrow(table.keep_unknown, name, "UNKNOWN")
        self.code.outdent()

    def _chain(self, branches: list[tuple[str | None, int]], name: str) -> None:
        """``if``/``elif`` tests, the last None (``else``), each narrowing the candidates.

        Trailing branches that keep every candidate are left out."""
        while len(branches) > 1 and branches[-1][1] == self.constants.all_bits:
            branches = branches[:-1]
        for index, (test, mask) in enumerate(branches):
            if len(branches) > 1 or test is not None:
                self.code.line("else:" if test is None else f"{'if' if index == 0 else 'elif'} {test}:")
                self.code.indent()
            self._narrow(mask, name, "")
            if len(branches) > 1 or test is not None:
                self.code.outdent()

    def _narrow(self, mask: int, name: str, role: str) -> None:
        """``alive &= mask``, or nothing when every candidate survives."""
        if mask == self.constants.all_bits:
            self.code.line("pass  # every candidate survives")
        else:
            self.code.line(f"alive &= {self.constants.mask(mask, name, role)}")


def _sparse(table: FeatureTable, width: int) -> bool:
    """Whether the table is written as flips (see SPARSE_TABLE_BITS)."""
    values = len(table.flips_by_value)
    if values * width <= SPARSE_TABLE_BITS:
        return False
    return sum(len(flips) for flips in table.flips_by_value.values()) <= SPARSE_FLIPS * values


def _membership(name: str, values: list[Any]) -> str:
    """The test that ``name`` is one of ``values`` (strings or booleans, already known to be of that type)."""
    if len(values) > 1:
        return f"{name} in {value_literal(frozenset(values))}"
    value = values[0]
    return f"{name} {'is' if isinstance(value, bool) else '=='} {value_literal(value)}"


def _intervals(name: str, table: FeatureTable) -> list[tuple[str | None, int]]:
    """A numeric table as tests in order, each with the candidates it leaves; neighbours that
    leave the same candidates are one test. The last test is None: every larger number."""
    regions = table.keep_by_region
    branches: list[tuple[str | None, int]] = []
    for index, mask in enumerate(regions):
        if index + 1 < len(regions) and regions[index + 1] == mask:
            continue
        if index + 1 == len(regions):
            branches.append((None, mask))
        else:
            op = "<" if index % 2 == 0 else "<="
            branches.append((f"{name} {op} {_number_literal(table.cuts[index // 2])}", mask))
    return branches


def _number_literal(value: float) -> str:
    """A threshold as written in rules: 3 rather than 3.0 (equal in every comparison)."""
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _region_notes(name: str, cuts: tuple[float, ...]) -> list[str]:
    """What each interval of a numeric table covers."""
    notes = []
    for index, cut in enumerate(cuts):
        notes.append(f"{name} < {cut!r}" if index == 0 else f"{cuts[index - 1]!r} < {name} < {cut!r}")
        notes.append(f"{name} == {cut!r}")
    notes.append(f"{name} > {cuts[-1]!r}" if cuts else "any number")
    return notes


def _small_integers(table: FeatureTable) -> tuple[int, ...]:
    if not table.cuts or max(table.cuts) > SMALL_INTEGER_LIMIT:
        return ()
    return tuple(table.keep_for_number(v) for v in range(int(max(table.cuts)) + 2))
