"""Predicate tables: the indexed builder equals asking every atom about every value.

``compiler.predicate_tables.table_of`` indexes atoms by constant and sweeps sorted
thresholds, so that a ruleset with one rule per product compiles in n·log n.
The reference here is the plain definition it replaces: a value keeps the
bits of every conjunction none of whose atoms fails it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor.compiler import predicate_tables
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.compiler.ir import UNKNOWN, Atom
from tailor.compiler.predicate_tables import _OTHER, FeatureTable, _atom_values, atom_holds, feature_stage, table_of

NUMBER = FeatureRef(FeatureKind.COUNT, 'views("Books", 1h)', "view", "Books", 3600.0)
STRING = FeatureRef(FeatureKind.CONTEXT, "context.sku", name="sku")


def reference_table(ref: FeatureRef, atoms: dict[Atom, int], uses: int, all_bits: int, kind: str) -> FeatureTable:
    """Every atom asked about every value: quadratic, and plainly right."""

    def keep(value: Any) -> int:
        killed = 0
        for atom, bits in atoms.items():
            if atom_holds(atom, value) is not True:
                killed |= bits
        return all_bits & ~killed

    keep_unknown = keep(UNKNOWN)
    if kind == "number":
        cuts = sorted({float(v) for a in atoms for v in _atom_values(a)})
        regions = []
        for index, cut in enumerate(cuts):
            below = cut - 1.0 if index == 0 else (cuts[index - 1] + cut) / 2
            regions.extend((keep(below), keep(cut)))
        regions.append(keep(cuts[-1] + 1.0 if cuts else 0.0))
        return FeatureTable(
            ref, feature_stage(ref), kind, uses, keep_unknown, 0, {}, tuple(cuts), tuple(regions), tuple(atoms)
        )
    values = {v for a in atoms for v in _atom_values(a)}
    other = keep(_OTHER)
    flips = {v: bits_of(keep(v) ^ other) for v in values}
    return FeatureTable(ref, feature_stage(ref), kind, uses, keep_unknown, other, flips, (), (), tuple(atoms))


def bits_of(mask: int) -> tuple[int, ...]:
    return tuple(bit for bit in range(mask.bit_length()) if mask >> bit & 1)


def built(ref: FeatureRef, atoms: dict[Atom, int], uses: int, all_bits: int, kind: str) -> FeatureTable:
    """``_table``, given each atom's bits as a mask, as the reference is."""
    return table_of(ref, {atom: bits_of(mask) for atom, mask in atoms.items()}, uses, all_bits, kind)


def assert_same(built: FeatureTable, expected: FeatureTable) -> None:
    assert built == expected
    assert list(built.keep_by_value) == list(expected.keep_by_value)  # same keys in the same order
    assert [type(k) for k in built.keep_by_value] == [type(k) for k in expected.keep_by_value]


N_BITS = 24

bit_sets = st.integers(min_value=1, max_value=(1 << N_BITS) - 1)
# Few distinct constants, so that atoms share them; ints and floats that are equal, and fractions between.
numbers = st.one_of(
    st.integers(min_value=-3, max_value=6),
    st.integers(min_value=-3, max_value=6).map(float),
    st.sampled_from([0.5, 2.5, -1.25, 1e9, -0.0, math.inf, -math.inf, 10**17 + 1]),
)
strings = st.sampled_from(["a", "b", "c", "sku-1", "sku-2", ""])


def atom_sets(constants: st.SearchStrategy[Any], ordered: bool) -> st.SearchStrategy[dict[Atom, int]]:
    """Atoms on one feature (which one does not matter to the table) mapped to the bits that hold them."""
    ops = ["==", "!="] + (["<", "<=", ">", ">="] if ordered else [])
    atoms = st.one_of(
        st.builds(Atom, st.sampled_from(ops), st.just(NUMBER), constants),
        st.builds(Atom, st.sampled_from(["in", "not in"]), st.just(NUMBER), st.frozensets(constants, max_size=4)),
        st.builds(Atom, st.sampled_from(["missing", "present"]), st.just(NUMBER)),
    )
    # Bits overlap freely: several atoms of one conjunction (what build_plan never makes) must be right too.
    return st.dictionaries(atoms, bit_sets, max_size=12)


@settings(max_examples=200, deadline=None)
@given(atom_sets(numbers, ordered=True), bit_sets)
def test_numeric_tables_equal_the_reference(atoms: dict[Atom, int], uses: int) -> None:
    all_bits = (1 << N_BITS) - 1
    assert_same(
        built(NUMBER, atoms, uses, all_bits, "number"), reference_table(NUMBER, atoms, uses, all_bits, "number")
    )


@settings(max_examples=200, deadline=None)
@given(atom_sets(strings, ordered=False), bit_sets)
def test_categorical_tables_equal_the_reference(atoms: dict[Atom, int], uses: int) -> None:
    all_bits = (1 << N_BITS) - 1
    assert_same(
        built(STRING, atoms, uses, all_bits, "string"), reference_table(STRING, atoms, uses, all_bits, "string")
    )


@settings(max_examples=100, deadline=None)
@given(atom_sets(st.one_of(numbers, st.booleans(), strings), ordered=False), bit_sets)
def test_mixed_constants_compare_as_python_does(atoms: dict[Atom, int], uses: int) -> None:
    """``1``, ``1.0`` and ``true`` are one key, as they are equal: the table must say what ``==`` says."""
    all_bits = (1 << N_BITS) - 1
    assert_same(built(STRING, atoms, uses, all_bits, "any"), reference_table(STRING, atoms, uses, all_bits, "any"))


@settings(max_examples=100, deadline=None)
@given(atom_sets(numbers, ordered=True), bit_sets)
def test_comparisons_on_an_untyped_attribute_are_asked_value_by_value(atoms: dict[Atom, int], uses: int) -> None:
    all_bits = (1 << N_BITS) - 1
    assert_same(built(STRING, atoms, uses, all_bits, "any"), reference_table(STRING, atoms, uses, all_bits, "any"))


def test_nan_constants_are_asked_value_by_value() -> None:
    nan = float("nan")
    atoms = {Atom("==", NUMBER, nan): 0b001, Atom("!=", NUMBER, nan): 0b010, Atom(">", NUMBER, nan): 0b100}
    assert_same(built(NUMBER, atoms, 0b111, 0b111, "number"), reference_table(NUMBER, atoms, 0b111, 0b111, "number"))
    assert_same(built(STRING, atoms, 0b111, 0b111, "any"), reference_table(STRING, atoms, 0b111, 0b111, "any"))


@pytest.mark.slow  # 20,000 atoms over plan-wide masks: tens of seconds of big-integer work
def test_one_rule_per_constant_asks_each_atom_a_constant_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 ``==`` atoms on one attribute: the reference asks 400 million questions; the index about 40,000."""
    n = 20_000
    asked = 0

    def counted(atom: Atom, value: Any) -> bool | None:
        nonlocal asked
        asked += 1
        return atom_holds(atom, value)

    monkeypatch.setattr(predicate_tables, "atom_holds", counted)
    atoms = {Atom("==", STRING, f"sku-{i}"): 1 << i for i in range(n)}
    atoms[Atom("in", STRING, frozenset({"sku-1", "sku-7"}))] = 1 << n
    everything = (1 << (n + 1)) - 1
    table = built(STRING, atoms, everything, everything, "string")
    assert asked <= 2 * len(atoms)  # the unknown value and a value no atom names, each asked of every atom
    assert table.keep_for_value("sku-7") == (1 << 7) | (1 << n)  # one value's mask: every one is as wide as the plan
    assert table.keep_for_value("sku-3") == 1 << 3
    assert table.keep_other == 0 and table.keep_unknown == 0

    n = 3_000  # every region's mask is as wide as the plan: keep the table small
    everything = (1 << (n + 1)) - 1
    thresholds = {Atom(">", NUMBER, i): 1 << i for i in range(n)}
    asked = 0
    table = built(NUMBER, thresholds, everything, everything, "number")
    assert asked <= len(thresholds)
    assert table.keep_for_number(2.5) == 0b111 | 1 << n  # > 0, > 1, > 2, and the bit no atom reads
