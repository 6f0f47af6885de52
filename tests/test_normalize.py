"""The normal form: inlining, folding, not pushed down, merged conjunctions, shared predicates."""

from __future__ import annotations

from tailor.compiler.check import check
from tailor.compiler.ir import FALSE, TRUE, All, Any_, Atom
from tailor.compiler.normalize import Normalizer
from tailor.dsl.parser import parse


def normal(condition: str, extra: str = "") -> object:
    text = f'content c = {{}}\nmodel p_click = "p.onnx"\n{extra}\nrule r when {condition} then show c\n'
    program, problems = check([parse(text, "n.rules")])
    assert problems == []
    return Normalizer(program).condition(program.rules[0].decl.condition)


def texts(condition: object) -> list[str]:
    items = condition.items if isinstance(condition, All | Any_) else (condition,)
    return [item.text() for item in items]


def test_not_is_pushed_into_predicates() -> None:
    assert texts(normal('not (user.tier == "gold" or views(1h) > 2)')) == ['user.tier != "gold"', "views(1h) <= 2"]
    assert texts(normal("not (user.age is missing)")) == ["user.age is not missing"]
    assert texts(normal('not not (user.tier in ["a", "b"])')) == ['user.tier in ["a", "b"]']


def test_segments_are_inlined() -> None:
    condition = normal('fan and context.page == "home"', 'segment fan = views("E", 24h) > 2')
    assert texts(condition) == ['views("E", 24h) > 2', 'context.page == "home"']


def test_constants_fold() -> None:
    assert normal("1 + 2 > 2") == TRUE
    assert normal("1 / 0 > 2") == FALSE  # unknown is never true
    assert normal("not (1 / 0 > 2)") == FALSE
    assert normal("(1 / 0) is missing") == TRUE
    assert normal("70% == 0.7") == TRUE


def test_conjunctions_over_one_feature_merge() -> None:
    assert texts(normal("views(1h) > 2 and views(1h) > 5")) == ["views(1h) > 5"]
    assert normal("views(1h) > 5 and views(1h) < 3") == FALSE
    assert texts(normal("views(1h) >= 3 and views(1h) <= 3")) == ["views(1h) == 3"]
    assert normal('user.tier == "a" and user.tier == "b"') == FALSE
    assert texts(normal('user.tier in ["a", "b", "c"] and user.tier != "b"')) == ['user.tier in ["a", "c"]']
    assert normal("user.age is missing and user.age > 3") == FALSE
    assert texts(normal("user.age is not missing and user.age > 3")) == ["user.age > 3"]


def test_counts_may_be_unknown() -> None:
    # A count is 0 when nothing happened, but unknown when the store could not be asked;
    # and a supplied value is taken as given, so no bound is assumed away.
    assert texts(normal("views(1h) >= 0")) == ["views(1h) >= 0"]
    assert texts(normal("views(1h) > -3 and views(1h) < 5")) == ["views(1h) > -3", "views(1h) < 5"]
    assert texts(normal("views(1h) is missing")) == ["views(1h) is missing"]
    assert texts(normal('since("purchase") is missing')) == ['since("purchase") is missing']


def test_equalities_joined_by_or_become_one_set() -> None:
    condition = normal('context.page == "home" or context.page == "cart" or context.page in ["search"]')
    assert isinstance(condition, Atom) and condition.op == "in"
    assert condition.value == frozenset({"home", "cart", "search"})


def test_equal_predicates_are_one_object() -> None:
    text = (
        'content c = {}\nrule a when views(1h) > 2 and context.page == "x" then show c\n'
        'rule b when context.page == "y" or views(1h) > 2 then show c\n'
    )
    program, _ = check([parse(text, "s.rules")])
    normalizer = Normalizer(program)
    first = normalizer.condition(program.rules[0].decl.condition)
    second = normalizer.condition(program.rules[1].decl.condition)
    assert first.items[0] is second.items[1]


def test_dnf_expansion() -> None:
    text = "content c = {}\nrule a when (context.x == 1 or context.y == 2) and context.z == 3 then show c\n"
    program, _ = check([parse(text, "s.rules")])
    normalizer = Normalizer(program)
    dnf = normalizer.dnf(normalizer.condition(program.rules[0].decl.condition))
    assert [[p.text() for p in c] for c in dnf] == [
        ["context.x == 1", "context.z == 3"],
        ["context.y == 2", "context.z == 3"],
    ]


def test_merged_atoms_stand_where_their_feature_first_stood() -> None:
    disjunction = normal(
        'user.tier == "a" or views(1h) > 2 or user.country == "FR" or user.tier in ["b", "c"]'
        ' or user.age > 3 or user.country == "BE" or views(1h) > 2'
    )
    assert texts(disjunction) == [
        'user.tier in ["a", "b", "c"]',
        "views(1h) > 2",
        'user.country in ["BE", "FR"]',
        "user.age > 3",
    ]
    conjunction = normal(
        'views(1h) > 2 and user.age > 1 and user.tier != "a" and views(1h) > 5 and user.tier != "b"'
        " and clicks(1h) > 0 and views(1h) < 9 and user.age > 1"
    )
    assert texts(conjunction) == [
        "views(1h) > 5",
        "views(1h) < 9",
        "user.age > 1",
        'user.tier not in ["a", "b"]',
        "clicks(1h) > 0",
    ]
