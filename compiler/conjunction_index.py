"""Indexes over a slot's conjunctions, so that lint compares only rules that can meet.

Lint asks of each rule two questions about the rules above it in its slot:
which of them fires whenever it does (shadowing), and which can fire together
with it (ambiguity). Asking every pair is quadratic, and a ruleset with one
rule per product has tens of thousands of rules in a slot. Both questions have
a necessary condition a dict can answer, through the constants that ``==`` and
``in`` atoms pin a feature to:

- a conjunction implies one that pins a feature only if it pins that feature
  within the same constants (or can never hold there at all);
- two conjunctions that pin one feature can both hold only if their constants
  meet.

So rules on different SKUs are never compared. The indexes return a superset
of the rules that pass the exact test (``lint.implies`` and satisfiability), so
lint, deciding each candidate exactly, finds what comparing every pair finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from .ir import Atom, Predicate, predicate_features
from .normalize import merge_conjunction

# What a conjunction's atoms on one feature imply of any ``==``/``in`` atom there:
# EVERY (it can never hold there, so it implies anything), NOTHING, or the set of
# constants it allows (it implies an atom whose constants include them all).
EVERY = True
NOTHING = False


@dataclass(frozen=True, slots=True)
class Shape:
    """What the indexes need to know of one conjunction."""

    features: frozenset[str]  # the text of every feature its predicates read
    atoms: dict[str, list[Atom]]  # feature text -> its atoms on that feature
    consistent: bool  # the atoms on each feature can hold together (what the normalizer leaves)
    pins: dict[str, frozenset[Any]]  # feature text -> the constants its ``==``/``in`` atoms allow
    implied: dict[str, frozenset[Any] | bool]  # feature text -> what it implies of a pin there (see EVERY)


def shape(terms: tuple[Predicate, ...]) -> Shape:
    atoms: dict[str, list[Atom]] = {}
    features: set[str] = set()
    for predicate in terms:
        if isinstance(predicate, Atom):
            text = predicate.feature.text
            features.add(text)
            on_feature = atoms.get(text)
            if on_feature is None:
                atoms[text] = [predicate]
            else:
                on_feature.append(predicate)
        else:
            features.update(ref.text for ref in predicate_features(predicate))
    pins: dict[str, frozenset[Any]] = {}
    for text, on_feature in atoms.items():
        for atom in on_feature:
            if atom.op in ("==", "in"):
                constants = frozenset(atom.value) if atom.op == "in" else frozenset((atom.value,))
                pins[text] = pins[text] & constants if text in pins else constants
    implied = {text: _implied(on_feature) for text, on_feature in atoms.items()}
    consistent = all(_consistent(on_feature) for on_feature in atoms.values())
    return Shape(frozenset(features), atoms, consistent, pins, implied)


# One atom with these operators always has a value that makes it true: no need to merge.
_SATISFIABLE_ALONE = frozenset(("==", "!=", "not in", "missing", "present"))
_ORDER = frozenset(("<", "<=", ">", ">="))


def _bounded_alone(atom: Atom) -> bool:
    """A comparison with a finite number: some number passes it, and it pins nothing."""
    value = atom.value
    return atom.op in _ORDER and isinstance(value, int | float) and math.isfinite(value)


def _consistent(atoms: list[Atom]) -> bool:
    if len(atoms) == 1:
        atom = atoms[0]
        if atom.op in _SATISFIABLE_ALONE or (atom.op == "in" and atom.value) or _bounded_alone(atom):
            return True
    return merge_conjunction(atoms[0].feature, atoms) is not None


def meet(first: Shape, second: Shape) -> bool:
    """Whether both conjunctions' atoms can hold at once, feature by feature (the exact test).

    When each is consistent alone, only the features both constrain need merging.
    """
    if first.consistent and second.consistent:
        texts = first.atoms.keys() & second.atoms.keys()
    else:
        texts = first.atoms.keys() | second.atoms.keys()
    first_pins, second_pins = first.pins, second.pins
    for text in texts:
        mine, theirs = first.atoms.get(text, ()), second.atoms.get(text, ())
        if len(mine) == 1 == len(theirs) and text in first_pins and text in second_pins:
            # One ==/in atom each: they meet where their constants do (what merging would find).
            if first_pins[text].isdisjoint(second_pins[text]):
                return False
        elif merge_conjunction((mine or theirs)[0].feature, [*mine, *theirs]) is None:
            return False
    return True


def _implied(atoms: list[Atom]) -> frozenset[Any] | bool:
    """What ``atoms`` (on one feature) imply of an ``==``/``in`` atom there, as ``lint.implies`` decides it."""
    if len(atoms) == 1:  # the common case, without merging
        atom = atoms[0]
        if atom.op == "==":
            return frozenset((atom.value,))
        if atom.op == "in":
            return frozenset(atom.value) if atom.value else EVERY
        if atom.op == "missing":
            return EVERY
        if atom.op in ("!=", "not in", "present") or _bounded_alone(atom):
            return NOTHING
    merged = merge_conjunction(atoms[0].feature, atoms)
    if merged is None:
        return EVERY
    for atom in merged:
        if atom.op == "missing":
            return EVERY
        if atom.op == "==":
            return frozenset((atom.value,))
        if atom.op == "in":
            return frozenset(atom.value)
    return NOTHING


@dataclass(slots=True)
class _Group:
    """Conjunctions alike in which features they read and pin, filed under each of their constants."""

    keys: list[int] = field(default_factory=list)
    by_constant: dict[str, dict[Any, list[int]]] = field(default_factory=dict)  # feature -> constant -> keys

    def add(self, key: int, conjunction: Shape) -> None:
        self.keys.append(key)
        for text, constants in conjunction.pins.items():
            by_constant = self.by_constant.setdefault(text, {})
            for constant in constants:
                by_constant.setdefault(constant, []).append(key)

    def holding(self, text: str, constant: Any) -> list[int]:
        return self.by_constant[text].get(constant, [])


class ImplicationIndex:
    """Conjunctions, found by what a later conjunction would need to imply them.

    A conjunction is implied only by one that reads every feature it reads,
    so they are grouped by feature set and a query visits the subsets of its
    own features; then by the features they pin, of which a query looks up
    the one that leaves the fewest candidates.
    """

    def __init__(self) -> None:
        self._groups: dict[frozenset[str], dict[frozenset[str], _Group]] = {}  # features -> pinned -> group
        self._subsets: dict[frozenset[str], list[frozenset[str]]] = {}  # rules share a few feature sets

    def add(self, key: int, conjunction: Shape) -> None:
        by_pinned = self._groups.setdefault(conjunction.features, {})
        pinned = frozenset(conjunction.pins)
        group = by_pinned.get(pinned)
        if group is None:
            group = by_pinned[pinned] = _Group()
        group.add(key, conjunction)

    def candidates(self, conjunction: Shape) -> set[int]:
        """The keys of every conjunction ``conjunction`` may imply (and perhaps a few it does not)."""
        features = conjunction.features
        if 1 << len(features) <= len(self._groups):
            subsets = self._subsets.get(features)
            if subsets is None:
                subsets = self._subsets[features] = [
                    frozenset(c) for size in range(len(features) + 1) for c in combinations(features, size)
                ]
            found_groups = [groups for subset in subsets if (groups := self._groups.get(subset)) is not None]
        else:
            found_groups = [groups for subset, groups in self._groups.items() if subset <= features]
        found: set[int] = set()
        for by_pinned in found_groups:
            for pinned, group in by_pinned.items():
                fewest: list[int] | None = None
                for text in pinned:
                    implied = conjunction.implied.get(text, NOTHING)
                    if implied is NOTHING:
                        fewest = []  # it implies no pin on this feature: none of the group
                        break
                    if implied is not EVERY:
                        # Implied only where the pin's constants include all of ``implied``: so any one of them.
                        holding = group.holding(text, next(iter(implied)))
                        if fewest is None or len(holding) < len(fewest):
                            fewest = holding
                found.update(group.keys if fewest is None else fewest)
        return found


class OverlapIndex:
    """Conjunctions, found by whether their pins can meet a later conjunction's."""

    def __init__(self) -> None:
        self._groups: dict[frozenset[str], _Group] = {}  # by the features pinned

    def add(self, key: int, conjunction: Shape) -> None:
        pinned = frozenset(conjunction.pins)
        group = self._groups.get(pinned)
        if group is None:
            group = self._groups[pinned] = _Group()
        group.add(key, conjunction)

    def candidates(self, conjunction: Shape) -> set[int]:
        """The keys of every conjunction that may hold together with ``conjunction``."""
        pins = conjunction.pins
        found: set[int] = set()
        for pinned, group in self._groups.items():
            # Both pin the shared features, so their constants meet on each: look up the one that tells
            # most apart, the fewest of its constants among the most the group has (a SKU before a page).
            text = None
            best = 0.0
            for shared in pins:
                if shared in pinned:
                    ratio = len(pins[shared]) / (len(group.by_constant[shared]) or 1)
                    if text is None or ratio < best:
                        text, best = shared, ratio
            if text is None:
                found.update(group.keys)
                continue
            by_constant = group.by_constant[text]
            for constant in pins[text]:
                holding = by_constant.get(constant)
                if holding:
                    found.update(holding)
        return found
