"""Both feature stores, one suite: the memory store and Redis (a real server) answer alike.

Times are simulated: every call passes ``now``/``at``, so windows, retention and
de-duplication are tested without waiting. Coroutines run under ``asyncio.run``;
each test body gets a store made inside its loop and closed afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import shutil
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.exceptions
from conftest import no_redis, start_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.ports import free_port
from tailor.compiler.features import ANY_KEY, FeatureKind, FeatureRef
from tailor.runtime import memory_store
from tailor.runtime.buckets import MAX_BATCH, Scheme
from tailor.runtime.events import (
    DEDUPE_SECONDS,
    DEFAULT_RETENTION,
    FUTURE_TOLERANCE,
    Event,
    EventRejected,
    RecordResult,
)
from tailor.runtime.memory_store import MemoryStore, bucket_count
from tailor.runtime.redis_event_record import EVENTS_PER_CALL
from tailor.runtime.redis_series import series_buckets
from tailor.runtime.redis_store import PROFILE_TTL, RedisStore
from tailor.runtime.store import FeatureStore

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
DAY0 = 19675 * DAY  # a midnight (UTC), so bucket edges are easy to see
NOW = DAY0 + 12 * HOUR + 30  # half a minute past noon

Make = Callable[..., FeatureStore]
Body = Callable[[FeatureStore], Awaitable[Any]]


# --- feature references, as the compiler makes them -----------------------------------


def count(event: str, key: str = ANY_KEY, window: float = DAY) -> FeatureRef:
    return FeatureRef(FeatureKind.COUNT, f'count("{event}", "{key}", {window:g}s)', event, key, window)


def total(event: str, key: str = ANY_KEY, window: float = DAY) -> FeatureRef:
    return FeatureRef(FeatureKind.TOTAL, f'total("{event}", "{key}", {window:g}s)', event, key, window)


def since(event: str, key: str = ANY_KEY) -> FeatureRef:
    return FeatureRef(FeatureKind.SINCE, f'since("{event}", "{key}")', event, key)


def attr(name: str) -> FeatureRef:
    return FeatureRef(FeatureKind.PROFILE, f"user.{name}", name=name)


def view(ts: float, key: str | None = "Electronics", user: str = "alice", **more: Any) -> Event:
    return Event(user, "view", key, ts=ts, **more)


# --- the two stores ----------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.slow)])
def make(request: pytest.FixtureRequest) -> Make:
    """A factory of fresh stores of one kind; Redis ones share this test's key prefix. The Redis Cluster's
    run is in the slow pass: starting six nodes takes a few seconds."""
    if request.param == "memory":
        return MemoryStore
    if request.param == "cluster":
        cluster_url = request.getfixturevalue("redis_cluster").url
        prefix = f"test:{uuid.uuid4().hex[:12]}:"
        # Six nodes on a shared machine answer slowly now and then: a patient timeout, not 0.5 s.
        return lambda **options: RedisStore(cluster_url, prefix=prefix, cluster=True, **{"timeout": 5.0, **options})
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda **options: RedisStore(url, prefix=prefix, **options)


def run(make: Make, body: Body, **options: Any) -> Any:
    """Run ``body`` with a store made inside a fresh event loop, closing it afterwards."""

    async def main() -> Any:
        store = make(**options)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def is_redis(store: FeatureStore) -> bool:
    return isinstance(store, RedisStore)


# --- counts, totals and since ---------------------------------------------------------


def test_counts_totals_and_since_per_window(make: Make):
    events = [
        view(NOW - 30),
        view(NOW - 20 * MINUTE),
        view(NOW - 5 * HOUR, "Books"),
        view(NOW - 2 * DAY),
        view(NOW - 10 * DAY, None),
        Event("alice", "purchase", "Books", value=20, ts=NOW - 3 * HOUR),
        Event("alice", "purchase", "Books", value=5.5, ts=NOW - 20 * DAY),
        Event("bob", "view", "Electronics", ts=NOW - 60),
    ]
    refs = {
        "10m": count("view", window=10 * MINUTE),
        "1h": count("view", window=HOUR),
        "24h": count("view", window=DAY),
        "7d": count("view", window=7 * DAY),
        "30d": count("view", window=30 * DAY),
        "electronics 24h": count("view", "Electronics", DAY),
        "books 24h": count("view", "Books", DAY),
        "purchases 7d": count("purchase", window=7 * DAY),
        "spent 7d": total("purchase", window=7 * DAY),
        "spent 30d": total("purchase", "Books", 30 * DAY),
        "views as total": total("view", window=HOUR),
        "since view": since("view"),
        "since book view": since("view", "Books"),
        "since purchase": since("purchase", "Books"),
        "since click": since("click"),
        "nothing": count("click", window=DAY),
    }

    async def body(store: FeatureStore) -> dict[str, Any]:
        await store.record(events, now=NOW)
        return await store.fetch("alice", list(refs.values()), at=NOW)

    got = run(make, body)
    expected = {
        "10m": 1,
        "1h": 2,
        "24h": 3,
        "7d": 4,
        "30d": 5,
        "electronics 24h": 2,
        "books 24h": 1,
        "purchases 7d": 1,
        "spent 7d": 20.0,
        "spent 30d": 25.5,
        "views as total": 2.0,
        "since view": 30.0,
        "since book view": 5 * HOUR,
        "since purchase": 3 * HOUR,
        "nothing": 0,
    }
    assert {name: got.get(ref.text) for name, ref in refs.items() if ref.text in got} == expected
    assert type(got[refs["24h"].text]) is int and type(got[refs["spent 7d"].text]) is float


def test_any_key_counts_every_key_once(make: Make):
    events = [view(NOW - 10, "A"), view(NOW - 20, "B"), view(NOW - 30, None), view(NOW - 40, ANY_KEY)]

    async def body(store: FeatureStore) -> dict[str, Any]:
        await store.record(events, now=NOW)
        return await store.fetch("alice", [count("view"), count("view", "A"), count("view", "B"), since("view")], NOW)

    got = run(make, body)
    assert list(got.values()) == [4, 1, 1, 10.0]


def test_event_order_does_not_matter(make: Make):
    rng = random.Random(7)
    events = [
        Event("u", rng.choice(["view", "click"]), rng.choice(["A", "B", None]), rng.randint(0, 8) / 4, NOW - offset)
        for offset in (rng.uniform(0, 40 * DAY) for _ in range(300))
    ]
    shuffled = events[:]
    rng.shuffle(shuffled)
    refs = [f(event, key, window) for f in (count, total) for event in ("view", "click") for key in ("A", ANY_KEY)
            for window in (10 * MINUTE, 2 * HOUR, DAY, 3 * DAY, 7 * DAY, 30 * DAY)]  # fmt: skip
    refs += [since("view"), since("click", "B")]

    async def body(store: FeatureStore) -> list[dict[str, Any]]:
        await store.record([Event("one", e.type, e.key, e.value, e.ts) for e in events], now=NOW)
        for part in (shuffled[:100], shuffled[200:], shuffled[100:200]):
            await store.record([Event("three", e.type, e.key, e.value, e.ts) for e in part], now=NOW)
        return [await store.fetch(user, refs, NOW) for user in ("one", "three")]

    one, three = run(make, body)
    assert one == three
    assert one[count("view", ANY_KEY, 30 * DAY).text] > 0


def test_replay_with_at_in_the_past(make: Make):
    base = DAY0 + 10 * HOUR
    events = [view(base), view(base + HOUR), view(base + HOUR + 50 * MINUTE)]
    at = base + HOUR + 30  # half a minute after the second view
    refs = [count("view", window=w) for w in (10 * MINUTE, 2 * HOUR, DAY, 7 * DAY)] + [since("view")]

    async def body(store: FeatureStore) -> dict[str, Any]:
        await store.record(events, now=base + HOUR + 55 * MINUTE)
        return await store.fetch("alice", refs, at=at)

    got = run(make, body)
    # Buckets after the one holding ``at`` are not read: the third view is in a later minute.
    assert [got[ref.text] for ref in refs[:2]] == [1, 2]
    # The bucket holding ``at`` is read whole: the third view shares its hour and day.
    assert [got[ref.text] for ref in refs[2:4]] == [3, 3]
    # since() keeps only the latest event time: one after ``at`` reads as just now.
    assert got[refs[4].text] == 0.0


# --- de-duplication, retention, rejection ----------------------------------------------


def test_ids_seen_in_the_last_24_hours_are_duplicates(make: Make):
    batch = [view(NOW - 5, id="e1"), view(NOW - 4, id="e2"), view(NOW - 3), view(NOW - 5, id="e1")]

    async def body(store: FeatureStore) -> None:
        first = await store.record(batch, now=NOW)
        assert first == RecordResult(accepted=3, duplicates=1, expired=0, conflicts=0)
        retried = await store.record(batch, now=NOW + 60)  # the client retries the whole batch
        assert retried == RecordResult(accepted=1, duplicates=3)  # only the id-less event counts again
        partly = await store.record([view(NOW - 4, id="e2"), view(NOW, id="e3")], now=NOW + 120)
        assert partly == RecordResult(accepted=1, duplicates=1)
        assert (await store.fetch("alice", [count("view")], NOW + 120))[count("view").text] == 5
        # The same id for another user is another event.
        other = await store.record([view(NOW, user="bob", id="e1")], now=NOW + 120)
        assert other.accepted == 1
        # A day later the id is forgotten.
        later = NOW + DEDUPE_SECONDS + 1
        assert (await store.record([view(later, id="e1")], now=later)).accepted == 1
        assert (await store.record([view(later, id="e1")], now=later + 1)).duplicates == 1

    run(make, body)


def test_events_older_than_the_retention_are_ignored(make: Make):
    async def body(store: FeatureStore) -> None:
        old = view(NOW - 3 * DAY - 1)
        result = await store.record([old, view(NOW - 3 * DAY + 1), view(NOW - DAY)], now=NOW)
        assert (result.accepted, result.duplicates, result.expired) == (2, 0, 1)
        got = await store.fetch("alice", [count("view", window=30 * DAY), since("view", "Books")], NOW)
        assert got == {count("view", window=30 * DAY).text: 2}
        assert await store.record([old], now=NOW) == type(result)(0, 0, 1)

    run(make, body, retention=3 * DAY)


def test_a_future_event_rejects_the_whole_batch(make: Make):
    ahead = NOW + FUTURE_TOLERANCE + 1

    async def body(store: FeatureStore) -> None:
        with pytest.raises(EventRejected, match=r"event 2 is from the future") as caught:
            await store.record([view(NOW - 1, id="a"), view(NOW), view(ahead)], now=NOW)
        assert f"{ahead:.3f}" in str(caught.value) and "nothing of the batch was stored" in str(caught.value)
        rounds = store.round_trips
        refs = [count("view"), since("view")]
        assert await store.fetch("alice", refs, NOW + 3600) == {count("view").text: 0}
        assert store.round_trips == rounds + 1
        # Nothing was stored: not even the id of the first event.
        assert (await store.record([view(NOW - 1, id="a")], now=NOW)).accepted == 1
        # Up to the tolerance is fine.
        assert (await store.record([view(NOW + FUTURE_TOLERANCE)], now=NOW)).accepted == 1

    run(make, body)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([view(NOW), Event("alice", "", ts=NOW)], "event 1 has no type"),
        ([Event("", "view", ts=NOW)], "event 0 has no user_id"),
        ([view(NOW, value=float("nan"))], "event 0 has a value that is not a finite number"),
        ([view(NOW)] * (MAX_BATCH + 1), f"at most {MAX_BATCH} events"),
    ],
)
def test_bad_batches_are_rejected(make: Make, events: list[Event], message: str):
    async def body(store: FeatureStore) -> None:
        with pytest.raises(EventRejected, match=message):
            await store.record(events, now=NOW)
        assert await store.fetch("alice", [count("view")], NOW) == {count("view").text: 0}

    run(make, body)


# --- profiles ----------------------------------------------------------------------------


def test_profiles_upsert_delete_and_keep_their_types(make: Make):
    profile = {"tier": "gold", "age": 41, "score": 0.75, "ratio": 1.0, "vip": True}
    profile |= {"tags": ["a", "b"], "grid": [1, [2]]}
    refs = [attr(name) for name in [*profile, "unset"]]

    async def body(store: FeatureStore) -> None:
        await store.set_profile("alice", profile)
        got = await store.fetch("alice", refs, NOW)
        assert got == {f"user.{name}": value for name, value in profile.items()}
        assert [type(got[f"user.{name}"]) for name in profile] == [str, int, float, float, bool, list, list]
        await store.set_profile("alice", {"tier": "silver", "age": None, "unset": None})
        got = await store.fetch("alice", refs, NOW)
        assert got["user.tier"] == "silver" and "user.age" not in got and got["user.vip"] is True
        with pytest.raises(ValueError, match="'bad'"):
            await store.set_profile("alice", {"tier": "platinum", "bad": object()})
        assert (await store.fetch("alice", [attr("tier")], NOW)) == {"user.tier": "silver"}
        assert await store.fetch("nobody", refs, NOW) == {}

    run(make, body)


def test_context_and_model_features_are_not_the_stores(make: Make):
    refs = [FeatureRef(FeatureKind.CONTEXT, "context.device", name="device"), FeatureRef(FeatureKind.MODEL, "p_click")]

    async def body(store: FeatureStore) -> dict[str, Any]:
        return await store.fetch("alice", refs, NOW)

    assert run(make, body) == {}


# --- round trips -------------------------------------------------------------------------


def test_one_round_trip_per_fetch_and_per_chunk_of_a_batch(make: Make):
    rng = random.Random(3)
    batch = [
        Event(f"u{rng.randrange(50)}", rng.choice(["view", "click"]), f"k{rng.randrange(20)}", id=str(i), ts=ts)
        for i, ts in enumerate(NOW - rng.uniform(0, 9 * DAY) for _ in range(MAX_BATCH))
    ]
    refs = [count("view", "k1", w) for w in (MINUTE, 2 * HOUR, 3 * DAY, 30 * DAY)]
    refs += [total("click", window=DAY), since("view"), since("click", "k2"), attr("tier"), attr("age")]

    async def body(store: FeatureStore) -> None:
        # The first call of each Redis script on a server that has not seen it sends it whole
        # (on a cluster, to every master: the 50 users live on all of them).
        await store.record([view(NOW, user=f"u{i}") for i in range(50)], now=NOW)
        await store.fetch("u1", refs, NOW)
        rounds = store.round_trips
        result = await store.record(batch, now=NOW)
        # Redis: one script call per chunk, so none holds Redis long; memory: one call. A cluster: one
        # pipeline per chunk to each node that holds one of the chunk's users.
        calls = math.ceil(MAX_BATCH / EVENTS_PER_CALL) if is_redis(store) else 1
        if is_redis(store) and store.cluster:
            client = store._writes()
            calls = sum(
                len({client.get_node_from_key(store.user_key(e.user_id)).name for e in batch[i : i + EVENTS_PER_CALL]})
                for i in range(0, MAX_BATCH, EVENTS_PER_CALL)
            )
            assert calls > math.ceil(MAX_BATCH / EVENTS_PER_CALL)  # the chunks were split
        assert result.accepted == MAX_BATCH and store.round_trips == rounds + calls
        await store.fetch("u1", refs, NOW)
        assert store.round_trips == rounds + calls + 1
        await store.set_profile("u1", {"tier": "gold", "age": None})
        assert store.round_trips == rounds + calls + 2

    run(make, body)


# --- the error bound of the buckets ----------------------------------------------------

WINDOWS = [MINUTE, 5 * MINUTE, HOUR, 2 * HOUR, 2 * HOUR + 1, DAY, 72 * HOUR, 72 * HOUR + 1, 7 * DAY, 30 * DAY, 40 * DAY]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(
        st.one_of(st.integers(0, 31 * 86400), st.floats(0, 31 * DAY), st.sampled_from([int(w) for w in WINDOWS])),
        max_size=40,
    ),
    window=st.one_of(st.sampled_from(WINDOWS), st.integers(1, 40 * 86400)),
    at=st.floats(NOW, NOW + DAY),
)
def test_a_window_is_off_by_at_most_its_oldest_bucket(make: Make, offsets: list[float], window: float, at: float):
    scheme = Scheme.for_retention(DEFAULT_RETENTION)
    user = uuid.uuid4().hex
    times = [at - offset for offset in offsets]
    events = [Event(user, "view", "k", value=(i % 4) / 2, ts=ts) for i, ts in enumerate(times)]
    refs = [count("view", "k", window), total("view", ANY_KEY, window), since("view")]

    async def body(store: FeatureStore) -> dict[str, Any]:
        await store.record(events, now=at)
        return await store.fetch(user, refs, at)

    got = run(make, body)
    span = min(window, DEFAULT_RETENTION)
    resolution, buckets = scheme.window(window, at)
    start = buckets.start * resolution.width  # the oldest bucket's start
    assert at - span - resolution.width < start <= at - span
    kept = [e for e in events if e.ts >= at - DEFAULT_RETENTION]
    exact = [e for e in kept if e.ts > at - span]
    edge = [e for e in kept if start <= e.ts <= at - span]  # in the oldest bucket, before the window
    assert len(exact) <= got[refs[0].text] <= len(exact) + len(edge)
    assert got[refs[0].text] == len(exact) + len(edge)
    assert got[refs[1].text] == sum(1.0 if e.value is None else e.value for e in exact + edge)
    assert got.get(refs[2].text) == (at - max(e.ts for e in kept) if kept else None)


# --- both stores, the same answers ---------------------------------------------------------


def test_the_same_events_give_the_same_answers_in_both_stores(redis_url: str, redis_prefix: str):
    rng = random.Random(11)
    users, types, keys = ["ann", "bo", "cy"], ["view", "click", "purchase"], ["A", "B", "C", None]
    start = NOW - 35 * DAY
    batches: list[tuple[float, list[Event]]] = []
    for step in range(60):
        now = start + step * 15 * HOUR + rng.uniform(0, HOUR)
        batch = [
            Event(rng.choice(users), rng.choice(types), rng.choice(keys), rng.choice([None, 0.5, 3, 12.25]),
                  now - rng.expovariate(1 / (2 * HOUR)), id=rng.choice([None, str(rng.randrange(400))]))
            for _ in range(rng.randrange(1, 60))
        ]  # fmt: skip
        if step % 7 == 6:  # a client retries the previous batch, as it was
            batches.append((now, batches[-1][1]))
        batches.append((now, batch))
    refs = [f(t, k, w) for f in (count, total) for t in types for k in ("A", ANY_KEY)
            for w in (90.0, 45 * MINUTE, 2 * HOUR, 5 * HOUR, DAY, 72 * HOUR, 10 * DAY, 30 * DAY)]  # fmt: skip
    refs += [since(t, k) for t in types for k in ("B", ANY_KEY)]

    async def replay(store: FeatureStore) -> list[Any]:
        answers: list[Any] = []
        for now, batch in batches:
            answers.append(await store.record(batch, now=now))
            for user in users:
                answers.append(await store.fetch(user, refs, now + rng.uniform(0, MINUTE)))
        return answers

    rng.seed(5)
    in_memory = run(MemoryStore, replay)
    rng.seed(5)
    in_redis = run(lambda: RedisStore(redis_url, prefix=redis_prefix), replay)
    assert in_memory == in_redis
    results = in_memory[:: len(users) + 1]
    assert sum(result.duplicates for result in results) > 0  # the retries
    assert sum(result.conflicts for result in results) > 0  # random payloads that reuse ids


# --- Redis: TTLs, pruning, outages, event loops --------------------------------------------


def test_every_redis_key_has_a_ttl_and_series_stay_small(redis_url: str, redis_prefix: str):
    async def events(store: FeatureStore) -> None:
        for minute in range(6 * 60):  # one view a minute for six hours
            now = NOW + minute * MINUTE
            await store.record([view(now, id=str(minute)), Event("alice", "buy", value=2, ts=now - 2 * DAY)], now=now)

    async def profile(store: FeatureStore) -> None:
        await store.set_profile("alice", {"tier": "gold"})

    client = redis.Redis.from_url(redis_url)
    user = f"{redis_prefix}{{alice}}"
    run(lambda: RedisStore(redis_url, prefix=redis_prefix), events)
    # One hash holds every series of the user; the event ids and their fingerprints are the other two keys.
    keys = sorted(key.decode() for key in client.scan_iter(match=f"{redis_prefix}*"))
    assert keys == [user, f"{user}:fp", f"{user}:ids"]
    assert all(client.pttl(key) > 0 for key in client.scan_iter(match=f"{redis_prefix}*"))
    assert 0 < client.pttl(user) <= (DEFAULT_RETENTION + 2 * DAY) * 1000  # the longest-lived data: the day buckets
    minutes = Scheme.for_retention().minute
    for series in ("view:Electronics", "view:any"):
        kept = list(series_buckets(client.hget(user, f"c:{series}:m")))
        # Six hours of minute buckets were written (360); the stale ones were pruned as it went.
        assert int(minutes.keep // minutes.width) <= len(kept) <= minutes.prune_above, len(kept)
    run(lambda: RedisStore(redis_url, prefix=redis_prefix), profile)
    assert (DEFAULT_RETENTION + 2 * DAY) * 1000 < client.pttl(user) <= PROFILE_TTL * 1000  # now the profile's
    client.close()


def test_redis_down_then_back():
    if shutil.which("redis-server") is None:
        no_redis("stopping and restarting Redis needs redis-server")
    port = free_port()
    server = start_redis(port)
    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="outage:")

    async def fetch() -> dict[str, Any]:
        return await store.fetch("alice", [count("view"), attr("tier")], NOW)

    async def body() -> None:
        nonlocal server
        await store.record([view(NOW)], now=NOW)
        assert await fetch() == {count("view").text: 1}
        server.terminate()
        server.wait()
        began = time.monotonic()
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            await fetch()
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            await store.record([view(NOW)], now=NOW)
        assert await store.ping() is False
        assert time.monotonic() - began < 3
        server = start_redis(port)  # back, empty (no persistence): no reconnect call needed
        assert await fetch() == {count("view").text: 0}
        assert await store.ping() is True
        await store.close()

    try:
        asyncio.run(body())
    finally:
        server.terminate()
        server.wait()


def test_an_unreachable_redis_fails_fast_and_ping_says_so():
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")

    async def body() -> None:
        assert await store.ping() is False
        with pytest.raises(redis.exceptions.ConnectionError):
            await store.fetch("alice", [count("view")], NOW)
        await store.close()

    asyncio.run(body())


def test_a_store_made_outside_a_loop_works_in_each_loop(redis_url: str, redis_prefix: str):
    store = RedisStore(redis_url, prefix=redis_prefix)

    async def then_close(call: Awaitable[Any]) -> Any:
        try:
            return await call
        finally:
            await store.close()  # the connections belong to this loop

    asyncio.run(then_close(store.record([view(NOW)], now=NOW)))
    assert asyncio.run(then_close(store.fetch("alice", [count("view")], NOW))) == {count("view").text: 1}
    assert asyncio.run(then_close(store.ping())) is True


# --- the memory store's synchronous side -----------------------------------------------------


def test_memory_store_sync_twins_are_thread_safe():
    store = MemoryStore()

    def work(worker: int) -> None:
        for i in range(200):
            store.record_now([view(NOW - i, id=f"{worker}-{i}"), view(NOW - i, id=f"{worker}-{i}")], now=NOW)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.set_profile_now("alice", {"tier": "gold"})
    got = store.fetch_now("alice", [count("view"), attr("tier")], NOW)
    assert got == {count("view").text: 1600, "user.tier": "gold"}
    assert store.round_trips == 8 * 200 + 2


def test_memory_store_series_are_not_walked_by_full_collections():
    """A full collection pauses the whole server: the store's series must not make it grow."""
    store = MemoryStore()
    for minute in range(30):
        store.record_now([view(NOW + minute * MINUTE, id=str(minute))], now=NOW + minute * MINUTE)
    gc.collect()
    kept = store._users["alice"].series
    assert kept and not any(gc.is_tracked(series) for series in kept.values())
    assert not any(gc.is_tracked(series_id) for series_id in kept)


def test_memory_store_forgets_what_redis_would_expire(monkeypatch: pytest.MonkeyPatch):
    clock = [1000.0]  # the store's monotonic clock, which its TTLs count in
    monkeypatch.setattr(memory_store, "time", SimpleNamespace(time=time.time, monotonic=lambda: clock[0]))
    store = MemoryStore()
    minutes = store.scheme.minute
    for minute in range(6 * 60):  # one view a minute for six hours: old minute buckets are pruned
        store.record_now([view(NOW + minute * MINUTE, id=str(minute))], now=NOW + minute * MINUTE)
    assert bucket_count(store._users["alice"].series["view", "any", "m"]) <= minutes.prune_above
    later = NOW + 6 * HOUR
    assert store.fetch_now("alice", [count("view", window=HOUR)], later)[count("view", window=HOUR).text] == 60
    clock[0] += 3 * HOUR  # no writes for three hours: the minute series are gone, as their keys would be
    assert store.fetch_now("alice", [count("view", window=HOUR)], later)[count("view", window=HOUR).text] == 0
    assert store.fetch_now("alice", [count("view", window=DAY)], later)[count("view", window=DAY).text] == 360
    store.record_now([view(later, "Books", user="bob")], now=later + 2 * DAY)  # a write sweeps
    assert ("view", "any", "m") not in store._users["alice"].series
    assert store._users["alice"].seen is None  # the ids of two days ago are forgotten
