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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .caps import RuleCap
from .check import Program
from .experiments import ExperimentPlan, HoldoutPlan, experiment_plans, holdout_plan
from .features import FeatureKind, FeatureRef
from .ir import Atom, Condition, Predicate, Test, predicate_features, predicates
from .normalize import NormalProgram
from .predicate_tables import STAGE_MODEL, FeatureTable, bits_mask, feature_stage, table_of

if TYPE_CHECKING:
    from .model_inputs import ModelInput

# Cost tiers: what it takes to learn a predicate's value.
COST_CONTEXT = 0.0  # sent with the request
COST_STORE = 1.0  # one batched store fetch, shared by every store feature
COST_MODEL = 100.0  # an inference
COST_ARITHMETIC = 0.01


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
    seen: set[int] = set()  # by identity first: rules share predicate objects, and hashing one walks it
    for conjunction in conjunctions:
        for predicate in (*conjunction.atoms, *conjunction.residual, *_formula_predicates(conjunction)):
            if id(predicate) in seen:
                continue
            seen.add(id(predicate))
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
    # The same lists by the atom's and the feature's identity: rules share those objects, and looking one
    # up by identity spares hashing it at every use (equal objects from files normalized apart still meet
    # in the dicts above).
    bits_of: dict[int, list[int]] = {}
    uses_of: dict[int, list[int]] = {}
    for conjunction in conjunctions:
        bit = conjunction.bit
        for atom in conjunction.atoms:
            bits = bits_of.get(id(atom))
            if bits is None:
                by_atom = atom_bits.get(atom.feature)
                if by_atom is None:
                    by_atom = atom_bits[atom.feature] = {}
                bits = bits_of[id(atom)] = by_atom.setdefault(atom, [])
            if not bits or bits[-1] != bit:  # ascending, once each: a table's flips are read off these
                bits.append(bit)
            used = uses_of.get(id(atom.feature))
            if used is None:
                used = uses_of[id(atom.feature)] = use_bits.setdefault(atom.feature, [])
            used.append(bit)
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
        tables.append(table_of(ref, atoms, used_by, all_bits, value_type(ref, attribute_types)))

    def order(table: FeatureTable) -> tuple:
        atoms: Iterable[Atom] = table.atoms
        if not stats.counts:
            # Without statistics an atom's rank is its prior's, which reads its operator and a list's
            # size: one atom of each kind will do, rather than printing the text of every atom.
            atoms = {(a.op, len(a.value) if a.op == "in" else 0): a for a in table.atoms}.values()
        best = min((rank(a, stats) for a in atoms), default=(math.inf, 1.0))
        return (table.stage, best, table.ref.text)

    return tuple(sorted(tables, key=order))
