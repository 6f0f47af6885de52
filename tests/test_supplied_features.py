"""Feature keys written by hand: the compiler reads them, and each ruleset version maps them to its own texts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor import loads
from tailor.compiler.features import FeatureKind, FeatureRef, supplied_feature, value_key
from tailor.dsl.diagnostics import Diagnostic
from tailor.runtime import supplied_features
from tailor.runtime.supplied_features import IgnoredFeatures, InvalidFeatures, SuppliedFeatures

RULES = """\
ruleset keys

content a = {"id": "a"}
content b = {"id": "b"}

rule day
  when views("Shoes", 1d) > 2 and user.tier == "gold"
  then show a in hero

rule hours
  when views("Shoes", 24h) > 5 or context.page == "home"
  then show b in hero
"""


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ('views("Electronics",24h)', 'views("Electronics", 24h)'),
        ("views( 7d )", "views(7d)"),
        ('  total( "purchase","any" , 30d )  ', 'total("purchase", "any", 30d)'),
        ('since( "view" )', 'since("view")'),
        ("user.tier", "user.tier"),
        ("context . page", "context.page"),
        ("p_click", "p_click"),
    ],
)
def test_a_feature_reads_back_as_its_canonical_text(written: str, canonical: str) -> None:
    found = supplied_feature(written)
    assert isinstance(found, FeatureRef)
    assert found.text == canonical


def test_texts_that_read_one_value_have_one_key() -> None:
    def key(text: str) -> FeatureRef:
        found = supplied_feature(text)
        assert isinstance(found, FeatureRef)
        return value_key(found)

    assert key('views("A", 1d)') == key('views("A", 24h)') == key('count("view", "A", 1440m)')
    assert key("views(24h)") == key('views("any", 24h)')
    assert key('views("A", 24h)') != key('views("A", 25h)') != key('clicks("A", 25h)')
    assert key("user.tier") != key("context.tier")


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("views(24)", "the window of views() must be a duration, not 24"),
        ("views(0h)", "the window of views() must be longer than zero"),
        ("views", "views needs arguments"),
        ("user", "'user' needs an attribute"),
        ("profile.tier", "unknown attribute scope 'profile'"),
        ("user.tier > 1", "not a feature"),
        ('"text"', "not a feature"),
        ("views(24h) views(7d)", "expected the end of the file"),
    ],
)
def test_a_text_that_is_no_feature_says_why(written: str, message: str) -> None:
    found = supplied_feature(written)
    assert isinstance(found, Diagnostic)
    assert found.message.startswith(message), found.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet='views(", 24h)user.x-0[]', max_size=60))
def test_any_text_is_a_feature_or_a_reason(text: str) -> None:
    assert isinstance(supplied_feature(text), FeatureRef | Diagnostic)


def test_deep_nesting_is_a_reason_not_a_crash() -> None:
    assert isinstance(supplied_feature("-" * 5000 + "1"), Diagnostic)


def reader() -> SuppliedFeatures:
    return SuppliedFeatures(loads(RULES, "keys").plan.features)


def test_keys_the_ruleset_writes_pass_through_untouched() -> None:
    supplied = {"user.tier": "gold"}
    values, ignored = reader().apply(supplied)
    assert values is supplied and ignored == ()


def test_one_value_read_under_two_texts_is_given_to_both() -> None:
    values, _ = reader().apply({'views( "Shoes",24h)': 7})
    assert values == {'views("Shoes", 1d)': 7, 'views("Shoes", 24h)': 7}
    assert reader().apply({'views("Shoes", 1d)': 3})[0] == {'views("Shoes", 1d)': 3, 'views("Shoes", 24h)': 3}


def test_what_the_ruleset_does_not_read_is_ignored_in_order() -> None:
    values, ignored = reader().apply({"user.age": 3, "user.tier": "gold", "context.page": "home", "nothing": 1})
    assert ignored == ("user.age", "context.page", "nothing")
    assert values == {"user.tier": "gold"}


def test_every_bad_key_is_named() -> None:
    with pytest.raises(InvalidFeatures) as raised:
        reader().apply({"views(": 1, "user.tier": "gold", "views(3)": 2, 'views("Shoes", 1d)': 1, "views(1d)": 0})
    problems = dict(raised.value.problems)
    assert list(problems) == ["views(", "views(3)"]
    assert problems["views(3)"] == "the window of views() must be a duration, not 3 (did you mean 3h or 3d?)"
    with pytest.raises(InvalidFeatures, match="names the same value as"):
        reader().apply({'views("Shoes", 1d)': 1, 'count("view", "Shoes", 24h)': 2})


def test_keys_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    def counted(text: str) -> FeatureRef | Diagnostic:
        reads.append(text)
        return supplied_feature(text)

    monkeypatch.setattr(supplied_features, "supplied_feature", counted)
    keys = reader()
    for _ in range(3):
        keys.apply({"user.tier ": "gold", "views( 7d )": 1})
        with pytest.raises(InvalidFeatures):
            keys.apply({"views(": 1})
    assert reads == ["user.tier ", "views( 7d )", "views("]


def test_the_memory_of_keys_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supplied_features, "MAX_REMEMBERED_KEYS", 4)
    keys = reader()
    for n in range(10):
        keys.apply({f"user.a{n}": 1})
    assert len(keys._remembered) <= 4


def test_ignored_features_read_back_what_they_write() -> None:
    for ignored in (IgnoredFeatures(), IgnoredFeatures(("user.age", "views(7d)"))):
        assert IgnoredFeatures.from_dict(ignored.to_dict()) == ignored
    assert IgnoredFeatures().to_dict() == {}


def test_context_features_are_never_taken_from_supplied_values() -> None:
    features = loads(RULES, "keys").plan.features
    assert features["context.page"].kind is FeatureKind.CONTEXT
    assert reader().apply({"context.page": "home"}) == ({}, ("context.page",))
