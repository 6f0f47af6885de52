"""The grammar's LALR(1) parser: Lark's tables, driven by a plain loop.

This is the one module that reads Lark's internals: its parse table, its tree
callbacks and the wrappers they are made of. It reads them once, when the
first parse builds the parser; the Lark versions it is tested with are pinned
in pyproject.toml, and a test checks that the fast loop is in use and builds
exactly what Lark's own loop builds.

A well-formed file is parsed by a small loop over Lark's own tables
(``_FastParser``); any syntax error hands the whole parse back to Lark's loop,
so error messages come from Lark's parser state. The loop runs in C
(``_lalr.c``) where the package was built with it, and in Python without it or
with ``TAILOR_NO_NATIVE=1``: the same tables and callbacks, so the same tree.

Lark fixes its tree callbacks when it is built, but here every parse call
brings its own tree builder (``bind``), so that parses in several threads
share nothing but the tables. The fast loop makes each rule's callback on that
rule's first reduction, from the wrappers Lark would use; Lark's loop gets
the callbacks Lark itself makes for the builder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field
from importlib import resources
from itertools import chain
from typing import TYPE_CHECKING, Any

from lark import Lark
from lark.grammar import Rule
from lark.lexer import Lexer
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from . import native
from .tokenizer import Token

try:
    from . import _lalr  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the loop runs in Python
    _lalr = None

if TYPE_CHECKING:
    from .tree_builder import TreeBuilder

# The grammar's start rules: a whole file, and a lone expression.
STARTS = ("start", "expression")

Callback = Callable[[list], Any]


class _TokenStream(Lexer):
    """Feeds an already tokenized list to Lark (our "custom lexer")."""

    def __init__(self, lexer_conf: Any):
        pass

    def lex(self, tokens: list[Token]):  # type: ignore[override]
        return iter(tokens)


class _NoAction(Exception):
    """The fast loop met a token the tables have no action for: a syntax error."""


@dataclass(frozen=True, slots=True)
class _Reduce:
    """A reduction: pop ``size`` values, build a node with rule ``index``'s callback, go to ``origin``'s state.

    ``index`` is None for a ``?rule`` with one child, which Lark passes through
    unchanged (``ExpandSingleChild``): more than half of all reductions.
    """

    size: int
    index: int | None
    origin: str


@dataclass(frozen=True, slots=True)
class _Recipe:
    """How one rule's callback is made for a tree builder: Lark's wrappers around the builder's method.

    It is what Lark's ``create_callback`` does for one rule, done only for the
    rules a parse reduces; the fast loop's agreement test compares the two.
    """

    name: str
    wrappers: tuple[Callable[[Callback], Callback], ...]
    # Lark's own callback, for a rule the builder has no method for (an inlined ``_rule``
    # or a repetition): it builds a small Lark tree that the parent's wrapper unpacks.
    shared: Callback

    def make(self, builder: TreeBuilder) -> Callback:
        method = getattr(builder, self.name, None)
        if method is None:
            return self.shared
        for wrap in self.wrappers:
            method = wrap(method)
        return method


class _Callbacks(dict[int, Callback]):
    """One tree builder's callbacks by rule index, each made on its rule's first reduction.

    A parse reduces a few dozen of the grammar's rules; making only those keeps
    a short parse (a model's input expression) as cheap as it was.
    """

    __slots__ = ("_builder", "_recipes")

    def __init__(self, recipes: tuple[_Recipe, ...], builder: TreeBuilder):
        super().__init__()
        self._recipes = recipes
        self._builder = builder

    def __missing__(self, index: int) -> Callback:
        callback = self[index] = self._recipes[index].make(self._builder)
        return callback


_END = Token("$END", "", 0, 0)


class _FastParser:
    """Lark's LALR(1) tables, driven by a plain loop.

    Lark's own loop costs most of a large file's parse: per token it re-reads
    its configuration and asserts, it looks states up by nonterminal names that
    are ``lark.Token`` objects (a Python-level ``__eq__`` on every goto), and it
    calls a wrapper for each of the many one-child reductions. Here every
    action is resolved once, up front. The loop only handles input that
    parses; on a syntax error it raises ``_NoAction`` and the caller parses
    again with Lark, which reports the error.
    """

    def __init__(self, lark: Lark, rule_index: dict[Rule, int]):
        parser = lark.parser.parser.parser  # frontend -> LALR_Parser -> _Parser
        table = parser.parse_table
        callbacks = parser.callbacks
        assert all(isinstance(key, Rule) for key in callbacks), "no terminal callbacks"
        reductions: dict[Rule, _Reduce] = {}

        def action(kind: Any, arg: Any) -> int | _Reduce:
            if kind is Shift:
                return arg
            if arg not in reductions:
                size = len(arg.expansion)
                passes_through = size == 1 and isinstance(callbacks[arg], ExpandSingleChild)
                reductions[arg] = _Reduce(size, None if passes_through else rule_index[arg], str(arg.origin.name))
            return reductions[arg]

        assert sorted(table.states) == list(range(len(table.states)))
        self._actions: list[dict[str, int | _Reduce]] = [
            {str(symbol): action(kind, arg) for symbol, (kind, arg) in table.states[state].items()}
            for state in range(len(table.states))
        ]
        self._start_states: dict[str, int] = dict(table.start_states)
        self._end_states: dict[str, int] = dict(table.end_states)
        # (state below the top, top state, token type) -> the top state after the one-child
        # reductions that token makes there, in a row; learnt as the parses meet them.
        self._passes: dict[tuple[int, int, str], int] = {}

    def _passed(self, below: int, state: int, kind: str) -> int:
        """The top state after the one-child reductions ``kind`` makes in a row over ``below``.

        Each of them only swaps the top state, through ``below``'s goto, so the
        chain (up to eight long, from an atom to an expression) depends on the
        three alone. It stops at an end state, where the loop may finish.
        """
        actions = self._actions
        ends = self._end_states.values()
        action = actions[state].get(kind)
        while action.__class__ is _Reduce and action.index is None and state not in ends:
            state = actions[below][action.origin]
            action = actions[state].get(kind)
        return state

    def parse(self, tokens: list[Token], start: str, callbacks: _Callbacks) -> Any:
        """The tree ``callbacks`` build for ``tokens``; ``_NoAction`` on a syntax error."""
        if _native_parse is not None and tokens.__class__ is list:
            return _native_parse(
                self._actions,
                self._passes,
                self._passed,
                tokens,
                _END,
                self._start_states[start],
                self._end_states[start],
                callbacks,
            )
        return self.python_parse(tokens, start, callbacks)

    def python_parse(self, tokens: list[Token], start: str, callbacks: _Callbacks) -> Any:
        """``parse``'s loop in Python: what the C runs."""
        actions: list[dict[str, Any]] = self._actions  # a shift's next state (an int), or a _Reduce
        passes = self._passes
        end_state = self._end_states[start]
        state = self._start_states[start]
        states = [state]  # the stack; ``state`` is its top
        values: list[Any] = []
        for token in chain(tokens, (_END,)):
            kind = token.type
            while True:
                action = actions[state].get(kind)
                if action.__class__ is int:
                    if token is _END:
                        raise _NoAction  # Lark asserts: nothing is shifted after the end
                    states.append(action)
                    state = action
                    values.append(token)
                    break
                if action is None:
                    raise _NoAction
                index = action.index
                if index is None:  # one child passed through, perhaps several times: swap the top state
                    key = (states[-2], state, kind)
                    top = passes.get(key)
                    if top is None:
                        top = passes[key] = self._passed(states[-2], state, kind)
                    state = states[-1] = top
                else:
                    size = action.size
                    if size:
                        children = values[-size:]
                        del states[-size:]
                        del values[-size:]
                    else:
                        children = []
                    values.append(callbacks[index](children))
                    state = actions[states[-1]][action.origin]
                    states.append(state)
                if state == end_state and token is _END:
                    return values[-1]
        raise AssertionError("unreachable: the end token either finishes the parse or fails it")


def _native_loop() -> Callable[..., Any] | None:
    """The C loop, told which exception a syntax error raises; None when it is not built or not allowed."""
    if _lalr is None or not native.allowed():
        return None
    _lalr.configure(_NoAction)
    return _lalr.parse


_native_parse = _native_loop()


def _fast_parser(lark: Lark, rule_index: dict[Rule, int]) -> _FastParser | None:
    """The fast loop, or None (Lark's own loop) if this Lark keeps its tables otherwise.

    A Lark release that moves the tables costs speed, not correctness; a test
    checks that the fast loop is in use.
    """
    try:
        return _FastParser(lark, rule_index)
    except (AttributeError, AssertionError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class LalrDriver:
    """The grammar's Lark parser, the fast loop over its tables, and the recipes of tree callbacks."""

    lark: Lark
    recipes: tuple[_Recipe, ...]
    fast: _FastParser | None

    @classmethod
    def build(cls, grammar: str) -> LalrDriver:
        """Lark's tables for ``grammar`` (the slow part), then everything read from them once."""
        lark = Lark(grammar, parser="lalr", lexer=_TokenStream, maybe_placeholders=True, start=list(STARTS))
        rule_builders = lark._parse_tree_builder.rule_builders  # (rule, Lark's wrappers for its callback)
        own = lark.parser.parser.parser.callbacks  # what Lark made with no transformer: small Lark trees
        recipes = tuple(
            _Recipe(rule.alias or rule.options.template_source or rule.origin.name, tuple(wrappers), own[rule])
            for rule, wrappers in rule_builders
        )
        rule_index = {rule: index for index, (rule, _wrappers) in enumerate(rule_builders)}
        return cls(lark, recipes, _fast_parser(lark, rule_index))

    def bind(self, builder: TreeBuilder) -> BoundParser:
        """The parser of one parse call, whose reductions call ``builder``."""
        return BoundParser(self, builder, _Callbacks(self.recipes, builder))


@dataclass(frozen=True, slots=True)
class BoundParser:
    """The driver with callbacks made for one tree builder: one parse call's parser."""

    driver: LalrDriver
    builder: TreeBuilder
    callbacks: _Callbacks
    # Lark's callbacks for the builder, by rule: made on the first syntax error.
    lark_callbacks: dict[Rule, Callback] = field(default_factory=dict)

    def parse(self, tokens: list[Token], start: str) -> Any:
        """Parse with the fast loop; on a syntax error, parse again with Lark so that it raises.

        Problems the tree callbacks reported during the failed attempt are dropped
        (from the builder's list) so that Lark's pass reports them once.
        """
        fast = self.driver.fast
        if fast is None:
            return self._parse_with_lark(tokens, start)
        problems = self.builder.problems
        reported = len(problems)
        try:
            return fast.parse(tokens, start, self.callbacks)
        except _NoAction:
            del problems[reported:]
            return self._parse_with_lark(tokens, start)

    def _parse_with_lark(self, tokens: list[Token], start: str) -> Any:
        """Lark's own loop, with Lark's callbacks for this builder; a syntax error raises ``UnexpectedInput``."""
        lark = self.driver.lark
        if not self.lark_callbacks:
            self.lark_callbacks.update(lark._parse_tree_builder.create_callback(self.builder))
        parser = lark.parse_interactive(tokens, start)  # type: ignore[arg-type]
        state = parser.parser_state
        conf = copy(state.parse_conf)  # the tables, and the callbacks the reductions call
        conf.callbacks = self.lark_callbacks
        state.parse_conf = conf
        return parser.resume_parse()


_DRIVER: LalrDriver | None = None
_BUILDING = threading.Lock()


def lalr_driver() -> LalrDriver:
    """The grammar's parser, built by the first parse, once, whichever thread gets there first.

    Building Lark's tables takes a noticeable part of a second, which a
    program that imports the language without parsing should not pay.
    """
    global _DRIVER
    driver = _DRIVER
    if driver is None:
        with _BUILDING:
            if _DRIVER is None:
                grammar = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
                _DRIVER = LalrDriver.build(grammar)
            driver = _DRIVER
    return driver
