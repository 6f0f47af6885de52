"""The decision plan: one shared DAG of predicates for the whole ruleset.

Every rule's condition becomes a few conjunctions (its normal form's DNF).
Each conjunction owns one bit of a candidate set, numbered so that, within a
slot, a lower bit always ranks higher (priority, then source order). A
decision starts with every bit set and narrows it feature by feature:

- stage 0 applies the request context (free);
- stage 1 fetches, in one round trip, only the store features that some
  surviving candidate still uses, and applies them;
- stage 2 walks each slot's surviving candidates best-first and evaluates
  what the tables could not (models, arithmetic), stopping at the first
  candidate that holds, so a model runs only when no better rule fired.

A feature's atoms are compiled into a *predicate table*: for categorical
features a map from value to the bits that survive it, for numeric ones the
same over the intervals between its thresholds (found by bisection). Every
distinct predicate is therefore evaluated once per decision, and a feature's
whole family of tests costs one lookup and one AND, whatever the rule count.
That table is the index over categorical tests: a rule whose indexed test
fails is never looked at again.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .caps import RuleCap
from .check import Program
from .experiments import ExperimentPlan, HoldoutPlan, experiment_plans, holdout_plan
from .features import FeatureKind, FeatureRef
from .ir import UNKNOWN, Atom, Condition, Predicate, Test, predicate_features, predicates
from .normalize import NormalProgram, compare

if TYPE_CHECKING:
    from .model_inputs import ModelInput

# Cost tiers: what it takes to learn a predicate's value.
COST_CONTEXT = 0.0  # sent with the request
COST_STORE = 1.0  # one batched store fetch, shared by every store feature
COST_MODEL = 100.0  # an inference
COST_ARITHMETIC = 0.01

STAGE_CONTEXT, STAGE_STORE, STAGE_MODEL = 0, 1, 2


def feature_stage(ref: FeatureRef) -> int:
    if ref.kind is FeatureKind.CONTEXT or ref.kind is FeatureKind.EXPERIMENT:  # an arm is drawn from the request
        return STAGE_CONTEXT
    if ref.kind is FeatureKind.MODEL:
        return STAGE_MODEL
    return STAGE_STORE


def feature_cost(ref: FeatureRef) -> float:
    return (COST_CONTEXT, COST_STORE, COST_MODEL)[feature_stage(ref)]


# --- statistics: how often predicates held, fed back from the runtime ---


@dataclass(frozen=True, slots=True)
class PredicateStats:
    """Observed pass rates by predicate text, from ``tailor compile --stats``."""

    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # text -> (evaluated, held)

    @classmethod
    def load(cls, path: Path) -> PredicateStats:
        data = json.loads(path.read_text(encoding="utf-8"))
        counts = {
            text: (int(entry["evaluated"]), int(entry["held"])) for text, entry in data.get("predicates", {}).items()
        }
        return cls(counts)

    def pass_rate(self, predicate: Predicate) -> float:
        observed = self.counts.get(predicate.text())
        if observed is not None and observed[0] > 0:
            evaluated, held = observed
            return (held + 1) / (evaluated + 2)  # Laplace-smoothed
        return prior_pass_rate(predicate)


def prior_pass_rate(predicate: Predicate) -> float:
    """Simple priors when no statistics were given."""
    op = predicate.op
    if op == "==":
        return 0.1
    if op == "in":
        size = len(predicate.value) if isinstance(predicate, Atom) else 3
        return min(0.5, 0.1 * size)
    if op in ("!=", "not in", "present"):
        return 0.9
    if op == "missing":
        return 0.1
    return 0.5


def predicate_cost(predicate: Predicate) -> float:
    refs = predicate_features(predicate)
    cost = max((feature_cost(r) for r in refs), default=0.0)
    return cost + (COST_ARITHMETIC if isinstance(predicate, Test) else 0.0)


def rank(predicate: Predicate, stats: PredicateStats) -> tuple[float, float]:
    """Hellerstein's rank, cost / (1 - pass rate): cheap, selective tests first."""
    pass_rate = min(stats.pass_rate(predicate), 0.999)
    return predicate_cost(predicate) / (1.0 - pass_rate), pass_rate


# --- the plan ---


@dataclass(frozen=True, slots=True)
class Conjunction:
    """One way for a rule to fire; owns bit ``bit`` of the candidate set."""

    bit: int
    rule: PlannedRule
    atoms: tuple[Atom, ...]  # settled by predicate tables (stages 0 and 1)
    residual: tuple[Predicate, ...]  # evaluated in stage 2, in rank order
    formula: Condition | None = None  # a condition too large to expand, evaluated as a whole


@dataclass(frozen=True, slots=True)
class PlannedRule:
    name: str
    slot: str
    priority: int
    order: int
    content: str
    condition: Condition
    file: str
    line: int
    cap: RuleCap | None = None  # its atom is in each of the rule's conjunctions


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


@dataclass(frozen=True, slots=True)
class SlotPlan:
    name: str
    mask: int
    default: str | None
    first_bit: int
    last_bit: int


@dataclass(frozen=True, slots=True, eq=False)
class DecisionPlan:
    program: Program | None  # None in a served ruleset's copy, whose ``Ruleset.program`` rebuilds it from source
    rules: tuple[PlannedRule, ...]
    conjunctions: tuple[Conjunction, ...]  # by bit
    slots: dict[str, SlotPlan]
    tables: tuple[FeatureTable, ...]  # in stage, then rank order
    all_bits: int
    features: dict[str, FeatureRef]  # every feature the plan reads, by text
    predicates: tuple[Predicate, ...]  # every distinct predicate
    attribute_kinds: dict[str, str]  # attribute text -> its type's name (Program.attribute_types holds the Types)
    model_inputs: dict[str, tuple[ModelInput, ...]] = field(default_factory=dict)
    experiments: dict[str, ExperimentPlan] = field(default_factory=dict)  # how each experiment draws its arms
    holdout: HoldoutPlan | None = None
    public_attributes: frozenset[str] = frozenset()  # the user attributes declared public (not personal data)

    def tables_for(self, stage: int) -> tuple[FeatureTable, ...]:
        return tuple(t for t in self.tables if t.stage == stage)


def build_plan(
    normal: NormalProgram,
    stats: PredicateStats | None = None,
    model_inputs: Mapping[str, tuple[ModelInput, ...]] | None = None,
) -> DecisionPlan:
    """The plan stage. ``model_inputs`` names what each model reads, so stage 1 fetches it with everything else."""
    program = normal.program
    model_inputs = dict(model_inputs or {})
    stats = stats or PredicateStats()
    slot_index = {slot: index for index, slot in enumerate(program.slots)}
    ordered = sorted(normal.rules, key=lambda n: (slot_index[n.rule.slot], -n.rule.priority, n.rule.order))
    rules: list[PlannedRule] = []
    conjunctions: list[Conjunction] = []
    slot_bits: dict[str, list[int]] = {slot: [] for slot in program.slots}
    # By identity: hashing a predicate walks it, and the normalizer shares equal predicates (equal ones
    # that are distinct objects, from files normalized in different compiles, are ranked twice, alike).
    orders: dict[int, tuple[tuple[float, float], str]] = {}

    def order_of(predicate: Predicate) -> tuple[tuple[float, float], str]:
        """Rank, then text: computed once per distinct predicate, as rules share most of them."""
        order = orders.get(id(predicate))
        if order is None:
            order = orders[id(predicate)] = (rank(predicate, stats), predicate.text())
        return order

    for normal_rule in ordered:
        checked = normal_rule.rule
        condition = normal_rule.condition
        rule = PlannedRule(
            checked.name,
            checked.slot,
            checked.priority,
            checked.order,
            checked.decl.content.name,
            condition,
            checked.decl.span.file if checked.decl.span else "",
            checked.decl.span.line if checked.decl.span else 0,
            normal_rule.cap,
        )
        rules.append(rule)
        expanded = normal_rule.disjuncts
        if expanded is None:
            bit = len(conjunctions)
            conjunctions.append(Conjunction(bit, rule, (), (), condition))
            slot_bits[rule.slot].append(bit)
            continue
        for terms in expanded:
            bit = len(conjunctions)
            indexed: list[tuple[tuple[Any, ...], Atom]] = []
            rest: list[Predicate] = []
            for p in terms:
                stage = feature_stage(p.feature) if isinstance(p, Atom) else STAGE_MODEL
                if stage != STAGE_MODEL:
                    indexed.append(((stage, *order_of(p)), p))
                else:
                    rest.append(p)
            atoms = tuple(p for _key, p in sorted(indexed, key=itemgetter(0)))
            residual = tuple(sorted(rest, key=order_of))
            conjunctions.append(Conjunction(bit, rule, atoms, residual))
            slot_bits[rule.slot].append(bit)
    all_bits = (1 << len(conjunctions)) - 1
    slots: dict[str, SlotPlan] = {}
    for slot in program.slots:
        bits = slot_bits[slot]
        mask = bits_mask(bits)
        default = program.defaults.get(slot)
        slots[slot] = SlotPlan(
            slot, mask, default.content.name if default else None, bits[0] if bits else 0, bits[-1] if bits else -1
        )
    attribute_kinds = {text: kind.name for text, kind in program.attribute_types.items()}
    tables = _tables(conjunctions, attribute_kinds, stats, model_inputs)
    features: dict[str, FeatureRef] = {ref.text: ref for table in tables for ref in (table.ref,)}
    distinct: dict[Predicate, None] = {}
    for conjunction in conjunctions:
        for predicate in (*conjunction.atoms, *conjunction.residual, *_formula_predicates(conjunction)):
            distinct.setdefault(predicate)
            for ref in predicate_features(predicate):
                features.setdefault(ref.text, ref)
    return DecisionPlan(
        program,
        tuple(rules),
        tuple(conjunctions),
        slots,
        tables,
        all_bits,
        features,
        tuple(distinct),
        attribute_kinds,
        model_inputs,
        experiment_plans(program),
        holdout_plan(program),
        program.public_attributes,
    )


def _formula_predicates(conjunction: Conjunction) -> list[Predicate]:
    return predicates(conjunction.formula) if conjunction.formula is not None else []


def value_type(ref: FeatureRef, attribute_kinds: Mapping[str, str]) -> str:
    if ref.kind in (FeatureKind.PROFILE, FeatureKind.CONTEXT):
        kind = attribute_kinds.get(ref.text, "any")
        return "number" if kind == "duration" else kind
    if ref.kind is FeatureKind.EXPERIMENT:
        return "string"
    return "number"


def _tables(
    conjunctions: list[Conjunction],
    attribute_types: Mapping[str, str],
    stats: PredicateStats,
    model_inputs: Mapping[str, tuple[ModelInput, ...]],
) -> tuple[FeatureTable, ...]:
    # Bit numbers first, masks once: OR-ing a bit at a time into a mask costs its width each time.
    atom_bits: dict[FeatureRef, dict[Atom, list[int]]] = {}
    use_bits: dict[FeatureRef, list[int]] = {}
    for conjunction in conjunctions:
        bit = conjunction.bit
        for atom in conjunction.atoms:
            feature = atom.feature
            by_atom = atom_bits.get(feature)
            if by_atom is None:
                by_atom = atom_bits[feature] = {}
            bits = by_atom.setdefault(atom, [])
            if not bits or bits[-1] != bit:  # ascending, once each: a table's flips are read off these
                bits.append(bit)
            use_bits.setdefault(feature, []).append(bit)
        for predicate in (*conjunction.residual, *_formula_predicates(conjunction)):
            for ref in predicate_features(predicate):
                use_bits.setdefault(ref, []).append(bit)
    uses = {ref: bits_mask(bits) for ref, bits in use_bits.items()}
    # A conjunction that may run a model reads the model's inputs too: they are
    # fetched in the same round trip as everything else it needs.
    for model in [ref for ref in uses if ref.kind is FeatureKind.MODEL]:
        for model_input in model_inputs.get(model.name, ()):
            for ref in model_input.refs:
                uses[ref] = uses.get(ref, 0) | uses[model]
    all_bits = (1 << len(conjunctions)) - 1
    tables = []
    for ref, used_by in uses.items():
        atoms = atom_bits.get(ref, {})
        tables.append(_table(ref, atoms, used_by, all_bits, value_type(ref, attribute_types)))

    def order(table: FeatureTable) -> tuple:
        atoms: Iterable[Atom] = table.atoms
        if not stats.counts:
            # Without statistics an atom's rank is its prior's, which reads its operator and a list's
            # size: one atom of each kind will do, rather than printing the text of every atom.
            atoms = {(a.op, len(a.value) if a.op == "in" else 0): a for a in table.atoms}.values()
        best = min((rank(a, stats) for a in atoms), default=(math.inf, 1.0))
        return (table.stage, best, table.ref.text)

    return tuple(sorted(tables, key=order))


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


def _table(ref: FeatureRef, atoms: Mapping[Atom, Sequence[int]], uses: int, all_bits: int, kind: str) -> FeatureTable:
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
