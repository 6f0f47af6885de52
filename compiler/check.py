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
from tailor.dsl.diagnostics import Diagnostic, Related, did_you_mean, sorted_unique
from tailor.dsl.printer import expression_text, number_text
from tailor.dsl.source import Span

from .caps import check_cap
from .expression_types import ExpressionTypes, attribute_text
from .features import SCOPES, FeatureRef
from .file_cache import FileEntries, FileKey
from .segment_graph import segment_problems
from .types import BOOL, DURATION, NUMBER, STRING, Type

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


class _Checker(ExpressionTypes):
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

    # --- declarations ---

    def run(self, cache: FileEntries[CheckedFile] | None = None, keys: Sequence[FileKey] = ()) -> Program:
        name = self._ruleset_name()
        self._collect()
        if cache is None:
            for module in self.modules:
                self._check_module(module)
        else:
            self._check_modules(cache, keys)
        self.problems.extend(segment_problems(self.segments))
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
        text = attribute_text(attribute)
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


_TYPES: dict[str, Type] = {kind.name: kind for kind in (NUMBER, STRING, BOOL, DURATION)}


def _arms_span(decl: ast.ExperimentDecl) -> Span | None:
    first, last = decl.arms[0].span, decl.arms[-1].span
    if first is None or last is None:
        return decl.name.span
    return Span(first.source, first.start, last.end)
