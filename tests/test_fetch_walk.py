"""A fetch without a consent gate sums windows in Python what the fetch script sums in Redis.

Without a gate the Redis store reads the user hash by one ``HMGET`` and walks each series
itself; behind a gate the fetch script walks them in Lua. Both must give the same values to
the last bit of a total, so a decision does not depend on whether the server has a gate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.runtime.consent import ConsentGate
from tailor.runtime.events import Event
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_series import window_sum
from tailor.runtime.redis_store import RedisStore

NOW = 1_767_225_600.0
GATE = ConsentGate("consent", frozenset())
FEATURES = [
    FeatureRef(FeatureKind.COUNT, 'views("a", 1h)', "view", "a", 3600.0),
    FeatureRef(FeatureKind.TOTAL, 'total("view", "a", 1h)', "view", "a", 3600.0),
    FeatureRef(FeatureKind.COUNT, 'views("a", 24h)', "view", "a", 86400.0),
    FeatureRef(FeatureKind.TOTAL, 'total("view", "a", 24h)', "view", "a", 86400.0),
    FeatureRef(FeatureKind.TOTAL, 'total("view", 7d)', "view", window=7 * 86400.0),
    FeatureRef(FeatureKind.SINCE, 'since("view", "a")', "view", "a"),
    FeatureRef(FeatureKind.COUNT, 'views("b", 24h)', "view", "b", 86400.0),
    FeatureRef(FeatureKind.PROFILE, "user.tier", name="tier"),
]
events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.floats(0.0, 1e6, allow_nan=False) | st.sampled_from([0.1, 0.2, 0.3, 1e-300, 1 / 3]),
        st.floats(0.0, 8 * 86400.0),
    ),
    min_size=1,
    max_size=30,
)


def test_a_window_walk_stops_at_the_window_and_skips_newer_buckets() -> None:
    value = b"12 1 0.5,10 2 0.25,9 4 1,7 8 2,"
    assert window_sum(value, 9, 10, 1) == 6
    assert window_sum(value, 9, 11, 2) == 1.25
    assert window_sum(None, 0, 10, 1) == 0
    assert window_sum(value, 13, 20, 2) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events)
def test_hmget_and_script_fetches_agree_bit_for_bit(
    redis_url: str, redis_prefix: str, happened: list[tuple[str, float, float]]
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    memory = MemoryStore()
    batch = [Event("u", "view", key, value, NOW - ago) for key, value, ago in happened]

    async def run() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        await store.erase("u")
        await store.set_profile("u", {"tier": "gold"})
        await store.record(batch, now=NOW)
        await memory.set_profile("u", {"tier": "gold"})
        await memory.record(batch, now=NOW)
        answers = []
        for at in (NOW, NOW - 1800.0):  # the second with buckets newer than the window's
            plain = await store.fetch("u", FEATURES, at)
            gated = await store.fetch("u", FEATURES, at, consent=GATE)
            answers.append((plain, gated, await memory.fetch("u", FEATURES, at)))
        await store.close()
        return answers

    for plain, gated, remembered in asyncio.run(run()):
        assert plain == gated
        for text, value in plain.items():  # the same doubles, not merely equal-looking ones
            assert repr(value) == repr(gated[text]), text
        # The memory store adds a window's totals oldest first, Redis newest first: the last bit may differ.
        assert plain == pytest.approx(remembered, rel=1e-12)
