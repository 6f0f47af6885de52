"""``FeatureStore.export`` and ``FeatureStore.erase`` on both stores: everything about one user, and only them.

On Redis the test then reads every key under the store's prefix, every
field, member and value, and finds the erased user's id nowhere. The Redis
Cluster's run (slow: six nodes to start) does the same on every master.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import RedisClusterException
from redis_contents import key_parts

from bench.local_cluster import LocalCluster
from tailor.runtime.events import Event
from tailor.runtime.feedback import (
    CONVERSION,
    DEFAULT_ATTRIBUTION,
    FeedbackItem,
    FeedbackMark,
    Impressions,
    Join,
    JoinArm,
    Outcome,
    judge,
)
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_clients import blocking_client
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.store import Exposure, FeatureStore

GONE = "erased-user-7f3a"  # distinctive, so a search of Redis finds nothing else by accident
KEPT = "kept-user-51c2"


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest) -> Iterator[FeatureStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        yield RedisStore(url, prefix=f"test:{uuid.uuid4().hex[:12]}:", cluster=True, timeout=5.0)
    else:
        yield RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))


async def fill(store: FeatureStore, user: str, now: float) -> None:
    """A profile, events with and without ids, exposures, a served decision in an experiment with a model's
    score, feedback with ids on it (a click and a conversion, so the user's value in the phase is kept) and
    its marks, and a decision kept with its served impressions (series only that script writes)."""
    await store.set_profile(user, {"tier": "gold", "email": f"{user}@example.com"})
    await store.record(
        [
            Event(user, "view", "Electronics", None, now - 30, f"{user}-e1"),
            Event(user, "view", "Home & Garden", 2.5, now - 20),
            Event(user, "purchase", None, 19.9, now - 10, f"{user}-e2"),
        ],
        now,
    )
    await store.expose([Exposure(user, "checkout", "p1", "b"), Exposure(user, "banner", "p9", "a")])
    arm = JoinArm("checkout", "b", "p1", ("hero",))
    join = Join(f"d-{user}", user, "v1", now - 5, {"hero": ("promo", "summer")}, (arm,), {"click": 0.25})
    await store.keep_decisions([join], DEFAULT_ATTRIBUTION)
    served = Join(f"s-{user}", user, "v1", now - 4, {"side": ("promo", "served-only")}, (arm,))
    await store.keep_decisions([served], DEFAULT_ATTRIBUTION, impressions=True)
    items = [
        FeedbackItem(join.decision_id, "hero", "click", None, now - 1, f"{user}-fb1"),
        FeedbackItem(join.decision_id, "hero", CONVERSION, 12.5, now - 1, f"{user}-fb2"),
    ]
    judged = judge(
        items, {join.decision_id: join}, attribution=DEFAULT_ATTRIBUTION, impressions=Impressions.FEEDBACK, now=now
    )
    assert await store.count_feedback(judged.tallies, DEFAULT_ATTRIBUTION) == [Outcome.ACCEPTED] * 2
    await store.mark_feedback([(join.decision_id, FeedbackMark("hero", "click", now - 1))])
    await store.record(judged.events, now)


def test_export_shows_everything_and_erase_removes_it_all_and_nothing_else(store: FeatureStore) -> None:
    async def run() -> None:
        now = time.time()
        for user in (GONE, KEPT):
            await fill(store, user, now)
        before = await store.export(GONE)
        assert before.profile == {"tier": "gold", "email": f"{GONE}@example.com"}
        names = {(s.event, s.key, s.resolution) for s in before.series}
        assert {("view", "Electronics", "d"), ("view", "Home & Garden", "m"), ("view", "any", "h")} <= names
        assert ("purchase", "any", "d") in names and ("click", "summer", "d") in names
        assert ("impression", "served-only", "h") in names  # written by the script keeping served decisions
        day_view = next(s for s in before.series if (s.event, s.key, s.resolution) == ("view", "any", "d"))
        assert sum(b.count for b in day_view.buckets) == 2 and sum(b.total for b in day_view.buckets) == 3.5
        assert day_view.last == now - 20
        assert {f"{GONE}-e1", f"{GONE}-e2"} <= set(before.event_ids)
        assert {(e.experiment, e.phase, e.arm) for e in before.exposures} == {
            ("checkout", "p1", "b"),
            ("banner", "p9", "a"),
        }
        joined = {j.decision_id: j for j in before.joins}
        assert set(joined) == {f"d-{GONE}", f"s-{GONE}"} and joined[f"d-{GONE}"].slots["hero"].content == "summer"
        assert joined[f"d-{GONE}"].experiments == (JoinArm("checkout", "b", "p1", ("hero",)),)
        assert joined[f"d-{GONE}"].models == {"click": 0.25}
        assert joined[f"d-{GONE}"].feedback == (FeedbackMark("hero", "click", now - 1),)
        assert sorted(before.feedback_ids) == [f"{GONE}-fb1", f"{GONE}-fb2"]
        assert [(v.experiment, v.phase, v.value) for v in before.experiment_values] == [("checkout", "p1", 12.5)]
        assert await store.exposures("checkout", "p1") == {"b": 2}
        converters = (await store.arm_totals("checkout", "p1")).amount("b", "converters")
        assert converters == 2

        erased = await store.erase(GONE)
        assert erased.profile_attributes == 2
        assert erased.series == len(before.series)
        assert erased.event_ids >= 2 and erased.exposures == 2 and erased.experiment_values == 1
        assert erased.joins == 2 and erased.feedback_ids == 2
        after = await store.export(GONE)
        assert after.empty, after
        assert await store.exposures("checkout", "p1") == {"b": 1}  # the other user still counts
        kept = await store.export(KEPT)
        assert kept.profile and len(kept.series) == len(before.series) and len(kept.joins) == 2
        assert len(kept.exposures) == 2 and sorted(kept.feedback_ids) == [f"{KEPT}-fb1", f"{KEPT}-fb2"]
        assert [v.value for v in kept.experiment_values] == [12.5]
        # the phase's per-arm counters are aggregates: they stay as they were
        assert (await store.arm_totals("checkout", "p1")).amount("b", "converters") == converters
        again = await store.erase(GONE)
        assert not again.anything  # idempotent: nothing left to erase
        if isinstance(store, RedisStore):
            assert_nowhere_in_redis(store, GONE)
            assert_somewhere_in_redis(store, KEPT)
        await store.close()

    asyncio.run(run())


def test_an_exposure_erased_is_counted_again_as_a_new_user(store: FeatureStore) -> None:
    async def run() -> None:
        await store.expose([Exposure(GONE, "checkout", "p1", "a")])
        await store.erase(GONE)
        assert await store.exposures("checkout", "p1") == {}  # an arm nobody else saw is gone
        assert await store.expose([Exposure(GONE, "checkout", "p1", "b")]) == 1
        assert await store.exposures("checkout", "p1") == {"b": 1}
        await store.close()

    asyncio.run(run())


def on_cluster(store: FeatureStore) -> bool:
    return isinstance(store, RedisStore) and store.cluster


def redis_texts(store: RedisStore) -> Iterator[tuple[str, bytes]]:
    """Every key under the store's prefix (on a cluster, on every master) with each of its names, fields,
    members and values."""
    client = blocking_client(store.url, cluster=store.cluster, name="test", timeout=5.0)
    try:
        for key, part in key_parts(client, match=f"{store.prefix}*"):
            yield key.decode(), part
    finally:
        client.close()


def assert_nowhere_in_redis(store: RedisStore, user: str) -> None:
    found = [(key, part) for key, part in redis_texts(store) if user.encode() in part]
    assert not found, f"{user} is still in Redis: {found[:5]}"


def assert_somewhere_in_redis(store: RedisStore, user: str) -> None:
    assert any(user.encode() in part for _, part in redis_texts(store))


@pytest.mark.slow
def test_on_a_cluster_an_erasure_cut_short_is_finished_by_a_retry(redis_cluster: LocalCluster) -> None:
    """The master of the user's own slot holds writes (``CLIENT PAUSE WRITE``): the erasure deletes the
    data in the other slots and fails on the user's own keys. Those, and the indexes, are still there;
    erasing again finds and deletes the rest, and nothing of the user is left on any master."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    probe = RedisStore(redis_cluster.url, prefix=prefix, cluster=True)
    nodes = blocking_client(redis_cluster.url, cluster=True, name="test", timeout=5.0)

    def port(key: str) -> int:
        return nodes.get_node_from_key(key).port

    def elsewhere(user: str) -> bool:
        """Whether every key of the user's in other slots lies on another master than the user's own."""
        feedback, shard = probe.feedback, probe.feedback.shard_of(user)
        others = [feedback.join_key(f"d-{user}", shard), probe.exposure_key("checkout", "p1", user)]
        others += [probe.exposure_key("banner", "p9", user)]
        others += [feedback.id_claim_key(f"{user}-fb{n}") for n in (1, 2)]
        return port(probe.user_key(user)) not in {port(key) for key in others}

    user = next(u for u in (f"{GONE}-{n}" for n in range(200)) if elsewhere(u))
    own = next(node for node in redis_cluster.masters() if node.port == port(probe.user_key(user)))
    store = RedisStore(redis_cluster.url, prefix=prefix, cluster=True, timeout=1.0)

    async def run() -> None:
        now = time.time()
        for filled in (user, KEPT):
            await fill(store, filled, now)
        own.client.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            with pytest.raises((redis.RedisError, RedisClusterException)):
                await store.erase(user)
            # The user's own keys and indexes: not yet (read on a connection of its own).
            own_keys = [probe.user_key(user), probe.ids_key(user), probe.decisions_index_key(user)]
            assert own.client.exists(*own_keys) == 3
        finally:
            own.client.execute_command("CLIENT", "UNPAUSE")
        # The other slots': gone.
        assert not nodes.exists(probe.feedback.join_key(f"d-{user}", probe.feedback.shard_of(user)))
        assert not nodes.exists(probe.exposure_key("checkout", "p1", user))
        assert not nodes.exists(probe.feedback.id_claim_key(f"{user}-fb1"))
        left = await store.export(user)
        assert left.profile and left.series and left.event_ids
        assert not left.joins and not left.exposures and not left.feedback_ids
        again = await store.erase(user)
        assert again.profile_attributes == 2 and again.series == len(left.series)
        assert not again.joins and not again.exposures  # deleted by the first attempt, counted nothing twice
        assert (await store.export(user)).empty
        assert await store.exposures("checkout", "p1") == {"b": 1}  # the kept user's alone
        await store.close()

    try:
        asyncio.run(run())
        assert_nowhere_in_redis(store, user)
        assert_somewhere_in_redis(store, KEPT)
    finally:
        nodes.close()
