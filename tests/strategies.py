"""Hypothesis strategies that generate syntax trees of the rules language.

The trees are the ones the parser can produce: literals are never negative
(``-1`` is ``Negate(Number(1))``), ``and`` / ``or`` have at least two operands,
names are never reserved words (attribute names after a dot may be), and
spans are left out since they take no part in equality.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tailor.dsl import ast
from tailor.dsl.tokenizer import KEYWORDS

RESERVED_WORDS: frozenset[str] = frozenset(KEYWORDS)

# --- names -------------------------------------------------------------------

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
# Names that start like a reserved word or look like a literal, to catch a tokenizer that cuts words short.
# `cap` and `per` are keywords only in a rule's tail, names everywhere else.
TRICKY_NAMES = (
    "notify",
    "order",
    "android",
    "island",
    "index",
    "rules",
    "true_",
    "nulls",
    "at",
    "nothing",
    "null",
    "cap",
    "per",
    "capped",
    "attribute",
    "public",
    "text",
)
identifiers: st.SearchStrategy[str] = st.one_of(
    st.builds(str.__add__, st.sampled_from(_NAME_START), st.text(_NAME_START + "0123456789", max_size=11)).filter(
        lambda name: name not in RESERVED_WORDS
    ),
    st.sampled_from(TRICKY_NAMES),
)
# After a dot any word is an attribute name, reserved or not (`context.default`).
attribute_names: st.SearchStrategy[str] = identifiers | st.sampled_from(sorted(RESERVED_WORDS))
idents: st.SearchStrategy[ast.Ident] = identifiers.map(ast.Ident)

# --- literals ----------------------------------------------------------------

non_negative_floats: st.SearchStrategy[float] = st.floats(
    min_value=0.0, allow_nan=False, allow_infinity=False, allow_subnormal=True
).map(abs)
non_negative_numbers: st.SearchStrategy[int | float] = st.integers(min_value=0, max_value=10**15) | non_negative_floats
# "Simple decimals" such as 1.5 or 0.25, as authors write them in durations.
simple_decimals: st.SearchStrategy[float] = st.builds(
    lambda whole, fraction: float(f"{whole}.{fraction}"),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=999),
)

# Arbitrary text, plus the characters a string printer has to escape.
strings: st.SearchStrategy[ast.String] = (
    st.text() | st.sampled_from(['"', "\\", '\\"', "# no comment", "\n\t\r", "\u2028", "é✓"])
).map(ast.String)
numbers: st.SearchStrategy[ast.Number] = st.builds(ast.Number, non_negative_numbers, st.just(False))
percentages: st.SearchStrategy[ast.Number] = st.builds(ast.Number, non_negative_numbers, st.just(True))
booleans: st.SearchStrategy[ast.Boolean] = st.booleans().map(ast.Boolean)
durations: st.SearchStrategy[ast.Duration] = st.builds(
    ast.Duration,
    st.integers(min_value=0, max_value=10**6) | simple_decimals,
    st.sampled_from(sorted(ast.DURATION_UNITS)),
)
attributes: st.SearchStrategy[ast.Attribute] = st.builds(
    ast.Attribute, st.sampled_from(["user", "context"]) | identifiers, attribute_names
)
names: st.SearchStrategy[ast.Name] = identifiers.map(ast.Name)

leaves: st.SearchStrategy[ast.Expr] = st.one_of(strings, numbers, percentages, booleans, durations, attributes, names)


def _tuples(children: st.SearchStrategy[ast.Expr], min_size: int, max_size: int) -> st.SearchStrategy[tuple]:
    return st.lists(children, min_size=min_size, max_size=max_size).map(tuple)


def _compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(ast.ListLiteral, _tuples(children, 0, 3)),
        st.builds(ast.Call, identifiers, _tuples(children, 0, 3)),
        st.builds(ast.Not, children),
        st.builds(ast.Negate, children),
        st.builds(ast.Arithmetic, st.sampled_from(ast.ARITHMETIC_OPERATORS), children, children),
        st.builds(ast.Compare, st.sampled_from(ast.COMPARISON_OPERATORS), children, children),
        st.builds(ast.IsMissing, children, st.booleans()),
        st.builds(ast.And, _tuples(children, 2, 4)),
        st.builds(ast.Or, _tuples(children, 2, 4)),
    )


def expressions(max_leaves: int = 12) -> st.SearchStrategy[ast.Expr]:
    """Random expression trees of every kind, nested in every combination."""
    return st.recursive(leaves, _compound, max_leaves=max_leaves)


# --- JSON payloads -----------------------------------------------------------

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
payloads: st.SearchStrategy[dict[str, Any]] = st.dictionaries(st.text(max_size=8), json_values, max_size=5)

# --- declarations ------------------------------------------------------------

# A cap's number as written, sign included: the parser accepts what the checker rejects.
cap_limits: st.SearchStrategy[ast.Number] = st.builds(
    ast.Number,
    st.integers(min_value=-10, max_value=10**6) | simple_decimals | simple_decimals.map(lambda x: -x),
    st.just(False),
)
caps: st.SearchStrategy[ast.Cap] = st.builds(ast.Cap, cap_limits, durations)

# What a test may expect in a slot: a content name, or `nothing` / `default`.
expected_contents: st.SearchStrategy[ast.Ident] = idents | st.sampled_from(["nothing", "default"]).map(ast.Ident)


# An arm is named by any word, reserved or not, but those that may stand before a percentage.
arm_names: st.SearchStrategy[ast.Ident] = (
    identifiers | st.sampled_from(sorted(RESERVED_WORDS - {"holdout", "when", "given", "in", "not", "and", "or"}))
).map(ast.Ident)
arms: st.SearchStrategy[ast.Arm] = st.builds(ast.Arm, arm_names, percentages)


type_words: st.SearchStrategy[ast.Ident] = st.sampled_from(sorted(ast.ATTRIBUTE_TYPES)).map(ast.Ident)


def declarations(max_leaves: int = 12) -> st.SearchStrategy[ast.Declaration]:
    exprs = expressions(max_leaves)
    return st.one_of(
        st.builds(ast.RulesetDecl, idents),
        st.builds(ast.ContentDecl, idents, payloads),
        st.builds(ast.ModelDecl, idents, strings),
        st.builds(ast.SegmentDecl, idents, exprs),
        st.builds(
            ast.RuleDecl,
            st.none() | idents,
            exprs,
            idents,
            st.none() | idents,
            st.none() | st.integers(min_value=-1000, max_value=1000),
            st.none() | caps,
        ),
        st.builds(ast.DefaultDecl, idents, st.none() | idents),
        st.builds(
            ast.TestDecl,
            strings,
            _tuples(st.builds(ast.Given, exprs, exprs), 0, 3),
            _tuples(st.builds(ast.Expectation, idents, expected_contents), 1, 3),
            st.none() | exprs,
        ),
        st.builds(ast.ExperimentDecl, idents, _tuples(arms, 1, 4), st.none() | strings, st.none() | percentages),
        st.builds(ast.HoldoutDecl, percentages, st.none() | strings),
        # The type is any word: the parser takes it, and the checker says which words are types.
        st.builds(ast.AttributeDecl, attributes, idents | type_words, st.booleans()),
    )


def modules(max_declarations: int = 6, max_leaves: int = 12) -> st.SearchStrategy[ast.Module]:
    """Whole files: a sequence of random declarations."""
    return st.lists(declarations(max_leaves), max_size=max_declarations).map(lambda decls: ast.Module(tuple(decls)))
