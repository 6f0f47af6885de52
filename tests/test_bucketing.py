"""Bucketing against GrowthBook's SDK conformance suite, non-ASCII ids, and the properties arms rely on."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from growthbook_cases import load
from hypothesis import given
from hypothesis import strategies as st

from tailor.bucketing import bucket_ranges, choose_arm, get_equal_weights, hash, in_namespace
from tailor.compiler import bucketing
from tailor.compiler.bucketing import fnv1a32, js_string
from tailor.dsl import native

CASES = load("cases.json")


def floored(value: Any) -> Any:
    """The suite's comparison rounding: ``floor(x * 1e8) / 1e8``, through nested lists."""
    if isinstance(value, list | tuple):
        return [floored(item) for item in value]
    return math.floor(value * 1e8) / 1e8


def test_every_section_is_there() -> None:
    counts = {section: len(CASES[section]) for section in ("hash", "getBucketRange", "chooseVariation")}
    counts |= {section: len(CASES[section]) for section in ("inNamespace", "getEqualWeights")}
    assert counts == {"hash": 15, "getBucketRange": 13, "chooseVariation": 13, "inNamespace": 16, "getEqualWeights": 6}


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash(seed: str, value: str, version: int, expected: float | None) -> None:
    assert hash(seed, value, version) == expected


@pytest.mark.parametrize(
    ("name", "args", "expected"), CASES["getBucketRange"], ids=[c[0] for c in CASES["getBucketRange"]]
)
def test_get_bucket_range(name: str, args: list[Any], expected: list[list[float]]) -> None:
    n, coverage, weights = args
    assert floored(bucket_ranges(n, coverage, weights)) == floored(expected)


@pytest.mark.parametrize(
    ("name", "n", "ranges", "expected"), CASES["chooseVariation"], ids=[c[0] for c in CASES["chooseVariation"]]
)
def test_choose_variation(name: str, n: float, ranges: list[list[float]], expected: int) -> None:
    assert choose_arm(n, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize(("name", "user_id", "namespace", "expected"), CASES["inNamespace"])
def test_in_namespace(name: str, user_id: str, namespace: list[Any], expected: bool) -> None:
    assert in_namespace(user_id, tuple(namespace)) is expected


@pytest.mark.parametrize(("n", "expected"), CASES["getEqualWeights"])
def test_get_equal_weights(n: int, expected: list[float]) -> None:
    assert floored(get_equal_weights(n)) == floored(expected)


# --- non-ASCII ids: UTF-16 code units, as JavaScript's charCodeAt (values derived in the suite's README) ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [("é", 1812687940), ("user-😀", 1101030064), ("", 0x811C9DC5)],
)
def test_fnv_over_utf16_units(text: str, expected: int) -> None:
    assert fnv1a32(text) == expected


def test_astral_id_hashes_its_surrogate_pair_not_its_code_point_or_bytes() -> None:
    assert hash("seed", "user-😀", 2) == 0.6322  # code points would give 0.4804, UTF-8 bytes 0.2932


def test_values_are_stringified_as_javascript_does() -> None:
    assert hash("my-test", True, 1) == 0.49  # "true", not "True" (0.186)
    assert hash("seed", 3) == hash("seed", "3") == hash("seed", 3.0)
    cases = {1e21: "1e+21", 1e-7: "1e-7", 1e-6: "0.000001", 1e16: "10000000000000000", -0.0: "0", 2.5: "2.5"}
    assert {number: js_string(number) for number in cases} == cases


def reference_fnv(text: str) -> int:
    """FNV-1a written the plain way, over ``struct``-unpacked UTF-16 units."""
    data = text.encode("utf-16-le", "surrogatepass")
    state = 0x811C9DC5
    for unit in struct.unpack(f"<{len(data) // 2}H", data):
        state = ((state ^ unit) * 0x01000193) % 2**32
    return state


@given(st.text(max_size=80))
def test_fast_paths_agree_with_the_plain_definition(text: str) -> None:
    assert fnv1a32(text) == reference_fnv(text)


@given(st.text(max_size=30), st.text(max_size=60))
def test_hash_v2_is_the_double_fnv_of_seed_then_value(seed: str, value: str) -> None:
    n = hash(seed, value)
    assert n == (reference_fnv(str(reference_fnv(seed + value))) % 10000) / 10000
    assert 0 <= n < 1


# Text with lone surrogates too (as Python strings may hold them), which hypothesis leaves out by default.
any_text = st.text(st.characters(codec=None), max_size=40) | st.lists(
    st.sampled_from(["a", "\ud800", "\udc00", "\U0001f600", "\xe9", "9"]), max_size=12
).map("".join)


def test_the_hash_helper_is_built_and_used() -> None:
    assert bucketing._native_hash_after is not None, "compiler/_bucketing.c was not built: experiments hash in Python"
    assert bucketing.hash_after is (bucketing._native_hash_after if native.allowed() else bucketing.python_hash_after)


@given(st.integers(0, 2**32 - 1), any_text)
def test_the_c_hash_agrees_with_the_python(state: int, value: str) -> None:
    assert bucketing._native_hash_after is not None
    assert bucketing._native_hash_after(state, value) == bucketing.python_hash_after(state, value)


@given(any_text, any_text)
def test_the_python_hash_is_the_double_fnv_of_seed_then_value(seed: str, value: str) -> None:
    expected = (reference_fnv(str(reference_fnv(seed + value))) % 10000) / 10000
    assert bucketing.python_hash_after(fnv1a32(seed), value) == expected


# --- the properties arms depend on ---

weights_of = st.lists(st.integers(1, 100), min_size=1, max_size=6).map(lambda ws: [w / sum(ws) for w in ws])
coverages = st.floats(0, 1)
points = st.integers(0, 9999).map(lambda k: k / 10000)  # every value a v2 hash can take


@given(weights_of, coverages, coverages, points)
def test_lowering_coverage_never_moves_a_user_between_arms(
    weights: list[float], low: float, high: float, n: float
) -> None:
    low, high = sorted((low, high))
    narrow = choose_arm(n, bucket_ranges(len(weights), low, weights))
    wide = choose_arm(n, bucket_ranges(len(weights), high, weights))
    assert narrow in (-1, wide)


@given(weights_of, coverages, st.text(min_size=1, max_size=20))
def test_a_user_keeps_their_arm_or_leaves_as_coverage_shrinks(weights: list[float], low: float, user: str) -> None:
    n = hash("exp-seed", user)
    full = choose_arm(n, bucket_ranges(len(weights), 1.0, weights))
    assert full >= 0  # full coverage places everyone
    assert choose_arm(n, bucket_ranges(len(weights), low, weights)) in (-1, full)


@given(weights_of, coverages)
def test_arm_shares_follow_the_weights(weights: list[float], coverage: float) -> None:
    """Over every hash value, arm i holds coverage * weight_i of them (to one bucket per arm edge)."""
    ranges = bucket_ranges(len(weights), coverage, weights)
    counts = [0] * len(weights)
    outside = 0
    for k in range(10000):
        arm = choose_arm(k / 10000, ranges)
        if arm < 0:
            outside += 1
        else:
            counts[arm] += 1
    for count, weight in zip(counts, weights, strict=True):
        assert abs(count - coverage * weight * 10000) <= 1
    assert abs(outside - (1 - coverage) * 10000) <= len(weights)


@given(weights_of, coverages)
def test_ranges_are_half_open(weights: list[float], coverage: float) -> None:
    ranges = bucket_ranges(len(weights), coverage, weights)
    for index, (start, end) in enumerate(ranges):
        assert choose_arm(end, ranges) != index  # the end belongs to the next arm or to none
        if end > start:
            assert choose_arm(start, ranges) == index


def test_equal_weights_when_the_given_ones_cannot_be_used() -> None:
    assert bucket_ranges(3, 1.0, None) == bucket_ranges(3, 1.0, [0.5, 0.5]) == bucket_ranges(3, None, [1, 1, 1])
    assert choose_arm(0.7, ()) == -1


def test_namespace_uses_hash_version_1_of_the_id_and_namespace() -> None:
    n = hash("__checkout", "u42", 1)
    assert n is not None
    assert in_namespace("u42", ("checkout", n, n + 0.001))  # half-open: start is in
    assert not in_namespace("u42", ("checkout", 0, n))  # end is out
