"""The feature functions of the language and the references they make.

A ``FeatureRef`` names one value a decision may need: a behavioural counter,
a profile or context attribute, or a model's prediction. Its ``text`` is the
canonical source text (what the formatter prints), which is also how callers
key supplied feature values; ``supplied_feature`` reads such a key written
by hand, and ``value_key`` tells which texts name the same value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, RulesError, did_you_mean, error
from tailor.dsl.printer import expression_text

ANY_KEY = "any"

# The counter shorthands and the event type each one counts.
COUNTER_EVENTS: dict[str, str] = {
    "views": "view",
    "clicks": "click",
    "add_to_carts": "add_to_cart",
    "purchases": "purchase",
}

USAGE: dict[str, str] = {
    **{name: f'{name}("Electronics", 24h) or {name}(24h)' for name in COUNTER_EVENTS},
    "count": 'count("cart_abandoned", "any", 7d)',
    "total": 'total("purchase", "any", 30d)',
    "since": 'since("purchase") or since("view", "Electronics")',
}

FUNCTIONS = tuple(USAGE)
SCOPES = ("user", "context")


class FeatureKind(StrEnum):
    COUNT = "count"  # how many events in a window; never unknown
    TOTAL = "total"  # sum of the events' values in a window; never unknown
    SINCE = "since"  # seconds since the last event; unknown when there was none
    PROFILE = "profile"  # user.ATTR
    CONTEXT = "context"  # context.ATTR
    MODEL = "model"  # a model's predicted probability
    EXPERIMENT = "experiment"  # the user's arm of an experiment, drawn from the user id; unknown outside it


@dataclass(frozen=True, slots=True)
class FeatureRef:
    kind: FeatureKind
    text: str
    event: str = ""
    key: str = ANY_KEY
    window: float = 0.0  # seconds; 0 for attributes, models and since()
    name: str = ""  # attribute or model name

    def __hash__(self) -> int:
        """The text's hash, which Python keeps with the string: equal references have equal texts, and
        hashing every field (an enum's hash is a Python call) was much of planning a large ruleset."""
        return hash(self.text)

    @property
    def is_behavioural(self) -> bool:
        return self.kind in (FeatureKind.COUNT, FeatureKind.TOTAL, FeatureKind.SINCE)

    @property
    def zero_when_absent(self) -> bool:
        """Counters and totals are 0 when nothing happened. They are still unknown
        when the store could not be asked (a degraded decision)."""
        return self.kind in (FeatureKind.COUNT, FeatureKind.TOTAL)


def attribute_ref(node: ast.Attribute) -> FeatureRef:
    kind = FeatureKind.PROFILE if node.scope == "user" else FeatureKind.CONTEXT
    return FeatureRef(kind, expression_text(node), name=node.name)


def model_ref(name: str) -> FeatureRef:
    return FeatureRef(FeatureKind.MODEL, name, name=name)


def experiment_ref(name: str) -> FeatureRef:
    return FeatureRef(FeatureKind.EXPERIMENT, name, name=name)


def call_key(call: ast.Call) -> str | None:
    """A key under which to remember ``call_ref(call)``: the call's source text.

    A large ruleset repeats a few hundred calls thousands of times, and
    ``call_ref`` prints each one. The same text parses to the same call, so it
    keeps apart what equality of nodes would not (``1h`` and ``1.0h`` are
    equal nodes but different features). None for a node built without a span.
    """
    return call.span.text if call.span is not None else None


def call_ref(call: ast.Call) -> tuple[FeatureRef | None, list[Diagnostic]]:
    """Check a feature function call; return its reference and any problems."""
    function, args = call.function, call.args
    if function not in USAGE:
        hint = did_you_mean(function, FUNCTIONS)
        return None, [
            error(
                f"unknown function '{function}'",
                call.span,
                code="unknown-function",
                hint=hint or "the functions are " + ", ".join(FUNCTIONS),
            )
        ]
    problems: list[Diagnostic] = []
    text = expression_text(call)

    def usage_error(message: str) -> tuple[None, list[Diagnostic]]:
        return None, [error(message, call.span, code="arguments", hint=f"write it like {USAGE[function]}")]

    if function in COUNTER_EVENTS:
        if len(args) not in (1, 2):
            return usage_error(f"{function}() takes a key and a window, or just a window; it got {_count(args)}")
        key = _string_arg(args[0], "key", function, problems) if len(args) == 2 else ANY_KEY
        window = _window_arg(args[-1], function, problems)
        ref = FeatureRef(FeatureKind.COUNT, text, COUNTER_EVENTS[function], key or ANY_KEY, window or 0.0)
    elif function in ("count", "total"):
        if len(args) != 3:
            return usage_error(f"{function}() takes an event type, a key and a window; it got {_count(args)}")
        event = _string_arg(args[0], "event type", function, problems)
        key = _string_arg(args[1], "key", function, problems)
        window = _window_arg(args[2], function, problems)
        kind = FeatureKind.COUNT if function == "count" else FeatureKind.TOTAL
        ref = FeatureRef(kind, text, event or "", key or ANY_KEY, window or 0.0)
    else:  # since
        if len(args) not in (1, 2):
            return usage_error(f"since() takes an event type and optionally a key; it got {_count(args)}")
        event = _string_arg(args[0], "event type", function, problems)
        key = _string_arg(args[1], "key", function, problems) if len(args) == 2 else ANY_KEY
        ref = FeatureRef(FeatureKind.SINCE, text, event or "", key or ANY_KEY)
    return (None if problems else ref), problems


def _count(args: tuple[ast.Expr, ...]) -> str:
    return "no arguments" if not args else f"{len(args)} argument" + ("s" if len(args) > 1 else "")


def _string_arg(arg: ast.Expr, role: str, function: str, problems: list[Diagnostic]) -> str | None:
    if isinstance(arg, ast.String):
        if not arg.value:
            problems.append(error(f"the {role} of {function}() cannot be empty", arg.span, code="arguments"))
            return None
        return arg.value
    hint = ""
    if isinstance(arg, ast.Duration):
        hint = "the window comes last"
    elif isinstance(arg, ast.Name):
        hint = f'put it in double quotes: "{arg.name}"'
    problems.append(
        error(
            f"the {role} of {function}() must be text in double quotes, not {expression_text(arg)}",
            arg.span,
            code="arguments",
            hint=hint,
        )
    )
    return None


def _window_arg(arg: ast.Expr, function: str, problems: list[Diagnostic]) -> float | None:
    if isinstance(arg, ast.Duration):
        if arg.seconds <= 0:
            problems.append(error(f"the window of {function}() must be longer than zero", arg.span, code="window"))
            return None
        return float(arg.seconds)
    hint = "durations are written like 90s, 30m, 24h, 7d or 2w"
    if isinstance(arg, ast.Number):
        hint = f"did you mean {expression_text(arg)}h or {expression_text(arg)}d?"
    problems.append(
        error(
            f"the window of {function}() must be a duration, not {expression_text(arg)}",
            arg.span,
            code="window",
            hint=hint,
        )
    )
    return None


FEATURE_FORMS = (
    'a feature is a function call like views("Electronics", 24h), user.NAME, context.NAME or a model\'s name'
)


def supplied_feature(text: str) -> FeatureRef | Diagnostic:
    """The feature a key written by hand names, or why it names none.

    The reference's ``text`` is canonical: ``views( "Electronics",24h )`` is
    ``views("Electronics", 24h)``. Whether a ruleset reads it is the caller's
    question (``value_key``): a bare name is a model's only if the ruleset
    declares that model.
    """
    from tailor.dsl.parser import parse_expression  # here: modules that only decide never load the parser

    try:
        expr = parse_expression(text, "<feature>")
        return _feature_of(expr)
    except RulesError as exc:
        return exc.diagnostics[0]
    except RecursionError:
        return error("not a feature: it is nested too deeply", None, code="feature", hint=FEATURE_FORMS)


def _feature_of(expr: ast.Expr) -> FeatureRef | Diagnostic:
    if isinstance(expr, ast.Call):
        ref, problems = call_ref(expr)
        return ref if ref is not None else problems[0]
    if isinstance(expr, ast.Attribute):
        if expr.scope not in SCOPES:
            hint = did_you_mean(expr.scope, SCOPES) or "attributes are user.NAME or context.NAME"
            return error(f"unknown attribute scope '{expr.scope}'", expr.span, code="unknown-name", hint=hint)
        return attribute_ref(expr)
    if isinstance(expr, ast.Name):
        name = expr.name
        if name in USAGE:
            return error(f"{name} needs arguments", expr.span, code="arguments", hint=f"write it like {USAGE[name]}")
        if name in SCOPES:
            return error(f"'{name}' needs an attribute", expr.span, code="unknown-name", hint=f"write {name}.NAME")
        return model_ref(name)
    return error("not a feature", expr.span, code="feature", hint=FEATURE_FORMS)


def value_key(ref: FeatureRef) -> FeatureRef:
    """What ``ref`` reads, whatever its text: texts with equal keys name one value.

    ``views("A", 1d)``, ``views("A", 24h)`` and ``count("view", "A", 24h)``
    are one counter; ``views(24h)`` is ``views("any", 24h)``.
    """
    return replace(ref, text="")
