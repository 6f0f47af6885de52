"""Lint of experiments: arms compared that do not exist, arms no rule tells apart, experiments never read.

An experiment whose arms every rule treats alike is no experiment: its
users see the same thing whatever they drew, and the results will show no
difference however large the real one is.
"""

from __future__ import annotations

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, did_you_mean, warning
from tailor.dsl.printer import string_text

from .check import Program
from .features import FeatureKind
from .ir import Atom, predicate_features, predicates
from .plan import DecisionPlan
from .predicate_tables import atom_holds
from .walk import walk


def lint_experiments(plan: DecisionPlan) -> list[Diagnostic]:
    program = plan.program
    if not program.experiments:
        return []
    found = _unknown_arms(program)
    tables = {t.ref.name: t for t in plan.tables if t.ref.kind is FeatureKind.EXPERIMENT}
    tested = set()  # experiments a stage-2 check reads: the tables do not hold all that tells their arms apart
    for conjunction in plan.conjunctions:
        checked = predicates(conjunction.formula) if conjunction.formula is not None else conjunction.residual
        for predicate in checked:
            tested.update(r.name for r in predicate_features(predicate) if r.kind is FeatureKind.EXPERIMENT)
    for name, decl in program.experiments.items():
        table = tables.get(name)
        if table is None:
            found.append(
                warning(
                    f"experiment '{name}' is never read by a rule: every arm sees the same thing",
                    decl.name.span,
                    code="unused",
                    hint=f'compare it in a rule\'s condition, for example {name} == "{decl.arms[0].name}"',
                )
            )
            continue
        if name in tested:
            continue
        found += _alike(decl, [atom for atom in table.atoms if isinstance(atom, Atom)])
    return found


def _alike(decl: ast.ExperimentDecl, atoms: list[Atom]) -> list[Diagnostic]:
    """Arms every atom on the experiment treats alike: the same verdict from each."""
    groups: dict[tuple, list[ast.Arm]] = {}
    for arm in decl.arms:
        groups.setdefault(tuple(atom_holds(atom, arm.name.name) for atom in atoms), []).append(arm)
    found = []
    for arms in groups.values():
        if len(arms) < 2:
            continue
        names = [arm.name.name for arm in arms]
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        found.append(
            warning(
                f"no rule tells arms {listed} of experiment '{decl.name.name}' apart: their users see the same",
                arms[-1].name.span,
                code="arms-alike",
                hint=f'compare the experiment with each arm that should differ, for example {decl.name.name} == "'
                + names[-1]
                + '"',
            )
        )
    return found


def _unknown_arms(program: Program) -> list[Diagnostic]:
    """Texts that conditions compare an experiment with, which are none of its arms."""
    found = []
    conditions = [rule.decl.condition for rule in program.rules]
    conditions += [segment.condition for segment in program.segments.values()]
    for condition in conditions:
        for node in walk(condition):
            if not isinstance(node, ast.Compare):
                continue
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if not isinstance(side, ast.Name) or side.name not in program.experiments:
                    continue
                decl = program.experiments[side.name]
                arms = [arm.name.name for arm in decl.arms]
                texts = other.items if isinstance(other, ast.ListLiteral) else (other,)
                for text in texts:
                    if isinstance(text, ast.String) and text.value not in arms:
                        hint = did_you_mean(text.value, arms) or "its arms are " + ", ".join(arms)
                        found.append(
                            warning(
                                f"experiment '{side.name}' has no arm {string_text(text.value)}",
                                text.span,
                                code="unknown-arm",
                                hint=hint,
                            )
                        )
    return found
