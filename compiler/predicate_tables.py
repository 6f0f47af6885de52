"""Predicate tables: for each feature, which candidate bits survive each of its values.

A feature's atoms (``==``, ``in``, ``<`` ... against constants) are compiled
into one table: for categorical features a map from value to the bits it
flips, for numeric ones the bits kept in each region between and at the
thresholds (found by bisection). Every distinct predicate is therefore
evaluated once per decision, and a feature's whole family of tests costs one
lookup and one AND, whatever the rule count.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .features import FeatureKind, FeatureRef
from .ir import UNKNOWN, Atom
from .normalize import compare

STAGE_CONTEXT, STAGE_STORE, STAGE_MODEL = 0, 1, 2


def feature_stage(ref: FeatureRef) -> int:
    if ref.kind is FeatureKind.CONTEXT or ref.kind is FeatureKind.EXPERIMENT:  # an arm is drawn from the request
        return STAGE_CONTEXT
    if ref.kind is FeatureKind.MODEL:
        return STAGE_MODEL
    return STAGE_STORE


@dataclass(frozen=True, slots=True)
class FeatureTable:
    """Which candidate bits survive each value of one feature.

    A categorical value is stored as the bits it *flips* from ``keep_other``
    (what a value no atom names keeps), not as a mask of its own: with one
    rule per product each value flips a bit or two, and a mask per value as
    wide as the plan would take memory quadratic in the rule count.
    """

    ref: FeatureRef
    stage: int
    value_type: str  # "string", "bool", "number", or "any" (only tested for presence)
    uses: int  # bits whose conjunctions read this feature at all
    keep_unknown: int
    keep_other: int  # a known value that no atom names (categorical), or any known value (presence)
    flips_by_value: dict[Any, tuple[int, ...]]  # categorical: the bits, ascending, where it differs from keep_other
    cuts: tuple[float, ...]  # numeric: sorted thresholds
    keep_by_region: tuple[int, ...]  # numeric: 2 * len(cuts) + 1 regions
    atoms: tuple[Atom, ...]

    @property
    def numeric(self) -> bool:
        return self.value_type == "number"

    def keep_for_value(self, value: Any) -> int:
        """The surviving bits for a known categorical value (what the generated code computes)."""
        flips = self.flips_by_value.get(value)
        return self.keep_other if not flips else self.keep_other ^ bits_mask(flips)

    @property
    def keep_by_value(self) -> dict[Any, int]:
        """Every named value's surviving bits: as wide as the plan each, so for small tables and tests."""
        return {value: self.keep_for_value(value) for value in self.flips_by_value}

    def keep_for_number(self, value: float) -> int:
        """The surviving bits for a known numeric value (what the generated code computes)."""
        index = bisect_left(self.cuts, value)
        if index < len(self.cuts) and self.cuts[index] == value:
            return self.keep_by_region[2 * index + 1]
        return self.keep_by_region[2 * index]


def bits_mask(bits: Iterable[int]) -> int:
    """The int with these bits set, built in one pass over a buffer when there are many."""
    bits = bits if isinstance(bits, list | tuple) else list(bits)
    if len(bits) <= 16:
        mask = 0
        for bit in bits:
            mask |= 1 << bit
        return mask
    buffer = bytearray(max(bits) // 8 + 1)
    for bit in bits:
        buffer[bit >> 3] |= 1 << (bit & 7)
    return int.from_bytes(buffer, "little")


def table_of(ref: FeatureRef, atoms: Mapping[Atom, Sequence[int]], uses: int, all_bits: int, kind: str) -> FeatureTable:
    """The feature's table: for each value the table can tell apart, the bits whose atoms hold.

    ``atoms`` maps each atom to the bits of the conjunctions that contain it
    (all within ``all_bits``). The values are the constants the atoms name, or
    for numbers one point per region between and at the thresholds.
    """
    if kind == "number":
        cuts = sorted({float(v) for a in atoms for v in _atom_values(a)})
        points = []
        for index, cut in enumerate(cuts):
            below = cut - 1.0 if index == 0 else (cuts[index - 1] + cut) / 2
            points.extend((below, cut))
        points.append(cuts[-1] + 1.0 if cuts else 0.0)
        regions = _keep_each({atom: bits_mask(bits) for atom, bits in atoms.items()}, all_bits, points)
        keep_unknown = _keep_one(atoms, all_bits, UNKNOWN)
        return FeatureTable(
            ref, feature_stage(ref), kind, uses, keep_unknown, 0, {}, tuple(cuts), tuple(regions), tuple(atoms)
        )
    values = list({v for a in atoms for v in _atom_values(a)})
    on_other = {atom: atom_holds(atom, _OTHER) is True for atom in atoms}
    other = all_bits & ~bits_mask(bit for atom, bits in atoms.items() if not on_other[atom] for bit in bits)
    unknown = _keep_one(atoms, all_bits, UNKNOWN)
    by_value = dict(zip(values, _flips_each(atoms, on_other, values), strict=True))
    return FeatureTable(ref, feature_stage(ref), kind, uses, unknown, other, by_value, (), (), tuple(atoms))


def _flips_each(
    atoms: Mapping[Atom, Sequence[int]], on_other: Mapping[Atom, bool], values: list[Any]
) -> list[tuple[int, ...]]:
    """For each of ``values`` (known, distinct), the bits it keeps differently from a value no atom names.

    A bit survives a value when every atom of its conjunction holds for it. An
    atom naming constants (``==``, ``in``, ``!=``, ``not in``) holds for a
    value it does not name just as for an unnamed one, so a value can only flip
    the bits of the atoms naming it, found through a dict by constant ("equal"
    meaning what ``==`` means): one rule per product costs a bit or two per
    value, not a mask as wide as the plan. Atoms the index cannot reason about
    (an order on strings, a NaN constant) are asked value by value.
    """
    naming: dict[Any, list[Atom]] = {}
    asked: list[Atom] = []
    atoms_of_bit: dict[int, list[Atom]] = {}
    for atom, bits in atoms.items():
        for bit in bits:
            atoms_of_bit.setdefault(bit, []).append(atom)
        if atom.op in ("present", "missing"):
            continue  # the same for every known value
        constants = _atom_values(atom)
        if (atom.op in _MEMBERSHIP or atom.op in _EXCLUSION) and all(c == c for c in constants):
            for constant in constants:
                naming.setdefault(constant, []).append(atom)
        else:
            asked.append(atom)  # NaN equals nothing, not even itself; orders are asked
    flips = []
    for value in values:
        holds = {atom: atom.op in _MEMBERSHIP for atom in naming.get(value, ())}
        for atom in asked:
            truth = atom_holds(atom, value) is True
            if truth != on_other[atom]:
                holds[atom] = truth
        if len(holds) == 1:  # the common case: one atom flips, and its bits flip unless another atom pins them
            [(atom, truth)] = holds.items()
            touched: Iterable[int] = atoms[atom]
        else:
            touched = sorted({bit for atom in holds for bit in atoms[atom]})
        flipped = []
        for bit in touched:
            of_bit = atoms_of_bit[bit]
            if len(of_bit) == 1 or all(holds.get(a, on_other[a]) for a in of_bit) != all(on_other[a] for a in of_bit):
                flipped.append(bit)
        flips.append(tuple(flipped))
    return flips


def _keep_one(atoms: Mapping[Atom, Sequence[int]], all_bits: int, value: Any) -> int:
    """The bits that survive one value: every atom asked. For the few values every table has."""
    return all_bits & ~bits_mask(
        bit for atom, bits in atoms.items() if atom_holds(atom, value) is not True for bit in bits
    )


_MEMBERSHIP = ("==", "in")
_EXCLUSION = ("!=", "not in")
_ORDER = ("<", "<=", ">", ">=")


def _keep_each(atoms: Mapping[Atom, int], all_bits: int, values: list[float]) -> list[int]:
    """A numeric table's ``_keep_one`` for each of ``values`` (known, distinct), without asking
    every atom about every value.

    Many thresholds on one feature would make asking each atom cost their
    product. Instead the atoms (each with its mask) are indexed: those
    that name constants by constant (a dict, so "equal" means what ``==``
    means), and the numeric comparisons by threshold, which a sweep over the
    sorted values settles in n·log n. A conjunction's atoms on one feature are
    merged by the normalizer, so a bit belongs to at most one ``==``/``in``
    atom and "killed unless its atom names the value" is a set difference;
    bits that belong to several (never, from ``build_plan``) are settled one
    atom at a time. Atoms the index cannot reason about (an unordered or NaN
    constant) are asked value by value, as ``_keep_one`` would.
    """
    members: dict[Any, int] = {}  # constant -> bits of the ==/in atoms naming it
    excluded: dict[Any, int] = {}  # constant -> bits of the !=/not in atoms naming it
    membership_bits = shared = always_killed = 0
    membership: list[tuple[Atom, int]] = []
    ordered: list[tuple[Atom, int]] = []
    asked: list[tuple[Atom, int]] = []  # settled value by value
    for atom, bits in atoms.items():
        op = atom.op
        if op == "present":
            continue  # true for every known value
        if op == "missing":
            always_killed |= bits
        elif op in _MEMBERSHIP or op in _EXCLUSION:
            constants = _atom_values(atom)
            if not all(c == c for c in constants):  # NaN equals nothing, not even itself
                asked.append((atom, bits))
                continue
            index = members if op in _MEMBERSHIP else excluded
            for constant in constants:
                before = index.get(constant)
                index[constant] = bits if before is None else before | bits  # shared, not copied: masks are wide
            if op in _MEMBERSHIP:
                shared |= membership_bits & bits
                membership_bits |= bits
                membership.append((atom, bits))
        elif op in _ORDER and _orderable(atom.value):
            ordered.append((atom, bits))
        else:
            asked.append((atom, bits))
    if ordered and not all(_orderable(v) for v in values):
        asked += ordered
        ordered = []
    # Bits of several membership atoms: killed when any of them misses the value.
    multiple = [(atom, bits & shared) for atom, bits in membership if bits & shared]
    base = all_bits & ~(membership_bits & ~shared) & ~always_killed
    order_killed = _order_killed(ordered, values) if ordered else None
    kept = []
    for index, value in enumerate(values):
        keep = members.get(value, 0)
        if base:
            keep |= base
        killed = always_killed | excluded.get(value, 0)
        if order_killed is not None:
            killed |= order_killed[index]
        for atom, bits in multiple:
            if atom_holds(atom, value) is not True:
                killed |= bits
        for atom, bits in asked:
            if atom_holds(atom, value) is not True:
                killed |= bits
        kept.append(keep & ~killed if killed else keep)
    return kept


def _orderable(value: Any) -> bool:
    """A number the sweep may sort and bisect (NaN is not ordered)."""
    return isinstance(value, int | float) and value == value


def _order_killed(ordered: list[tuple[Atom, int]], values: list[Any]) -> list[int]:
    """For each value, the bits of the ``<``/``<=``/``>``/``>=`` atoms it fails.

    Sorted, the values an atom fails form a prefix (``x > c`` fails up to c)
    or a suffix (``x < c`` fails from c on), so one pass each way ORs them up.
    """
    ranked = sorted(range(len(values)), key=values.__getitem__)
    sorted_values = [values[i] for i in ranked]
    n = len(values)
    fails_before = [0] * (n + 1)  # [k]: bits of atoms failing positions 0 .. k-1
    fails_from = [0] * (n + 1)  # [k]: bits of atoms failing positions k .. n-1
    for atom, bits in ordered:
        op, constant = atom.op, atom.value
        if op == ">":
            fails_before[bisect_right(sorted_values, constant)] |= bits
        elif op == ">=":
            fails_before[bisect_left(sorted_values, constant)] |= bits
        elif op == "<":
            fails_from[bisect_left(sorted_values, constant)] |= bits
        else:
            fails_from[bisect_right(sorted_values, constant)] |= bits
    killed = [0] * n
    running = 0
    for position in range(n - 1, -1, -1):
        running |= fails_before[position + 1]
        killed[position] = running
    running = 0
    for position in range(n):
        running |= fails_from[position]
        killed[position] |= running
    by_index = [0] * n
    for position, index in enumerate(ranked):
        by_index[index] = killed[position]
    return by_index


def _atom_values(atom: Atom) -> tuple:
    if atom.op in ("missing", "present"):
        return ()
    if atom.op in ("in", "not in"):
        return tuple(atom.value)
    return (atom.value,)


class _Other:
    """A known value equal to no constant of the ruleset."""

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


_OTHER: Any = _Other()


def atom_holds(atom: Atom, value: Any) -> bool | None:
    """Three-valued truth of an atom for one (already validated) value."""
    if atom.op == "missing":
        return value is UNKNOWN
    if atom.op == "present":
        return value is not UNKNOWN
    if value is UNKNOWN:
        return None
    if value is _OTHER:
        return atom.op in ("!=", "not in")
    return compare(atom.op, value, atom.value)
