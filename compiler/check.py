"""Name resolution and type checking of a whole ruleset.

All files of a ruleset share one namespace. A profile or context attribute
may be declared (``attribute user.age number``): its type is then fixed, and
a use that disagrees is reported with the declaration. An undeclared one is
typed by inference: the first comparison that fixes its type fixes it for the
whole ruleset, and a later use that disagrees is reported with both locations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, Related, did_you_mean, error, sorted_unique
from tailor.dsl.nesting import MAX_NESTING, NESTING_CODE, nesting_depth
from tailor.dsl.printer import expression_text, number_text
from tailor.dsl.source import Span

from .caps import check_cap
from .features import FUNCTIONS, SCOPES, USAGE, FeatureKind, FeatureRef, call_key, call_ref
from .file_cache import FileEntries, FileKey
from .types import BOOL, DURATION, NUMBER, ORDERED, STRING, Type, list_of

# Content payloads are served as JSON in every response; JSON writers refuse deep nesting
# (orjson at 255 levels), so a ruleset that checks can never make a response fail.
MAX_CONTENT_DEPTH = 32


@dataclass(frozen=True, slots=True)
class CheckedRule:
    name: str
    decl: ast.RuleDecl
    slot: str
    priority: int
    order: int  # position in the ruleset: files in path order, then source order
    named: bool


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Program:
    """A ruleset whose names resolve and whose types agree: the optimizer's input."""

    name: str
    modules: tuple[ast.Module, ...]
    contents: dict[str, ast.ContentDecl]
    segments: dict[str, ast.SegmentDecl]
    models: dict[str, ast.ModelDecl]
    rules: tuple[CheckedRule, ...]
    defaults: dict[str, ast.DefaultDecl]
    attribute_types: dict[str, Type] = field(default_factory=dict)
    slots: tuple[str, ...] = ()  # every slot a rule or a default targets, in first-mention order
    experiments: dict[str, ast.ExperimentDecl] = field(default_factory=dict)
    holdout: ast.HoldoutDecl | None = None
    declared: dict[str, ast.AttributeDecl] = field(default_factory=dict)  # by attribute text
    inferred_at: dict[str, Span | None] = field(default_factory=dict)  # undeclared attributes: the use that typed each

    @property
    def public_attributes(self) -> frozenset[str]:
        """The ``user.*`` attributes declared ``public``: not personal data, readable without consent."""
        return frozenset(text for text, decl in self.declared.items() if decl.public and decl.attribute.scope == "user")


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file whose conditions checked without a problem: the attribute types it found, and those it added.

    Checking a file's conditions reads the names other files declare (the
    cache entries' context) and the attribute types known before it (declared,
    or inferred by the files before it), and adds the types its own uses
    infer, in the order it meets them; it changes nothing else.
    """

    before: dict[str, Type]  # where each type came from does not matter to a file that checks
    added: tuple[tuple[str, tuple[Type, Span | None]], ...]


def check(
    modules: Sequence[ast.Module],
    default_name: str = "ruleset",
    cache: FileEntries[CheckedFile] | None = None,
    keys: Sequence[FileKey] = (),
) -> tuple[Program, list[Diagnostic]]:
    """The program, and every problem found; with a ``cache`` and each module's key (its file's
    name and digest), a file whose entry is current is not checked again."""
    checker = _Checker(modules, default_name)
    program = checker.run(cache, keys)
    return program, sorted_unique(checker.problems)


def check_expression(program: Program, expr: ast.Expr) -> tuple[Type | None, list[Diagnostic]]:
    """The type of a standalone expression in a program's namespace (a model's input, say)."""
    checker = _Checker(program.modules, program.name)
    checker.segments, checker.models = program.segments, program.models
    checker.attributes = {text: (kind, None) for text, kind in program.attribute_types.items()}
    kind = checker._infer(expr)
    return kind, sorted_unique(checker.problems)


def payload_depth(payload: Any) -> int:
    """How deeply objects and lists nest in a content's JSON (the object itself is level 1); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def rule_name(rule: ast.RuleDecl, module_name: str) -> str:
    """A rule's name; an unnamed rule is called "<file stem>:<line>"."""
    if rule.name is not None:
        return rule.name.name
    line = rule.span.line if rule.span is not None else 0
    return f"{PurePath(module_name).stem}:{line}"


class _Checker:
    def __init__(self, modules: Sequence[ast.Module], default_name: str):
        self.modules = tuple(modules)
        self.default_name = default_name
        self.problems: list[Diagnostic] = []
        self.contents: dict[str, ast.ContentDecl] = {}
        self.segments: dict[str, ast.SegmentDecl] = {}
        self.models: dict[str, ast.ModelDecl] = {}
        self.experiments: dict[str, ast.ExperimentDecl] = {}
        self.holdout: ast.HoldoutDecl | None = None
        self.defaults: dict[str, ast.DefaultDecl] = {}
        self.rules: list[CheckedRule] = []
        self.attributes: dict[str, tuple[Type, Span | None]] = {}
        self.declared: dict[str, ast.AttributeDecl] = {}
        self._call_refs: dict[str, FeatureRef] = {}  # valid calls, by ``call_key``

    def report(self, message: str, span: Span | None, **extra) -> None:
        self.problems.append(error(message, span, **extra))

    # --- declarations ---

    def run(self, cache: FileEntries[CheckedFile] | None = None, keys: Sequence[FileKey] = ()) -> Program:
        name = self._ruleset_name()
        self._collect()
        if cache is None:
            for module in self.modules:
                self._check_module(module)
        else:
            self._check_modules(cache, keys)
        self._segments()
        types = {text: entry[0] for text, entry in self.attributes.items()}
        inferred = {text: entry[1] for text, entry in self.attributes.items() if text not in self.declared}
        slots = tuple({**dict.fromkeys(rule.slot for rule in self.rules), **dict.fromkeys(self.defaults)})
        return Program(
            name,
            self.modules,
            self.contents,
            self.segments,
            self.models,
            tuple(self.rules),
            self.defaults,
            types,
            slots,
            self.experiments,
            self.holdout,
            self.declared,
            inferred,
        )

    def _check_module(self, module: ast.Module) -> None:
        for decl in module.declarations:
            if isinstance(decl, ast.SegmentDecl):
                self._condition(decl.condition)
            elif isinstance(decl, ast.RuleDecl):
                self._condition(decl.condition)
                self._content(decl.content)
                if decl.cap is not None:
                    self.problems.extend(check_cap(decl.cap))
            elif isinstance(decl, ast.DefaultDecl):
                self._content(decl.content)

    def _check_modules(self, cache: FileEntries[CheckedFile], keys: Sequence[FileKey]) -> None:
        """``_check_module`` on each module, but a file found clean under the same names and attribute
        types before it is not checked again: its attribute types are added as it added them."""
        context = (tuple(self.segments), tuple(self.models), tuple(self.experiments), tuple(self.contents))
        known = cache.entries(context)
        made: dict[FileKey, CheckedFile] = {}
        for module, key in zip(self.modules, keys, strict=True):
            entry = known.get(key)
            before = {text: typed[0] for text, typed in self.attributes.items()}
            if entry is not None and entry.before == before:
                cache.hits += 1
                self.attributes.update(entry.added)
                made[key] = entry
                continue
            cache.misses += 1
            found = len(self.problems)
            self._check_module(module)
            if len(self.problems) == found:
                added = tuple((text, typed) for text, typed in self.attributes.items() if text not in before)
                made[key] = CheckedFile(before, added)
        cache.replace(context, made)

    def _ruleset_name(self) -> str:
        first: ast.RulesetDecl | None = None
        for module in self.modules:
            in_file = [d for d in module.declarations if isinstance(d, ast.RulesetDecl)]
            for extra in in_file[1:]:
                self.report("a file can name its ruleset only once", extra.span, code="duplicate")
            if not in_file:
                continue
            if first is None:
                first = in_file[0]
            elif in_file[0].name.name != first.name.name:
                self.report(
                    f"this ruleset is already named '{first.name.name}'",
                    in_file[0].span,
                    code="duplicate",
                    related=[Related("named here", first.span)] if first.span else [],
                )
        return first.name.name if first is not None else self.default_name

    def _collect(self) -> None:
        rule_names: dict[str, Span | None] = {}
        order = 0
        for module in self.modules:
            for decl in module.declarations:
                match decl:
                    case ast.ContentDecl(name):
                        self._declare(self.contents, name, decl, "content")
                        self._content_depth(decl)
                    case ast.SegmentDecl(name) | ast.ModelDecl(name) | ast.ExperimentDecl(name):
                        self._named(name, decl)
                    case ast.HoldoutDecl():
                        self._holdout(decl)
                    case ast.AttributeDecl():
                        self._attribute(decl)
                    case ast.DefaultDecl():
                        slot_name = decl.slot_name
                        if slot_name in self.defaults:
                            previous = self.defaults[slot_name]
                            self.report(
                                f"slot '{slot_name}' already has a default",
                                decl.span,
                                code="duplicate",
                                related=[Related("the first default is here", previous.span)] if previous.span else [],
                            )
                        else:
                            self.defaults[slot_name] = decl
                    case ast.RuleDecl():
                        name = rule_name(decl, module.name)
                        if decl.name is not None and name in rule_names:
                            first = rule_names[name]
                            self.report(
                                f"there is already a rule named '{name}'",
                                decl.name.span,
                                code="duplicate",
                                related=[Related("the first one is here", first)] if first else [],
                            )
                        rule_names.setdefault(name, decl.name.span if decl.name else decl.span)
                        rule = CheckedRule(
                            name, decl, decl.slot_name, decl.effective_priority, order, decl.name is not None
                        )
                        self.rules.append(rule)
                        order += 1
                    case ast.TestDecl() if not module.name.endswith("_test.rules"):
                        self.report(
                            "tests belong in a file whose name ends in _test.rules",
                            decl.span,
                            code="misplaced-test",
                        )

    def _named(self, name: ast.Ident, decl: ast.SegmentDecl | ast.ModelDecl | ast.ExperimentDecl) -> None:
        """Segments, models and experiments share one namespace: the names conditions use."""
        tables = {"segment": self.segments, "model": self.models, "experiment": self.experiments}
        kind = {ast.SegmentDecl: "segment", ast.ModelDecl: "model", ast.ExperimentDecl: "experiment"}[type(decl)]
        for other_kind, table in tables.items():
            if other_kind != kind and name.name in table:
                self._duplicate(name, table[name.name].name, "name")
                return
        self._declare(tables[kind], name, decl, kind)
        if isinstance(decl, ast.ExperimentDecl) and self.experiments.get(name.name) is decl:
            self._experiment(decl)

    def _experiment(self, decl: ast.ExperimentDecl) -> None:
        """Arms named once each, weights that sum to 100%, a coverage within 0-100%."""
        seen: dict[str, ast.Arm] = {}
        for arm in decl.arms:
            first = seen.setdefault(arm.name.name, arm)
            if first is not arm:
                self.report(
                    f"experiment '{decl.name.name}' already has an arm '{arm.name.name}'",
                    arm.name.span,
                    code="duplicate",
                    related=[Related("first declared here", first.name.span)] if first.name.span else [],
                )
        total = sum(arm.weight.value for arm in decl.arms)
        if decl.arms and not math.isclose(total, 100, abs_tol=1e-9):
            written = " + ".join(expression_text(arm.weight) for arm in decl.arms)
            self.report(
                f"the weights of experiment '{decl.name.name}' sum to {number_text(total)}%, not 100%: {written}",
                _arms_span(decl),
                code="weights",
                hint="weights are each arm's share of the users who enter; to let fewer in, lower the coverage",
            )
        if decl.coverage is not None and decl.coverage.value > 100:
            self.report(
                f"coverage is a share of users: at most 100%, not {expression_text(decl.coverage)}",
                decl.coverage.span,
                code="weights",
            )

    def _attribute(self, decl: ast.AttributeDecl) -> None:
        """A declared attribute: a known scope, a known type, declared once; its type is then fixed."""
        attribute = decl.attribute
        if attribute.scope not in SCOPES:
            self.report(
                f"unknown attribute scope '{attribute.scope}'",
                attribute.span,
                code="unknown-name",
                hint=did_you_mean(attribute.scope, SCOPES) or "attributes are user.NAME or context.NAME",
            )
            return
        text = _attribute_text(attribute)
        type_name = ast.ATTRIBUTE_TYPES.get(decl.type.name)
        if type_name is None:
            self.report(
                f"unknown type '{decl.type.name}'",
                decl.type.span,
                code="unknown-name",
                hint=did_you_mean(decl.type.name, ast.ATTRIBUTE_TYPES)
                or "the types are number, text, boolean and duration",
            )
            return
        first = self.declared.get(text)
        if first is not None:
            self.report(
                f"{text} is already declared",
                attribute.span,
                code="duplicate",
                related=[Related("first declared here", first.attribute.span)] if first.attribute.span else [],
            )
            return
        self.declared[text] = decl
        self.attributes[text] = (_TYPES[type_name], attribute.span)

    def _holdout(self, decl: ast.HoldoutDecl) -> None:
        if self.holdout is not None:
            first = self.holdout
            self.report(
                "the ruleset already has a holdout",
                decl.span,
                code="duplicate",
                related=[Related("the first one is here", first.span)] if first.span else [],
            )
            return
        self.holdout = decl
        if decl.share.value >= 100:
            self.report(
                f"a holdout of {expression_text(decl.share)} would keep every user from every rule",
                decl.share.span,
                code="weights",
                hint="the holdout is the share of users who get only defaults, such as 5%",
            )

    def _declare(self, table: dict, name: ast.Ident, decl, kind: str) -> None:
        if name.name in table:
            self._duplicate(name, table[name.name].name, kind)
        else:
            table[name.name] = decl

    def _duplicate(self, name: ast.Ident, first: ast.Ident, kind: str) -> None:
        self.report(
            f"the {kind} '{name.name}' is already declared",
            name.span,
            code="duplicate",
            related=[Related("first declared here", first.span)] if first.span else [],
        )

    def _content_depth(self, decl: ast.ContentDecl) -> None:
        depth = payload_depth(decl.payload)
        if depth > MAX_CONTENT_DEPTH:
            self.report(
                f"content '{decl.name.name}' is nested {depth} levels deep; the limit is {MAX_CONTENT_DEPTH}",
                decl.name.span,
                code="content-too-deep",
                hint="flatten the payload: every response carries it as JSON",
            )

    def _content(self, content: ast.Ident) -> None:
        if content.name not in self.contents:
            self.report(
                f"unknown content '{content.name}'",
                content.span,
                code="unknown-name",
                hint=did_you_mean(content.name, self.contents) or "declare it with: content NAME = {...}",
            )

    def _segments(self) -> None:
        uses = {name: _segment_uses(decl.condition, self.segments) for name, decl in self.segments.items()}
        if not self._segment_cycles(uses):
            self._segment_depths(uses)

    def _segment_cycles(self, uses: dict[str, list[str]]) -> bool:
        """Report each cycle of segments once; whether there was one."""
        reported: set[frozenset[str]] = set()
        cyclic = cyclic_components(uses)
        for start in self.segments:
            if start not in cyclic:
                continue  # on no cycle: searching from it would walk all it uses, for nothing
            path = _find_cycle(start, uses, cyclic)
            if path is None or frozenset(path) in reported:
                continue
            reported.add(frozenset(path))
            self.report(
                "segment '" + start + "' depends on itself: " + " → ".join([*path, start]),
                self.segments[start].name.span,
                code="cycle",
                hint="a segment cannot use itself, directly or through other segments",
            )
        return bool(reported)

    def _segment_depths(self, uses: dict[str, list[str]]) -> None:
        """Report the segments nested too deeply once the segments they use are inlined.

        The parser bounds each expression on its own, but the optimizer inlines
        segments, so a long chain of segments each using the one before would
        nest without bound. A segment counts each segment it uses at that
        segment's levels plus one; only where a chain first crosses the limit
        is reported, not at every segment above it.
        """
        depths = inlined_depths(self.segments, uses)
        for name, depth in depths.items():
            if depth > MAX_NESTING and all(depths[used] <= MAX_NESTING for used in uses[name]):
                self.report(
                    f"segment '{name}' is nested too deeply with the segments it uses: {depth} levels,"
                    f" the limit is {MAX_NESTING}",
                    self.segments[name].condition.span,
                    code=NESTING_CODE,
                    hint="each segment used counts with its own levels, plus one: use fewer segments within segments",
                )

    # --- expressions ---

    def _condition(self, expr: ast.Expr) -> None:
        self._expect_bool(expr)

    def _expect_bool(self, expr: ast.Expr) -> None:
        kind = self._infer(expr)
        if kind is None:
            self._settle(expr, BOOL)
        elif kind != BOOL:
            text = expression_text(expr)
            hint = (
                f"compare it, for example {text} > 0" if kind in ORDERED else f'compare it, for example {text} == "x"'
            )
            if kind == DURATION:
                hint = f"compare it, for example {text} > 7d"
            self.report(
                f"a condition must be true or false, but {text} is {kind.article}",
                _span(expr),
                code="type",
                hint=hint,
                related=self._typed_at(expr),
            )

    def _settle(self, expr: ast.Expr, kind: Type | None) -> Type | None:
        """Fix an untyped attribute's type from how it is used; return its type."""
        if kind is None or not isinstance(expr, ast.Attribute) or expr.scope not in SCOPES:
            return self._type_of(expr)
        text = _attribute_text(expr)
        known = self.attributes.get(text)
        if known is None:
            self.attributes[text] = (kind, expr.span)
            return kind
        if not known[0].matches(kind):
            if text in self.declared:
                message = f"{text} is declared as {known[0].article}, but used as {kind.article} here"
                note = f"{text} is declared as {known[0].article} here"
            else:
                message = f"{text} is used as {kind.article} here, but as {known[0].article} elsewhere"
                note = f"{text} is used as {known[0].article} here"
            self.report(message, expr.span, code="type", related=[Related(note, known[1])] if known[1] else [])
        return known[0]

    def _typed_at(self, *exprs: ast.Expr) -> list[Related]:
        """Where the attributes among ``exprs`` got their types."""
        related = []
        for expr in exprs:
            entry = self.attributes.get(_attribute_text(expr)) if isinstance(expr, ast.Attribute) else None
            if entry is not None and entry[1] is not None and entry[1] != expr.span:
                text = expression_text(expr)
                if text in self.declared:
                    note = f"{text} is declared as {entry[0].article} here"
                else:
                    note = f"{text} is {entry[0].article} because of this use"
                related.append(Related(note, entry[1]))
        return related

    def _type_of(self, expr: ast.Expr) -> Type | None:
        if isinstance(expr, ast.Attribute):
            entry = self.attributes.get(_attribute_text(expr))
            return entry[0] if entry else None
        return None

    def _infer(self, expr: ast.Expr) -> Type | None:
        match expr:
            case ast.String():
                return STRING
            case ast.Number():
                return NUMBER
            case ast.Boolean():
                return BOOL
            case ast.Duration():
                return DURATION
            case ast.ListLiteral(items):
                return self._list(expr, items)
            case ast.Attribute(scope):
                if scope not in SCOPES:
                    self.report(
                        f"unknown attribute scope '{scope}'",
                        expr.span,
                        code="unknown-name",
                        hint=did_you_mean(scope, SCOPES) or "attributes are user.NAME or context.NAME",
                    )
                    return None
                return self._type_of(expr)
            case ast.Name(name):
                return self._name(expr, name)
            case ast.Call():
                ref = self._call_ref(expr)
                if ref is None:
                    return None
                return DURATION if ref.kind is FeatureKind.SINCE else NUMBER
            case ast.Not(operand):
                self._expect_bool(operand)
                return BOOL
            case ast.And(operands) | ast.Or(operands):
                for operand in operands:
                    self._expect_bool(operand)
                return BOOL
            case ast.Negate(operand):
                kind = self._settle(operand, NUMBER) if isinstance(operand, ast.Attribute) else self._infer(operand)
                if kind is not None and kind not in ORDERED:
                    self.report(f"only numbers and durations can be negated, not {kind.article}", _span(expr))
                    return None
                return kind
            case ast.Arithmetic(op, left, right):
                return self._arithmetic(expr, op, left, right)
            case ast.Compare(op, left, right):
                self._compare(expr, op, left, right)
                return BOOL
            case ast.IsMissing(operand):
                self._infer(operand)
                return BOOL
        raise TypeError(f"not an expression: {expr!r}")

    def _call_ref(self, expr: ast.Call) -> FeatureRef | None:
        """``call_ref``, reporting its problems; a valid call's reference is remembered."""
        key = call_key(expr)
        ref = self._call_refs.get(key) if key is not None else None
        if ref is None:
            ref, problems = call_ref(expr)
            self.problems.extend(problems)
            if ref is not None and key is not None:
                self._call_refs[key] = ref
        return ref

    def _name(self, expr: ast.Name, name: str) -> Type | None:
        if name in self.segments:
            return BOOL
        if name in self.models:
            return NUMBER
        if name in self.experiments:
            return STRING  # the user's arm, as text
        if name in FUNCTIONS:
            self.report(f"{name} needs arguments", expr.span, code="arguments", hint=f"write it like {USAGE[name]}")
        elif name in SCOPES:
            self.report(f"'{name}' needs an attribute", expr.span, code="unknown-name", hint=f"write {name}.NAME")
        else:
            hint = did_you_mean(name, [*self.segments, *self.models, *self.experiments])
            self.report(
                f"unknown name '{name}'",
                expr.span,
                code="unknown-name",
                hint=hint or "declare it as a segment, a model or an experiment, or write user.NAME or context.NAME",
            )
        return None

    def _list(self, expr: ast.ListLiteral, items: tuple[ast.Expr, ...]) -> Type:
        element: Type | None = None
        for item in items:
            if not isinstance(item, ast.String | ast.Number | ast.Duration | ast.Boolean | ast.Negate):
                self.report("list items must be written-out values", _span(item), code="type")
                continue
            kind = self._infer(item)
            if element is None:
                element = kind
            elif kind is not None and not kind.matches(element):
                self.report(
                    f"a list holds values of one type: this is {kind.article}, the first item {element.article}",
                    _span(item),
                    code="type",
                )
        return list_of(element)

    def _arithmetic(self, expr: ast.Arithmetic, op: str, left: ast.Expr, right: ast.Expr) -> Type | None:
        lt, rt = self._infer(left), self._infer(right)
        lt = self._settle(left, rt if rt in ORDERED and op in "+-" else NUMBER) if lt is None else lt
        rt = self._settle(right, lt if lt in ORDERED and op in "+-" else NUMBER) if rt is None else rt
        if lt is None or rt is None:
            return None
        result = _ARITHMETIC.get((lt, op, rt))
        if result is None:
            self.report(
                f"cannot use {op} on {lt.article} and {rt.article}",
                _span(expr),
                code="type",
                hint="arithmetic works on numbers, and on durations (30d + 12h, 2 * 7d)",
            )
        return result

    def _compare(self, expr: ast.Compare, op: str, left: ast.Expr, right: ast.Expr) -> None:
        lt, rt = self._infer(left), self._infer(right)
        if op in ("in", "not in"):
            if rt is not None and rt.name != "list":
                self.report(
                    f'the right side of \'{op}\' must be a list, like ["gold", "platinum"], not {rt.article}',
                    _span(right),
                    code="type",
                )
                return
            element = rt.element if rt is not None else None
            lt = self._settle(left, element) if lt is None else lt
            if lt is not None and element is not None and not lt.matches(element):
                self.report(
                    f"{expression_text(left)} is {lt.article}, but the list holds {element.name}s",
                    _span(expr),
                    code="type",
                    hint="so this can never be true" if op == "in" else "so this is always true",
                )
            return
        lt = self._settle(left, rt) if lt is None else lt
        rt = self._settle(right, lt) if rt is None else rt
        if lt is None or rt is None:
            return
        if not lt.matches(rt):
            self.report(
                f"cannot compare {lt.article} with {rt.article}: {expression_text(left)} is {lt.article}"
                f" but {expression_text(right)} is {rt.article}",
                _span(expr),
                code="type",
                hint=_comparison_hint(lt, rt),
                related=self._typed_at(left, right),
            )
        elif op not in ("==", "!=") and lt not in ORDERED:
            self.report(
                f"'{op}' compares numbers or durations, not {lt.name}s",
                _span(expr),
                code="type",
                hint="use == or != instead",
            )


_ARITHMETIC: dict[tuple[Type, str, Type], Type] = {
    (NUMBER, "+", NUMBER): NUMBER,
    (NUMBER, "-", NUMBER): NUMBER,
    (NUMBER, "*", NUMBER): NUMBER,
    (NUMBER, "/", NUMBER): NUMBER,
    (DURATION, "+", DURATION): DURATION,
    (DURATION, "-", DURATION): DURATION,
    (DURATION, "*", NUMBER): DURATION,
    (NUMBER, "*", DURATION): DURATION,
    (DURATION, "/", NUMBER): DURATION,
    (DURATION, "/", DURATION): NUMBER,
}


_TYPES: dict[str, Type] = {kind.name: kind for kind in (NUMBER, STRING, BOOL, DURATION)}


def _comparison_hint(left: Type, right: Type) -> str:
    if DURATION in (left, right) and NUMBER in (left, right):
        return "write the number as a duration, such as 30d or 12h"
    return ""


def _attribute_text(expr: ast.Attribute) -> str:
    """What ``expression_text`` prints for an attribute, without its dispatch (a hot path)."""
    return f"{expr.scope}.{expr.name}"


def _span(expr: ast.Expr) -> Span | None:
    return expr.span


def _arms_span(decl: ast.ExperimentDecl) -> Span | None:
    first, last = decl.arms[0].span, decl.arms[-1].span
    if first is None or last is None:
        return decl.name.span
    return Span(first.source, first.start, last.end)


def _segment_uses(expr: ast.Expr, segments: dict[str, ast.SegmentDecl]) -> list[str]:
    return [node.name for node in walk(expr) if isinstance(node, ast.Name) and node.name in segments]


def inlined_depths(segments: dict[str, ast.SegmentDecl], uses: dict[str, list[str]]) -> dict[str, int]:
    """How deeply each segment nests with the segments it uses inlined; no recursion.

    ``uses`` must have no cycles. A use of a segment counts as one level more
    than that segment's own depth.
    """
    depths: dict[str, int] = {}
    for start in segments:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in depths:
                stack.pop()
                continue
            waiting = [used for used in uses[name] if used not in depths]
            if waiting:
                stack.extend(waiting)
                continue
            levels = {used: depths[used] + 1 for used in uses[name]}
            depths[name] = nesting_depth(segments[name].condition, levels)
            stack.pop()
    return depths


def cyclic_components(uses: dict[str, list[str]]) -> dict[str, int]:
    """The segments that lie on a cycle, each with its strongly connected component.

    Tarjan's algorithm, without recursion: a chain of thousands of segments is
    one pass, where searching for a cycle from every segment would walk the
    rest of the chain from each.
    """
    order: dict[str, int] = {}  # when each segment was first reached
    low: dict[str, int] = {}  # the earliest segment reachable from it that is still open
    open_: list[str] = []
    is_open: set[str] = set()
    found: dict[str, int] = {}
    components = 0
    for root in uses:
        if root in order:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, next_use = work[-1]
            if next_use == 0:
                order[node] = low[node] = len(order)
                open_.append(node)
                is_open.add(node)
            used = uses.get(node, ())
            while next_use < len(used):
                child = used[next_use]
                next_use += 1
                if child not in order:
                    work[-1] = (node, next_use)
                    work.append((child, 0))
                    break
                if child in is_open:
                    low[node] = min(low[node], order[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    members = []
                    while True:
                        member = open_.pop()
                        is_open.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1 or node in used:
                        found.update(dict.fromkeys(members, components))
                    components += 1
    return found


def _find_cycle(start: str, uses: dict[str, list[str]], cyclic: dict[str, int]) -> list[str] | None:
    """The path of a cycle through ``start``, or None.

    Only segments of ``start``'s component can lead back to it; leaving the
    others out changes no path found.
    """
    component = cyclic[start]
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in uses.get(node, ()):
            if nxt == start:
                return path
            if nxt not in seen and cyclic.get(nxt) == component:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def walk(expr: ast.Expr) -> Iterable[ast.Expr]:
    """Every node of an expression, parents before children.

    Dispatched on the node's exact type (the node classes have no subclasses):
    a large ruleset's conditions have millions of nodes, and class patterns
    cost an ``isinstance`` and an attribute read per case tried.
    """
    stack = [expr]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        yield node
        kind = type(node)
        if kind is ast.Compare or kind is ast.Arithmetic:
            push(node.right)
            push(node.left)
        elif kind is ast.And or kind is ast.Or:
            extend(reversed(node.operands))
        elif kind is ast.Call:
            extend(reversed(node.args))
        elif kind is ast.ListLiteral:
            extend(reversed(node.items))
        elif kind is ast.Not or kind is ast.Negate or kind is ast.IsMissing:
            push(node.operand)
