"""Lint analyses over a compiled plan: warnings a marketer can act on.

Implication between conditions is decided on their normal form: one
conjunction implies another when, feature by feature, its atoms together
with the negation of the other's atom can never all hold (interval reasoning
for numbers and durations, set reasoning for ``==`` and ``in``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, Related, warning
from tailor.dsl.printer import duration_text
from tailor.dsl.source import Span

from .check import CheckedRule, Program, walk
from .features import FeatureKind, call_ref
from .ir import FALSE, NEGATED_OP, TRUE, Atom, Predicate, predicate_features
from .normalize import merge_conjunction
from .plan import Conjunction, DecisionPlan

# Pairwise analyses compare each rule with those above it in its slot; past
# this many rules in one slot they are skipped rather than made slow.
PAIRWISE_LIMIT = 5000


DEFAULT_RETENTION = 30 * 86400.0  # seconds of event history the runtime keeps by default


def lint(plan: DecisionPlan, retention: float = DEFAULT_RETENTION) -> list[Diagnostic]:
    program = plan.program
    checked = {r.name: r for r in program.rules}
    found: list[Diagnostic] = []
    found += _constant_conditions(plan, checked)
    found += _shadowing_and_ambiguity(plan, checked)
    found += _unused(program)
    found += _slots_without_default(program)
    found += _unnamed(program)
    found += _windows_beyond_retention(program, retention)
    return found


def _rule_span(rule: CheckedRule) -> Span | None:
    return rule.decl.name.span if rule.decl.name is not None else rule.decl.span


def _constant_conditions(plan: DecisionPlan, checked: dict[str, CheckedRule]) -> list[Diagnostic]:
    found = []
    for rule in plan.rules:
        if rule.condition == FALSE:
            found.append(
                warning(
                    f"rule '{rule.name}' can never fire: its condition can never be true",
                    _rule_span(checked[rule.name]),
                    code="never-fires",
                    hint="its conditions contradict each other, or compare with something that is never known",
                )
            )
        elif rule.condition == TRUE:
            found.append(
                warning(
                    f"rule '{rule.name}' always fires: its condition is always true",
                    _rule_span(checked[rule.name]),
                    code="always-fires",
                    hint="if that is intended, a `default` for the slot says it more plainly",
                )
            )
    return found


def implies(conjunction: Iterable[Predicate], predicate: Predicate) -> bool:
    """Whenever every predicate of ``conjunction`` is true, ``predicate`` is true."""
    conjunction = list(conjunction)
    if predicate in conjunction:
        return True
    if not isinstance(predicate, Atom):
        return False
    same_feature = [p for p in conjunction if isinstance(p, Atom) and p.feature == predicate.feature]
    if not same_feature:
        return False
    negated = Atom(NEGATED_OP[predicate.op], predicate.feature, predicate.value)
    return merge_conjunction(predicate.feature, [*same_feature, negated]) is None


def _terms(conjunction: Conjunction) -> tuple[Predicate, ...] | None:
    return None if conjunction.formula is not None else (*conjunction.atoms, *conjunction.residual)


def _satisfiable(predicates: Iterable[Predicate]) -> bool:
    by_feature: dict = defaultdict(list)
    for predicate in predicates:
        if isinstance(predicate, Atom):
            by_feature[predicate.feature].append(predicate)
    return all(merge_conjunction(feature, atoms) is not None for feature, atoms in by_feature.items())


def _shadowing_and_ambiguity(plan: DecisionPlan, checked: dict[str, CheckedRule]) -> list[Diagnostic]:
    found = []
    by_slot: dict[str, list[tuple[str, list[tuple[Predicate, ...] | None]]]] = defaultdict(list)
    for conjunction in plan.conjunctions:
        rules = by_slot[conjunction.rule.slot]
        if not rules or rules[-1][0] != conjunction.rule.name:
            rules.append((conjunction.rule.name, []))
        rules[-1][1].append(_terms(conjunction))
    for rules in by_slot.values():
        if len(rules) > PAIRWISE_LIMIT:
            continue
        features = [
            [frozenset(f.text for p in c for f in predicate_features(p)) if c is not None else None for c in conjs]
            for _, conjs in rules
        ]
        for index, (name, conjunctions) in enumerate(rules):
            rule = checked[name]
            if not conjunctions or None in conjunctions:
                continue
            for other_index in range(index):
                other_name, other_conjunctions = rules[other_index]
                other = checked[other_name]
                if None in other_conjunctions:
                    continue
                if _covers(other_conjunctions, features[other_index], conjunctions, features[index]):
                    found.append(_shadowed(rule, other, plan))
                    break
                if (
                    other.priority == rule.priority
                    and other.decl.content.name != rule.decl.content.name
                    and _overlap(other_conjunctions, conjunctions)
                ):
                    found.append(
                        warning(
                            f"rules '{other.name}' and '{rule.name}' can both apply to slot '{rule.slot}' with the"
                            f" same priority ({rule.priority}) but different content; only file order decides",
                            _rule_span(rule),
                            code="ambiguous",
                            hint="give one of them a higher priority",
                            related=[Related(f"'{other.name}' is here", _rule_span(other))]
                            if _rule_span(other)
                            else [],
                        )
                    )
    return found


def _covers(upper, upper_features, lower, lower_features) -> bool:
    """Every way ``lower`` can fire is a way ``upper`` fires too."""
    for conjunction, needs in zip(lower, lower_features, strict=True):
        if not any(
            features <= needs and all(implies(conjunction, p) for p in candidate)
            for candidate, features in zip(upper, upper_features, strict=True)
        ):
            return False
    return True


def _overlap(first, second) -> bool:
    return any(_satisfiable((*a, *b)) for a in first for b in second)


def _shadowed(rule: CheckedRule, other: CheckedRule, plan: DecisionPlan) -> Diagnostic:
    uses_model = any(
        f.kind is FeatureKind.MODEL
        for c in plan.conjunctions
        if c.rule.name == rule.name
        for p in (*c.atoms, *c.residual)
        for f in predicate_features(p)
    )
    why = "a higher priority" if other.priority > rule.priority else "the same priority and comes first"
    if uses_model:
        message = (
            f"rule '{rule.name}' needs a model, but the cheaper rule '{other.name}' ({why}) fires whenever"
            " it could, so the model never decides anything"
        )
        code = "expensive-shadowed"
    else:
        message = (
            f"rule '{rule.name}' can never win slot '{rule.slot}':"
            f" rule '{other.name}' has {why} and fires whenever it would"
        )
        code = "shadowed"
    return warning(
        message,
        _rule_span(rule),
        code=code,
        hint=f"raise its priority above {other.priority}, or narrow '{other.name}'",
        related=[Related(f"'{other.name}' is here", _rule_span(other))] if _rule_span(other) else [],
    )


def _unused(program: Program) -> list[Diagnostic]:
    shown = {r.decl.content.name for r in program.rules} | {d.content.name for d in program.defaults.values()}
    referenced: set[str] = set()
    for rule in program.rules:
        referenced |= _names(rule.decl.condition)
    pending = [n for n in referenced if n in program.segments]
    while pending:
        name = pending.pop()
        for used in _names(program.segments[name].condition) - referenced:
            referenced.add(used)
            if used in program.segments:
                pending.append(used)
    found = []
    for name, content in program.contents.items():
        if name not in shown:
            found.append(warning(f"content '{name}' is never shown", content.name.span, code="unused"))
    for name, segment in program.segments.items():
        if name not in referenced:
            found.append(warning(f"segment '{name}' is never used", segment.name.span, code="unused"))
    for name, model in program.models.items():
        if name not in referenced:
            found.append(
                warning(
                    f"model '{name}' is never used",
                    model.name.span,
                    code="unused",
                    hint="an unused model is still loaded and watched by the server",
                )
            )
    return found


def _names(expr: ast.Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, ast.Name)}


def _slots_without_default(program: Program) -> list[Diagnostic]:
    found = []
    first_rule: dict[str, CheckedRule] = {}
    for rule in program.rules:
        first_rule.setdefault(rule.slot, rule)
    for slot, rule in first_rule.items():
        if slot not in program.defaults:
            found.append(
                warning(
                    f"slot '{slot}' has no default: when no rule fires it shows nothing",
                    rule.decl.slot.span if rule.decl.slot else rule.decl.span,
                    code="no-default",
                    hint=f"add: default show CONTENT in {slot}",
                )
            )
    return found


def _unnamed(program: Program) -> list[Diagnostic]:
    return [
        warning(
            f"this rule has no name, so reports call it '{rule.name}', which changes when lines move",
            rule.decl.span,
            code="unnamed",
            hint="write: rule NAME when ...",
        )
        for rule in program.rules
        if not rule.named
    ]


def _windows_beyond_retention(program: Program, retention: float) -> list[Diagnostic]:
    conditions = [r.decl.condition for r in program.rules] + [s.condition for s in program.segments.values()]
    found = []
    for condition in conditions:
        for node in walk(condition):
            if not isinstance(node, ast.Call):
                continue
            ref, _problems = call_ref(node)
            if ref is not None and ref.window > retention:
                found.append(
                    warning(
                        f"{ref.text} looks back {duration_text(ref.window)}, but events are kept for only"
                        f" {duration_text(retention)}",
                        node.span,
                        code="window-beyond-retention",
                        hint="shorten the window, or run the server with a longer --retention",
                    )
                )
    return found
