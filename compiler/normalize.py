"""Conditions to normal form: the optimizer's first pass.

Segments are inlined, constants folded, ``not`` pushed down to predicates,
predicates hash-consed, and the predicates that a conjunction places on one
feature are merged (``x > 2 and x > 5`` is ``x > 5``; ``x > 5 and x < 3`` is
never true).

A rule fires only when its condition is *true*. In negation normal form
``and``/``or`` are monotone in the order false < unknown < true, so a part
that can never be true may be replaced by "never true" without changing when
the whole is true; that is what lets unknown-valued constants fold to FALSE.
Nothing is a tautology that mentions a feature: even a counter is unknown
when the store could not be asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from tailor.dsl import ast

from .caps import RuleCap, rule_cap
from .check import CheckedRule, Program
from .features import FeatureRef, attribute_ref, call_key, call_ref, experiment_ref, model_ref
from .file_cache import FileEntries, FileKey
from .ir import (
    FALSE,
    MIRRORED_OP,
    NEGATED_OP,
    TRUE,
    UNKNOWN,
    UNKNOWN_TRUTH,
    All,
    Any_,
    Arith,
    Atom,
    Condition,
    CondTerm,
    Const,
    Feature,
    Neg,
    Predicate,
    Term,
    Test,
    Truth,
)
from .normal_forms import NormalForm, normal_context

DNF_LIMIT = 64  # disjuncts; a larger expansion stays a formula

# Node classes tested on every node, as tuples: ``isinstance(x, A | B)`` would
# build the union anew on each call.
_CONDITION_NODES = (ast.And, ast.Or, ast.Not, ast.Compare, ast.IsMissing, ast.Boolean)
_TRUTH_LITERALS = (ast.ListLiteral, ast.Boolean)
_MEMBER_OPS = ("==", "in")  # the atoms a disjunction merges into one ``in``


@dataclass(frozen=True, slots=True)
class NormalRule:
    """A rule with its condition in normal form, and that form's DNF."""

    rule: CheckedRule
    condition: Condition  # with the cap's atom, if the rule has a cap
    disjuncts: tuple[tuple[Predicate, ...], ...] | None  # None: larger than DNF_LIMIT, kept whole
    cap: RuleCap | None = None


@dataclass(frozen=True, slots=True, eq=False)
class NormalProgram:
    """The normalize stage's product: every rule's condition in normal form, in the program's order."""

    program: Program
    rules: tuple[NormalRule, ...]


def normalize(
    program: Program, cache: FileEntries[tuple[NormalForm, ...]] | None = None, keys: Sequence[FileKey] = ()
) -> NormalProgram:
    """Every rule's condition in normal form, sharing (interning) predicates between rules.

    With a ``cache`` and each module's key (its file's name and digest), the
    files whose entry is current are not normalized again.
    """
    normalizer = Normalizer(program)
    if cache is None:
        return NormalProgram(program, tuple(_normal_rule(normalizer, checked) for checked in program.rules))
    context = normal_context(program)
    known = cache.entries(context)
    made: dict[FileKey, tuple[NormalForm, ...]] = {}
    rules: list[NormalRule] = []
    checked_rules = iter(program.rules)
    for module, key in zip(program.modules, keys, strict=True):
        count = sum(1 for decl in module.declarations if isinstance(decl, ast.RuleDecl))
        in_file = list(islice(checked_rules, count))
        forms = known.get(key)
        if forms is None or len(forms) != count:
            cache.misses += 1
            forms = tuple(_normal_form(normalizer, checked) for checked in in_file)
        else:
            cache.hits += 1
        made[key] = forms
        rules += (NormalRule(c, f.condition, f.disjuncts, f.cap) for c, f in zip(in_file, forms, strict=True))
    cache.replace(context, made)
    return NormalProgram(program, tuple(rules))


def _normal_form(normalizer: Normalizer, checked: CheckedRule) -> NormalForm:
    condition = normalizer.condition(checked.decl.condition)
    disjuncts = normalizer.dnf(condition)
    cap = rule_cap(checked.decl, normalizer.intern)
    if cap is not None:
        condition, disjuncts = with_cap(condition, disjuncts, cap.atom)
    return NormalForm(condition, None if disjuncts is None else tuple(disjuncts), cap)


def _normal_rule(normalizer: Normalizer, checked: CheckedRule) -> NormalRule:
    form = _normal_form(normalizer, checked)
    return NormalRule(checked, form.condition, form.disjuncts, form.cap)


def with_cap(
    condition: Condition, disjuncts: list[tuple[Predicate, ...]] | None, atom: Atom
) -> tuple[Condition, list[tuple[Predicate, ...]] | None]:
    """A rule's normal form and DNF with its cap's atom added to every conjunction.

    The atom is not merged with the condition's atoms on the same counter, so
    explain can tell the cap apart; but a conjunction the cap contradicts
    (``count(...) > 5`` under ``cap 3``) is dropped, so lint still sees a rule
    that can never fire.
    """
    if condition == FALSE:
        return condition, disjuncts
    if disjuncts is not None:
        disjuncts = [terms if atom in terms else (*terms, atom) for terms in disjuncts if _cap_fits(terms, atom)]
        if not disjuncts:
            return FALSE, disjuncts
    if condition == TRUE:
        return atom, disjuncts
    items = condition.items if isinstance(condition, All) else (condition,)
    return (condition if atom in items else All((*items, atom))), disjuncts


def _cap_fits(terms: tuple[Predicate, ...], atom: Atom) -> bool:
    same = [p for p in terms if isinstance(p, Atom) and p.feature == atom.feature]
    return not same or merge_conjunction(atom.feature, [*same, atom]) is not None


class Normalizer:
    """Normalizes the conditions of one program, sharing predicates between them."""

    def __init__(self, program: Program):
        self.program = program
        self._interned: dict[Any, Any] = {}
        self._attributes: dict[tuple[str, str], FeatureRef] = {}
        self._calls: dict[str, FeatureRef] = {}

    def intern(self, node: Any) -> Any:
        return self._interned.setdefault(node, node)

    def attribute(self, expr: ast.Attribute) -> FeatureRef:
        """The (interned) reference of ``user.x`` or ``context.x``, computed once per attribute."""
        key = (expr.scope, expr.name)
        ref = self._attributes.get(key)
        if ref is None:
            ref = self._attributes[key] = self.intern(attribute_ref(expr))
        return ref

    def call(self, expr: ast.Call) -> FeatureRef:
        """The (interned) reference of a feature call, computed once per ``call_key``."""
        key = call_key(expr)
        ref = self._calls.get(key) if key is not None else None
        if ref is None:
            found, _problems = call_ref(expr)
            assert found is not None, "checked programs have valid calls"
            ref = self.intern(found)
            if key is not None:
                self._calls[key] = ref
        return ref

    def condition(self, expr: ast.Expr) -> Condition:
        """A rule's condition: what matters is only when it is *true*."""
        return self.simplify(self._condition(expr, negated=False))

    def exact_condition(self, expr: ast.Expr) -> Condition:
        """A condition used as a value (a model's true/false input): unknown stays unknown."""
        return self._condition(expr, False, exact=True)

    # --- negation normal form ---

    def _condition(self, expr: ast.Expr, negated: bool, exact: bool = False) -> Condition:
        """Negation normal form. ``exact`` keeps unknown constants unknown (for conditions used as values).

        Dispatched on the node's exact type, most frequent first (the node classes
        have no subclasses): a large ruleset has millions of nodes.
        """
        kind = type(expr)
        if kind is ast.Compare:
            op, left, right = expr.op, expr.left, expr.right
            if self._is_condition(left) or self._is_condition(right):
                return self._compare_conditions(op, left, right, negated, exact)
            return self.predicate(NEGATED_OP[op] if negated else op, self.term(left), self.term(right), exact)
        if kind is ast.And or kind is ast.Or:
            items = tuple(self._condition(o, negated, exact) for o in expr.operands)
            conjunction = (kind is ast.And) != negated
            return All(items) if conjunction else Any_(items)
        if kind is ast.Attribute:
            return self.predicate("==", Feature(self.attribute(expr)), Const(not negated), exact)
        if kind is ast.Not:
            return self._condition(expr.operand, not negated, exact)
        if kind is ast.IsMissing:
            operand = expr.operand
            op = "present" if expr.negated != negated else "missing"
            if self._is_condition(operand):
                return self.intern(Test(op, CondTerm(self._condition(operand, False, exact=True))))
            return self.predicate(op, self.term(operand), None, exact)
        if kind is ast.Name and expr.name in self.program.segments:
            return self._condition(self.program.segments[expr.name].condition, negated, exact)
        if kind is ast.Boolean:
            return TRUE if expr.value != negated else FALSE
        raise TypeError(f"not a condition: {expr!r}")

    def _is_condition(self, expr: ast.Expr) -> bool:
        """Whether an expression is true/false/unknown rather than a number, string or duration."""
        if isinstance(expr, _CONDITION_NODES):
            return True
        if isinstance(expr, ast.Name):
            return expr.name in self.program.segments
        if isinstance(expr, ast.Attribute):
            kind = self.program.attribute_types.get(f"{expr.scope}.{expr.name}")
            return kind is not None and kind.name == "bool"
        return False

    def _compare_conditions(self, op: str, left: ast.Expr, right: ast.Expr, negated: bool, exact: bool) -> Condition:
        """``A == B`` between truth values, rewritten exactly in Kleene logic."""
        if isinstance(left, _TRUTH_LITERALS) and not isinstance(right, _TRUTH_LITERALS):
            left, right = right, left
        if op in ("in", "not in"):
            assert isinstance(right, ast.ListLiteral)
            wanted = {item.value for item in right.items if isinstance(item, ast.Boolean)}
            member = (op == "in") != negated
            if member:  # A in S: A is one of S
                return Any_(tuple(self._condition(left, not value, exact) for value in sorted(wanted)))
            if not wanted:  # A not in []: true whenever A is known
                return Any_((self._condition(left, False, exact), self._condition(left, True, exact)))
            return All(tuple(self._condition(left, value, exact) for value in sorted(wanted)))
        equal = (op == "==") != negated
        if isinstance(right, ast.Boolean):
            return self._condition(left, negated=equal != right.value, exact=exact)
        a, not_a = self._condition(left, False, exact), self._condition(left, True, exact)
        b, not_b = self._condition(right, False, exact), self._condition(right, True, exact)
        if equal:
            return Any_((All((a, b)), All((not_a, not_b))))
        return Any_((All((a, not_b)), All((not_a, b))))

    def term(self, expr: ast.Expr) -> Term:
        kind = type(expr)  # dispatched as ``_condition`` is
        if kind is ast.String or kind is ast.Boolean:
            return Const(expr.value)
        if kind is ast.Attribute:
            return Feature(self.attribute(expr))
        if kind is ast.Number:
            return Const(expr.amount)
        if kind is ast.Call:
            return Feature(self.call(expr))
        if kind is ast.ListLiteral:
            values = [self.term(item) for item in expr.items]
            return Const(frozenset(v.value for v in values if isinstance(v, Const)))
        if kind is ast.Duration:
            return Const(expr.seconds)
        if kind is ast.Name:
            if expr.name in self.program.experiments:
                return Feature(self.intern(experiment_ref(expr.name)))
            return Feature(self.intern(model_ref(expr.name)))
        if kind is ast.Negate:
            inner = self.term(expr.operand)
            if isinstance(inner, Const):
                return Const(UNKNOWN if inner.value is UNKNOWN else -inner.value)
            return Neg(inner)
        if kind is ast.Arithmetic:
            lt, rt = self.term(expr.left), self.term(expr.right)
            if isinstance(lt, Const) and isinstance(rt, Const):
                return Const(arithmetic(expr.op, lt.value, rt.value))
            return Arith(expr.op, lt, rt)
        raise TypeError(f"not a value: {expr!r}")

    def predicate(self, op: str, left: Term, right: Term | None, exact: bool = False) -> Condition:
        if op in ("missing", "present"):
            return self._missing(op, left)
        assert right is not None
        if isinstance(left, Const) and isinstance(right, Const):
            verdict = compare(op, left.value, right.value)
            if verdict is None:
                return UNKNOWN_TRUTH if exact else FALSE
            return TRUE if verdict else FALSE
        if _is_unknown(left) or _is_unknown(right):
            return UNKNOWN_TRUTH if exact else FALSE
        if isinstance(left, Const) and isinstance(right, Feature) and op in MIRRORED_OP:
            left, right, op = right, left, MIRRORED_OP[op]
        if isinstance(left, Feature) and isinstance(right, Const):
            value = right.value
            if op in ("in", "not in") and len(value) == 1:
                op, value = ("==" if op == "in" else "!="), next(iter(value))
            if op == "in" and not value and not exact:
                return FALSE
            if op == "not in" and not value and not exact:
                return self._missing("present", left)
            return self.intern(Atom(op, left.ref, value))
        return self.intern(Test(op, left, right))

    def _missing(self, op: str, term: Term) -> Condition:
        if isinstance(term, Const):
            return TRUE if (term.value is UNKNOWN) == (op == "missing") else FALSE
        if isinstance(term, Feature):
            return self.intern(Atom(op, term.ref))
        return self.intern(Test(op, term))

    # --- simplification ---

    def simplify(self, condition: Condition) -> Condition:
        if isinstance(condition, All):
            return self._all([self.simplify(item) for item in condition.items])
        if isinstance(condition, Any_):
            return self._any([self.simplify(item) for item in condition.items])
        return condition

    def _all(self, items: list[Condition]) -> Condition:
        # A dict keeps the first of equal items in order and finds repeats in
        # constant time: a condition may have thousands of operands.
        unique: dict[Condition, None] = {}
        for item in _flatten(items, All):
            if item == FALSE:
                return FALSE
            if item != TRUE:
                unique[item] = None
        flat = list(unique)
        by_feature: dict[FeatureRef, list[Atom]] = {}
        for item in flat:
            if isinstance(item, Atom):
                by_feature.setdefault(item.feature, []).append(item)
        # Each feature whose atoms merge into fewer or other atoms: the merged
        # atoms take the place of the feature's first atom, the others go.
        replaced: dict[FeatureRef, list[Atom]] = {}
        for feature, atoms in by_feature.items():
            if len(atoms) == 1:
                continue  # one atom alone has nothing to merge with
            merged = merge_conjunction(feature, atoms)
            if merged is None:
                return FALSE
            merged = [self.intern(a) for a in merged]
            if merged != atoms:
                replaced[feature] = merged
        if replaced:
            flat = _replace_atoms(flat, replaced, lambda atom: True)
        if not flat:
            return TRUE
        return flat[0] if len(flat) == 1 else All(tuple(flat))

    def _any(self, items: list[Condition]) -> Condition:
        unique: dict[Condition, None] = {}  # as in _all: order kept, repeats found in constant time
        for item in _flatten(items, Any_):
            if item == TRUE:
                return TRUE
            if item != FALSE:
                unique[item] = None
        flat = list(unique)
        # `x == "a" or x in ["b", "c"]` is `x in ["a", "b", "c"]`: one indexable atom.
        members: dict[FeatureRef, list[Atom]] = {}
        for item in flat:
            if isinstance(item, Atom) and item.op in _MEMBER_OPS:
                members.setdefault(item.feature, []).append(item)
        replaced: dict[FeatureRef, list[Atom]] = {}
        for feature, atoms in members.items():
            if len(atoms) < 2:
                continue
            values = frozenset(v for a in atoms for v in (a.value if a.op == "in" else (a.value,)))
            replaced[feature] = [self.intern(Atom("in", feature, values))]
        if replaced:
            flat = _replace_atoms(flat, replaced, lambda atom: atom.op in _MEMBER_OPS)
        if not flat:
            return FALSE
        return flat[0] if len(flat) == 1 else Any_(tuple(flat))

    def dnf(self, condition: Condition, limit: int = DNF_LIMIT) -> list[tuple[Predicate, ...]] | None:
        """The condition as a list of conjunctions, or None when that would exceed ``limit``."""
        if isinstance(condition, Truth):
            return [()] if condition.value else []
        if isinstance(condition, Atom | Test):
            return [(condition,)]
        if isinstance(condition, Any_):
            result: dict[tuple[Predicate, ...], None] = {}  # in order, each conjunction once
            for item in condition.items:
                part = self.dnf(item, limit)
                if part is None:
                    return None
                result.update(dict.fromkeys(part))
                if len(result) > limit:
                    return None
            return list(result)
        if all(isinstance(item, Atom | Test) for item in condition.items):
            return [condition.items]  # already a simplified conjunction
        product: list[tuple[Predicate, ...]] = [()]
        for item in condition.items:
            part = self.dnf(item, limit)
            if part is None:
                return None
            combined: dict[tuple[Predicate, ...], None] = {}  # in order, each conjunction once
            for left in product:
                for right in part:
                    conjunction = self._all([*left, *right])
                    if conjunction == FALSE:
                        continue
                    flat = (
                        conjunction.items
                        if isinstance(conjunction, All)
                        else (() if conjunction == TRUE else (conjunction,))
                    )
                    combined[flat] = None  # type: ignore[index]
            if len(combined) > limit:
                return None
            product = list(combined)
        return product


def _replace_atoms(
    flat: list[Condition], replaced: dict[FeatureRef, list[Atom]], merged: Callable[[Atom], bool]
) -> list[Condition]:
    """``flat`` with the ``merged`` atoms of each feature in ``replaced`` swapped for its
    new atoms, which stand where the feature's first such atom stood; one pass."""
    result: list[Condition] = []
    done: set[FeatureRef] = set()
    for item in flat:
        if isinstance(item, Atom) and item.feature in replaced and merged(item):
            if item.feature not in done:
                done.add(item.feature)
                result.extend(replaced[item.feature])
        else:
            result.append(item)
    return result


def _flatten(items: Iterable[Condition], kind: type) -> Iterable[Condition]:
    for item in items:
        if isinstance(item, kind):
            yield from _flatten(item.items, kind)  # type: ignore[attr-defined]
        else:
            yield item


def _is_unknown(term: Term) -> bool:
    return isinstance(term, Const) and term.value is UNKNOWN


# --- constant evaluation, shared with the generated code's semantics ---


def arithmetic(op: str, left: Any, right: Any) -> Any:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return UNKNOWN
    return left / right


def compare(op: str, left: Any, right: Any) -> bool | None:
    """Three-valued comparison of two values; None is unknown."""
    if left is UNKNOWN or right is UNKNOWN:
        return None
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    raise ValueError(op)


# --- merging the predicates a conjunction places on one feature ---


def merge_conjunction(feature: FeatureRef, atoms: list[Atom]) -> list[Atom] | None:
    """The fewest atoms equivalent (for truth) to ``atoms``; None if they can never all hold."""
    ops = {a.op for a in atoms}
    if "missing" in ops:
        return None if len(ops) > 1 else [atoms[0]]
    comparisons = [a for a in atoms if a.op != "present"]
    if not comparisons:
        return [atoms[0]]
    lo, lo_inclusive, hi, hi_inclusive = -math.inf, False, math.inf, False
    allowed: set | None = None
    excluded: set = set()
    for atom in comparisons:
        op, value = atom.op, atom.value
        if op == "==":
            allowed = {value} if allowed is None else allowed & {value}
        elif op == "in":
            allowed = set(value) if allowed is None else allowed & set(value)
        elif op == "!=":
            excluded.add(value)
        elif op == "not in":
            excluded |= set(value)
        elif op in (">", ">="):
            if value > lo or (value == lo and op == ">"):
                lo, lo_inclusive = value, op == ">="
        elif value < hi or (value == hi and op == "<"):
            hi, hi_inclusive = value, op == "<="
    bounded = lo != -math.inf or hi != math.inf

    def inside(v: Any) -> bool:
        if not bounded:
            return True
        if not isinstance(v, int | float) or isinstance(v, bool):
            return False
        above = v > lo or (lo_inclusive and v == lo)
        below = v < hi or (hi_inclusive and v == hi)
        return above and below

    if allowed is not None:
        kept = {v for v in allowed if v not in excluded and inside(v)}
        if not kept:
            return None
        if len(kept) == 1:
            return [Atom("==", feature, next(iter(kept)))]
        return [Atom("in", feature, frozenset(kept))]
    if lo > hi or (lo == hi and not (lo_inclusive and hi_inclusive)):
        return None
    if lo == hi:
        return None if lo in excluded else [Atom("==", feature, lo)]
    result: list[Atom] = []
    if lo != -math.inf:
        result.append(Atom(">=" if lo_inclusive else ">", feature, lo))
    if hi != math.inf:
        result.append(Atom("<=" if hi_inclusive else "<", feature, hi))
    outside_bounds = [v for v in excluded if bounded and not inside(v)]
    remaining = sorted((v for v in excluded if v not in outside_bounds), key=repr)
    if len(remaining) == 1:
        result.append(Atom("!=", feature, remaining[0]))
    elif remaining:
        result.append(Atom("not in", feature, frozenset(remaining)))
    if not result:
        # Nothing left to test: true whenever the feature is known.
        return [Atom("present", feature)]
    return result
