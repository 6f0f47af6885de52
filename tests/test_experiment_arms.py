"""Arms as the engine draws them equal tailor.bucketing's (GrowthBook's conformance cases: test_bucketing.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import tailor
from tailor.bucketing import bucket_ranges, choose_arm, hash


def reference_fnv(text: str) -> int:
    """FNV-1a written out from its definition, over UTF-16 code units (as JavaScript's charCodeAt)."""
    data = text.encode("utf-16-le", "surrogatepass")
    value = 0x811C9DC5
    for index in range(0, len(data), 2):
        value ^= data[index] | data[index + 1] << 8
        value = (value * 16777619) % 2**32
    return value


def reference_hash(seed: str, value: str) -> float:
    return (reference_fnv(str(reference_fnv(seed + value))) % 10000) / 10000


def test_hash_is_fnv1a_twice_over_utf16_code_units() -> None:
    for seed, value in [("", "a"), ("seed", "user1"), ("hero-test-2026", "u42"), ("é", "✓"), ("x", "🙂 emoji")]:
        assert hash(seed, value) == reference_hash(seed, value)
    assert hash("hero-test-2026", "u42") == hash("hero-test-2026", "u42")  # pure: no state between calls
    assert hash("s", "v", 1) == (reference_fnv("vs") % 1000) / 1000
    assert hash("s", "v", 3) is None


def ruleset(weights: list[int], coverage: int, seed: str) -> tailor.Ruleset:
    arms = ", ".join(f"a{index} {weight}%" for index, weight in enumerate(weights))
    rules = "\n".join(f'rule r{index} when exp == "a{index}" then show c{index} in s' for index in range(len(weights)))
    contents = "\n".join(f"content c{index} = {{}}" for index in range(len(weights)))
    return tailor.loads(
        f"{contents}\nexperiment exp\n  arms {arms}\n  seed {seed!r}\n  coverage {coverage}%\n{rules}\n".replace(
            "'", '"'
        ),
        "shop",
    )


# Weights that sum to 100: the gaps between sorted cut points in [0, 100].
weights = st.lists(st.integers(min_value=0, max_value=100), max_size=4).map(
    lambda cuts: [b - a for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), 100], strict=True)]
)
user_ids = st.text(min_size=1, max_size=20)


@settings(max_examples=40, deadline=None)
@given(
    weights,
    st.integers(min_value=0, max_value=100),
    st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12),
    st.lists(user_ids, min_size=1, max_size=20),
)
def test_the_engine_draws_the_arms_bucketing_draws(
    arm_weights: list[int], coverage: int, seed: str, users: list[str]
) -> None:
    engine = tailor.Engine(ruleset(arm_weights, coverage, seed))
    wider = tailor.Engine(ruleset(arm_weights, min(100, coverage + 30), seed))
    ranges = bucket_ranges(len(arm_weights), coverage / 100, [w / 100 for w in arm_weights])
    for user in users:
        index = choose_arm(hash(seed, user), ranges)
        content = engine.decide(user, {}).slots["s"].content
        assert content == (f"c{index}" if index >= 0 else None)
        if content is not None:  # shrinking coverage never moves a user between arms, only out of the experiment
            assert wider.decide(user, {}).slots["s"].content == content
        draw = engine.explain(user, {}).experiments["exp"]
        assert draw.hash == hash(seed, user) and draw.arm == (f"a{index}" if index >= 0 else None)
