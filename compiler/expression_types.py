"""The types of conditions and expressions, and the errors a marketer reads when they disagree.

``ExpressionTypes`` is the half of the checker that looks inside expressions:
it infers each expression's type from the declarations the checker collected
(segments, models, experiments, declared attributes) and fixes the type of an
undeclared attribute at the first use that decides it, reporting a later use
that disagrees with both places.
"""

from __future__ import annotations

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, Related, did_you_mean, error
from tailor.dsl.printer import expression_text
from tailor.dsl.source import Span

from .features import FUNCTIONS, SCOPES, USAGE, FeatureKind, FeatureRef, call_key, call_ref
from .types import BOOL, DURATION, NUMBER, ORDERED, STRING, Type, list_of


class ExpressionTypes:
    """Type inference over expressions, reporting into ``problems``; the checker sets the tables it reads."""

    problems: list[Diagnostic]
    segments: dict[str, ast.SegmentDecl]
    models: dict[str, ast.ModelDecl]
    experiments: dict[str, ast.ExperimentDecl]
    attributes: dict[str, tuple[Type, Span | None]]  # attribute text -> its type, and where it got it
    declared: dict[str, ast.AttributeDecl]
    _call_refs: dict[str, FeatureRef]  # valid calls, by ``call_key``

    def report(self, message: str, span: Span | None, **extra) -> None:
        self.problems.append(error(message, span, **extra))

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
        text = attribute_text(expr)
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
            entry = self.attributes.get(attribute_text(expr)) if isinstance(expr, ast.Attribute) else None
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
            entry = self.attributes.get(attribute_text(expr))
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


def _comparison_hint(left: Type, right: Type) -> str:
    if DURATION in (left, right) and NUMBER in (left, right):
        return "write the number as a duration, such as 30d or 12h"
    return ""


def attribute_text(expr: ast.Attribute) -> str:
    """What ``expression_text`` prints for an attribute, without its dispatch (a hot path)."""
    return f"{expr.scope}.{expr.name}"


def _span(expr: ast.Expr) -> Span | None:
    return expr.span
