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
from tailor.dsl.collector import collector_paused
from tailor.dsl.diagnostics import Diagnostic, Related, note, warning
from tailor.dsl.printer import duration_text
from tailor.dsl.source import Span

from .check import CheckedRule, Program
from .conjunction_index import EVERY, NOTHING, ImplicationIndex, OverlapIndex, Shape, meet, shape
from .features import FeatureKind, FeatureRef, call_key, call_ref
from .ir import FALSE, NEGATED_OP, TRUE, Atom, Predicate, predicate_features
from .lint_consent import lint_consent
from .lint_experiments import lint_experiments
from .normalize import merge_conjunction
from .plan import Conjunction, DecisionPlan
from .walk import walk

# Shadowing and ambiguity compare a rule only with the rules above it that the
# indexes say can cover or overlap it, which for rules pinned to constants
# (one per product, per page) is a handful. Rules that pin nothing (thousands
# of thresholds on one counter at one priority, say) are still compared in
# pairs; as a safety net, after this many exact comparisons in one ruleset the
# remaining rules are left unanalysed rather than made slow.
COMPARISON_LIMIT = 2_000_000


DEFAULT_RETENTION = 30 * 86400.0  # seconds of event history the runtime keeps by default


def lint(plan: DecisionPlan, retention: float = DEFAULT_RETENTION) -> list[Diagnostic]:
    program = plan.program
    checked = {r.name: r for r in program.rules}
    found: list[Diagnostic] = []
    # The analyses allocate a few objects per rule and per warning, all kept or soon dropped:
    # the cyclic collector would scan the whole program again and again (most of the time at scale).
    with collector_paused():
        found += _constant_conditions(plan, checked)
        found += _shadowing_and_ambiguity(plan, checked)
        names, calls = _rule_nodes(program)
        found += _unused(program, names)
        found += _slots_without_default(program)
        found += _unnamed(program)
        found += _windows_beyond_retention(program, calls, retention)
        found += _caps(program, retention)
        found += lint_experiments(plan)
        found += _undeclared_attributes(program)
        found += lint_consent(plan)
    return found


# The word that declares each type, by the type's name.
_TYPE_WORDS = {name: word for word, name in ast.ATTRIBUTE_TYPES.items()}


def _undeclared_attributes(program: Program) -> list[Diagnostic]:
    """A note per attribute whose type was only inferred, with the declaration that would fix it."""
    found = []
    for text, span in program.inferred_at.items():
        kind = program.attribute_types[text]
        word = _TYPE_WORDS.get(kind.name)
        if word is None:
            continue  # a list: no declaration says it
        public = "" if text.startswith("context.") else " (and public, if it is not personal data)"
        found.append(
            note(
                f"{text} is {'' if word == 'text' else 'a '}{word} only because of how it is used here:"
                " declare it to fix its type",
                span,
                code="undeclared-attribute",
                hint=f"add: attribute {text} {word}{public}",
            )
        )
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


def _entails(conjunction: Shape, terms: tuple[Predicate, ...], predicate: Predicate, known: dict | None = None) -> bool:
    """``implies(terms, predicate)``, read off the conjunction's shape.

    Only the atoms on the predicate's feature matter, and what they imply of
    an ``==``/``in`` atom the shape already knows: the constants they allow.
    ``known`` remembers the other answers by the atoms' identity (the
    normalizer makes equal predicates one object, so thousands of rules ask
    the same question); it must not outlive the plan they belong to.
    """
    if not isinstance(predicate, Atom):
        return predicate in terms
    text = predicate.feature.text
    on_feature = conjunction.atoms.get(text)
    if not on_feature:
        return False
    if predicate.op in ("==", "in"):
        implied = conjunction.implied[text]
        if implied is EVERY or implied is NOTHING:
            return implied
        return implied <= (predicate.value if predicate.op == "in" else frozenset((predicate.value,)))
    if known is None:
        return implies(on_feature, predicate)
    key = (id(predicate), *map(id, on_feature))
    answer = known.get(key)
    if answer is None:
        answer = known[key] = implies(on_feature, predicate)
    return answer


def _terms(conjunction: Conjunction) -> tuple[Predicate, ...] | None:
    return None if conjunction.formula is not None else (*conjunction.atoms, *conjunction.residual)


def _shadowing_and_ambiguity(plan: DecisionPlan, checked: dict[str, CheckedRule]) -> list[Diagnostic]:
    """Each rule against the rules above it in its slot: the first that covers it, and the ties before that.

    The indexes propose only the rules that can cover or overlap it, in slot
    order; each is then decided exactly, so the warnings are those of
    comparing every pair.
    """
    found = []
    by_slot: dict[str, list[tuple[str, list[tuple[Predicate, ...] | None]]]] = defaultdict(list)
    for conjunction in plan.conjunctions:
        rules = by_slot[conjunction.rule.slot]
        if not rules or rules[-1][0] != conjunction.rule.name:
            rules.append((conjunction.rule.name, []))
        rules[-1][1].append(_terms(conjunction))
    compared = 0  # exact comparisons, against COMPARISON_LIMIT
    model_rules = _rules_using_models(plan)
    known: dict = {}  # implications already decided, for _covers
    notes: dict[str, list[Related]] = {}  # "'name' is here", by rule: a rule is named in many findings
    for rules in by_slot.values():
        shapes = [None if None in conjs else [shape(c) for c in conjs] for _, conjs in rules]
        slot_rules = [checked[name] for name, _ in rules]
        implications = ImplicationIndex()
        overlaps: dict[int, OverlapIndex] = defaultdict(OverlapIndex)
        for index, (name, conjunctions) in enumerate(rules):
            shaped = shapes[index]
            if shaped is None:
                continue  # too large to expand: neither analysed nor compared with
            rule = slot_rules[index]
            if shaped and compared < COMPARISON_LIMIT:
                covering = None
                for other_index in sorted(implications.candidates(shaped[0])):
                    compared += 1
                    if _covers(shapes[other_index], rules[other_index][1], shaped, conjunctions, known):
                        covering = other_index
                        break
                tied = overlaps.get(rule.priority)
                ambiguous_with = []
                if tied:
                    if len(shaped) == 1:
                        tied_candidates = tied.candidates(shaped[0])
                    else:
                        tied_candidates = set().union(*(tied.candidates(s) for s in shaped))
                    content = rule.decl.content.name
                    for other_index in sorted(tied_candidates):
                        if covering is not None and other_index >= covering:
                            break
                        other = slot_rules[other_index]
                        if other.decl.content.name == content:
                            continue
                        compared += 1
                        if _overlap(shapes[other_index], shaped):
                            ambiguous_with.append(other)
                if ambiguous_with:
                    found.append(_ambiguous(rule, ambiguous_with, notes))
                if covering is not None:
                    found.append(_shadowed(rule, slot_rules[covering], name in model_rules, notes))
            tied_index = overlaps[rule.priority]
            for conjunction in shaped:
                implications.add(index, conjunction)
                tied_index.add(index, conjunction)
    return found


def _rules_using_models(plan: DecisionPlan) -> set[str]:
    return {
        c.rule.name
        for c in plan.conjunctions
        if any(f.kind is FeatureKind.MODEL for p in (*c.atoms, *c.residual) for f in predicate_features(p))
    }


# An ambiguity names this many of the rules a rule ties with; its notes point at every one.
NAMED_TIES = 3


def _ambiguous(
    rule: CheckedRule, others: list[CheckedRule], notes: dict[str, list[Related]] | None = None
) -> Diagnostic:
    """One finding per rule, for every rule above it that it ties with: a generated ruleset can have
    dozens of rules at one priority that can all fire, and a line per pair would bury what to fix.

    ``notes`` keeps each rule's note, which many findings share (see ``_here``)."""
    if len(others) == 1:
        who, verb = f"rules '{others[0].name}' and '{rule.name}'", "both"
    else:
        named = ", ".join(f"'{other.name}'" for other in others[:NAMED_TIES])
        more = f" and {len(others) - NAMED_TIES} more" if len(others) > NAMED_TIES else ""
        who, verb = f"rule '{rule.name}' and the {len(others)} rules above it ({named}{more})", "all"
    return warning(
        f"{who} can {verb} apply to slot '{rule.slot}' with the same priority ({rule.priority}) but different"
        " content; only file order decides",
        _rule_span(rule),
        code="ambiguous",
        hint="give one of them a higher priority" if len(others) == 1 else "give them different priorities",
        related=[note for other in others for note in _here(other, notes)],
    )


def _here(rule: CheckedRule, notes: dict[str, list[Related]] | None) -> list[Related]:
    """The note pointing at ``rule`` (none when it has no place), made once per rule with ``notes``:
    placing a note looks its line up, and at scale a rule is named in thousands of findings."""
    if notes is not None and (kept := notes.get(rule.name)) is not None:
        return kept
    span = _rule_span(rule)
    made = [Related(f"'{rule.name}' is here", span)] if span else []
    if notes is not None:
        notes[rule.name] = made
    return made


def _covers(
    upper: list[Shape], upper_terms: list, lower: list[Shape], lower_terms: list, known: dict | None = None
) -> bool:
    """Every way ``lower`` can fire is a way ``upper`` fires too (``known``: see ``_entails``)."""
    for conjunction, terms in zip(lower, lower_terms, strict=True):
        features = conjunction.features
        for candidate, needs in zip(upper, upper_terms, strict=True):
            if candidate.features <= features:
                for p in needs:
                    if not _entails(conjunction, terms, p, known):
                        break
                else:
                    break  # this way of ``upper`` firing covers the conjunction
        else:
            return False
    return True


def _overlap(first: list[Shape], second: list[Shape]) -> bool:
    """Some way for one rule to fire can hold together with some way for the other."""
    if len(first) == 1 == len(second):
        return meet(first[0], second[0])
    return any(meet(a, b) for a in first for b in second)


def _shadowed(
    rule: CheckedRule, other: CheckedRule, uses_model: bool, notes: dict[str, list[Related]] | None = None
) -> Diagnostic:
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
        related=_here(other, notes),
    )


def _rule_nodes(program: Program) -> tuple[set[str], list[ast.Call]]:
    """The names that rules' conditions use, and their feature calls in order: one walk for both analyses."""
    names: set[str] = set()
    calls: list[ast.Call] = []
    for rule in program.rules:
        for node in walk(rule.decl.condition):
            if isinstance(node, ast.Name):
                names.add(node.name)
            elif isinstance(node, ast.Call):
                calls.append(node)
    return names, calls


def _unused(program: Program, rule_names: set[str]) -> list[Diagnostic]:
    shown = {r.decl.content.name for r in program.rules} | {d.content.name for d in program.defaults.values()}
    referenced = set(rule_names)
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


def _caps(program: Program, retention: float) -> list[Diagnostic]:
    """A cap of 0 (the rule can never fire) and a cap's window longer than the events are kept."""
    found = []
    for rule in program.rules:
        cap = rule.decl.cap
        if cap is None:
            continue
        if cap.limit.value == 0:
            found.append(
                warning(
                    f"rule '{rule.name}' can never fire: cap 0 allows no impressions of '{rule.decl.content.name}'",
                    cap.limit.span,
                    code="never-fires",
                    hint="a cap is how many impressions a user may have had in the window: write 1 or more,"
                    " or delete the rule to switch it off",
                )
            )
        if cap.window.seconds > retention:
            found.append(
                warning(
                    f"the cap of rule '{rule.name}' looks back {duration_text(cap.window.seconds)}, but events are"
                    f" kept for only {duration_text(retention)}, so older impressions are not counted",
                    cap.window.span,
                    code="window-beyond-retention",
                    hint="shorten the cap's window, or run the server with a longer --retention",
                )
            )
    return found


def _windows_beyond_retention(program: Program, rule_calls: list[ast.Call], retention: float) -> list[Diagnostic]:
    segment_calls = [
        node for s in program.segments.values() for node in walk(s.condition) if isinstance(node, ast.Call)
    ]
    found = []
    refs: dict[str, FeatureRef | None] = {}  # by call_key: a large ruleset repeats a few hundred calls
    for node in [*rule_calls, *segment_calls]:
        key = call_key(node)
        if key is None or key not in refs:
            ref, _problems = call_ref(node)
            if key is not None:
                refs[key] = ref
        else:
            ref = refs[key]
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
