"""Event batches never hold up decisions, and an id reused with another payload is a conflict.

Redis tests use a database of their own (7), flushed before and after each
test, since they read the server's connection list; the one that counts the
commands Redis runs uses a redis-server of its own, since those counters are
server-wide. Nothing here asserts on timings: the structure that keeps writes
from holding up reads is what is checked (calls per batch, commands per call,
which connection a call used, whether a decision had to wait for a batch).
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from conftest import no_redis, start_redis
from fastapi.testclient import TestClient

from bench.ports import free_port
from tailor.compiler.features import ANY_KEY, FeatureKind, FeatureRef
from tailor.runtime.buckets import MAX_BATCH
from tailor.runtime.events import FUTURE_TOLERANCE, Event, EventRejected, RecordResult
from tailor.runtime.http import create_app
from tailor.runtime.memory_store import EVENTS_PER_STEP, MemoryStore
from tailor.runtime.redis_event_record import EVENTS_PER_CALL
from tailor.runtime.redis_store import WRITE_CONNECTIONS, RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.store import FeatureStore

NOW = 19675 * 86400.0 + 12 * 3600.0
DB = 7
# Redis commands one record script call may run: about 1 to 3 ms of Redis. A call
# holding a whole 1,000-event batch ran about 28,000 (60 to 80 ms).
COMMANDS_PER_CALL = 1_500

Make = Callable[[], FeatureStore]


def views(ref_key: str = ANY_KEY) -> FeatureRef:
    return FeatureRef(FeatureKind.COUNT, f'count("view", "{ref_key}", 86400s)', "view", ref_key, 86400.0)


def batch(size: int = MAX_BATCH, user: str = "alice", first_id: int = 0) -> list[Event]:
    """Views by one user, each with an id and a key, a minute apart, the latest just before NOW."""
    return [Event(user, "view", f"k{i % 20}", ts=NOW - 60 * i, id=f"e{first_id + i}") for i in range(size)]


def in_loop(make: Make, body: Callable[[FeatureStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = make()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """The URL of the test Redis' database 7, empty before and after the test."""
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{DB}"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, redis.Redis]]:
    """A redis-server of the test's own (its URL and a client): for server-wide counters and pauses."""
    if shutil.which("redis-server") is None:
        no_redis("this test needs a redis-server of its own")
    port = free_port()
    server = start_redis(port)
    admin = redis.Redis(port=port)
    try:
        yield f"redis://127.0.0.1:{port}/0", admin
    finally:
        admin.close()
        server.terminate()
        server.wait()


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest) -> Make:
    if request.param == "memory":
        return MemoryStore
    url = request.getfixturevalue("redis_db")
    return lambda: RedisStore(url)


# --- 1. writes never hold up reads ----------------------------------------------------------


def test_a_decision_does_not_wait_for_a_batch_to_be_stored(make: Make):
    refs = [views()]

    async def body(store: FeatureStore) -> None:
        await store.record([Event("alice", "view", ts=NOW)], now=NOW)  # Redis has its scripts and
        await store.fetch("alice", refs, NOW)  # connections now
        recording = asyncio.create_task(store.record(batch(user="bob"), now=NOW))
        await asyncio.sleep(0)  # the batch starts: its first chunk is stored or on its way
        assert await store.fetch("alice", refs, NOW) == {refs[0].text: 1}
        # The decision got its answer while the batch was still being stored: it queued
        # behind one chunk at most, not behind 1,000 events (nor their preparation).
        assert not recording.done()
        assert await recording == RecordResult(accepted=MAX_BATCH)

    in_loop(make, body)


def test_a_batch_is_checked_whole_before_any_chunk_is_stored(make: Make):
    events = batch()
    late = Event("alice", "view", ts=NOW + FUTURE_TOLERANCE + 1, id="late")

    async def body(store: FeatureStore) -> None:
        with pytest.raises(EventRejected, match=f"event {MAX_BATCH - 1} is from the future"):
            await store.record([*events[:-1], late], now=NOW)
        assert await store.fetch("alice", [views()], NOW) == {views().text: 0}
        # Not even the ids of the first chunks were kept.
        assert await store.record(events, now=NOW) == RecordResult(accepted=MAX_BATCH)

    in_loop(make, body)


def test_a_batch_cut_short_in_memory_and_retried_counts_each_event_once():
    events = batch()
    refs = [views()]

    async def body(store: FeatureStore) -> None:
        recording = asyncio.create_task(store.record(events, now=NOW))
        while (await store.fetch("alice", refs, NOW))[refs[0].text] == 0:
            await asyncio.sleep(0)
        recording.cancel()  # as the server's write timeout would, after the first chunk
        with pytest.raises(asyncio.CancelledError):
            await recording
        await retry_counts_each_event_once(store, events)

    in_loop(MemoryStore, body)


def test_a_batch_cut_short_in_redis_and_retried_counts_each_event_once(own_redis: tuple[str, redis.Redis]):
    url, admin = own_redis
    events = batch()
    refs = [views()]

    async def body(store: FeatureStore) -> None:
        recording = asyncio.create_task(store.record(events, now=NOW))
        while (await store.fetch("alice", refs, NOW))[refs[0].text] == 0:
            await asyncio.sleep(0)
        admin.client_pause(5000, all=False)  # writes wait: the next chunk times out
        try:
            with pytest.raises(redis.exceptions.TimeoutError):
                await recording
        finally:
            admin.client_unpause()
        await retry_counts_each_event_once(store, events)

    in_loop(lambda: RedisStore(url, timeout=0.3), body)


async def retry_counts_each_event_once(store: FeatureStore, events: list[Event]) -> None:
    """After part of ``events`` was stored, sending them all again stores the rest, once."""
    refs = [views()]
    stored = (await store.fetch("alice", refs, NOW))[refs[0].text]
    assert 0 < stored < len(events)
    retried = await store.record(events, now=NOW + 1)
    assert retried == RecordResult(accepted=len(events) - stored, duplicates=stored)
    assert (await store.fetch("alice", refs, NOW + 1))[refs[0].text] == len(events)


def test_redis_runs_a_batch_as_short_script_calls(own_redis: tuple[str, redis.Redis]):
    url, admin = own_redis
    store = RedisStore(url)

    async def body() -> RecordResult:
        await store.record([Event("warm", "view", ts=NOW)], now=NOW)  # Redis has the script now
        admin.config_resetstat()
        result = await store.record(batch(), now=NOW)
        await store.close()
        return result

    assert asyncio.run(body()) == RecordResult(accepted=MAX_BATCH)
    stats = admin.info("commandstats")
    calls = stats.pop("cmdstat_evalsha")["calls"]
    stats.pop("cmdstat_config|resetstat")
    commands = sum(stat["calls"] for stat in stats.values())  # those the scripts ran
    assert calls == math.ceil(MAX_BATCH / EVENTS_PER_CALL)
    assert commands / calls <= COMMANDS_PER_CALL
    assert commands > MAX_BATCH * 2  # each event's id was added and fingerprinted: the bound means something


def test_redis_decisions_and_writes_use_connections_of_their_own(redis_db: str):
    admin = redis.Redis.from_url(redis_db)

    def connections() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for client in admin.client_list():
            if int(client["db"]) == DB and client["name"].startswith("tailor-"):
                found.setdefault(client["name"], []).append(client)
        return found

    async def body(store: FeatureStore) -> None:
        await store.fetch("alice", [views()], NOW)
        await store.record([Event("alice", "view", ts=NOW)], now=NOW)
        # Many batches at once: they share a few write connections and queue in the process.
        batches = [batch(100, user=f"u{n}") for n in range(3 * WRITE_CONNECTIONS)]
        await asyncio.gather(*(store.record(events, now=NOW) for events in batches))
        await store.fetch("alice", [views()], NOW)
        named = connections()
        assert len(named["tailor-reads"]) == 1  # every fetch went through the read pool
        assert named["tailor-reads"][0]["cmd"] == "hmget"  # a fetch without a consent gate is one HMGET
        assert 1 <= len(named["tailor-writes"]) <= WRITE_CONNECTIONS
        assert {client["cmd"] for client in named["tailor-writes"]} == {"evalsha"}
        reads = {client["id"] for client in named["tailor-reads"]}
        assert not reads & {client["id"] for client in named["tailor-writes"]}

    try:
        in_loop(lambda: RedisStore(redis_db), body)
    finally:
        admin.close()


def test_the_memory_store_yields_between_chunks_of_a_batch():
    store = MemoryStore()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async def body() -> None:
        counting = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        await store.record(batch(), now=NOW)
        counting.cancel()

    asyncio.run(body())
    # The loop ran something else between every two chunks of the batch.
    assert turns >= math.ceil(MAX_BATCH / EVENTS_PER_STEP) - 1


# --- 2. an id reused with another payload ----------------------------------------------------


def test_an_id_retried_with_another_payload_is_a_conflict(make: Make):
    first = Event("alice", "view", "Books", ts=NOW - 60, id="e1")
    refs = [views("Books"), views("Toys")]

    async def body(store: FeatureStore) -> None:
        assert await store.record([first], now=NOW) == RecordResult(accepted=1)
        # The same id with another key: not stored, and not a harmless retry.
        changed = Event("alice", "view", "Toys", ts=NOW - 60, id="e1")
        assert await store.record([changed], now=NOW) == RecordResult(conflicts=1)
        assert await store.fetch("alice", refs, NOW) == {refs[0].text: 1, refs[1].text: 0}  # the first stands
        assert await store.record([first], now=NOW + 5) == RecordResult(duplicates=1)
        # Another time or value is another payload too; in one batch as well.
        later = Event("alice", "view", "Books", ts=NOW - 30, id="e1")
        assert await store.record([later], now=NOW) == RecordResult(conflicts=1)
        worth = Event("alice", "view", "Books", value=2, ts=NOW - 60, id="e1")
        pair = [Event("bob", "view", ts=NOW, id="x"), Event("bob", "view", ts=NOW - 1, id="x")]
        assert await store.record([worth, *pair], now=NOW) == RecordResult(accepted=1, conflicts=2)
        # Spellings that store the same thing are the same payload: no key and "any", no value and 1.
        await store.record([Event("cy", "view", ts=NOW, id="s")], now=NOW)
        same = Event("cy", "view", ANY_KEY, value=1.0, ts=NOW, id="s")
        assert await store.record([same], now=NOW) == RecordResult(duplicates=1)

    in_loop(make, body)


def test_conflicts_are_found_across_the_chunks_of_a_batch(make: Make):
    events = batch()
    events[-1] = Event("alice", "view", "elsewhere", ts=NOW, id=events[0].id)

    async def body(store: FeatureStore) -> None:
        assert await store.record(events, now=NOW) == RecordResult(accepted=MAX_BATCH - 1, conflicts=1)
        assert await store.record(events, now=NOW + 1) == RecordResult(duplicates=MAX_BATCH - 1, conflicts=1)

    in_loop(make, body)


def test_redis_ids_stored_before_fingerprints_count_as_duplicates(redis_db: str):
    store = RedisStore(redis_db)
    admin = redis.Redis.from_url(redis_db)
    admin.zadd(store.ids_key("alice"), {"old": NOW - 60})  # as an earlier version kept it: no fingerprint
    admin.close()
    event = Event("alice", "view", ts=NOW - 60, id="old")

    async def body(store: FeatureStore) -> RecordResult:
        return await store.record([event], now=NOW)

    assert in_loop(lambda: store, body) == RecordResult(duplicates=1)


def test_the_events_endpoint_reports_conflicts(tmp_path: Path):
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text("ruleset shop\ncontent a = {}\ndefault show a in hero\n")
    service = DecisionService(root, MemoryStore())
    service.open()
    with TestClient(create_app(service, watch=False)) as client:

        def post(ts: float) -> dict[str, Any]:
            event = {"user_id": "u1", "type": "view", "key": "Books", "ts": ts, "id": "evt-1"}
            response = client.post("/v1/events", json={"events": [event]})
            assert response.status_code == 200, response.text
            return response.json()

        now = time.time()
        assert post(now) == {"accepted": 1, "duplicates": 0, "conflicts": 0, "expired": 0, "dropped_no_consent": 0}
        assert post(now) == {"accepted": 0, "duplicates": 1, "conflicts": 0, "expired": 0, "dropped_no_consent": 0}
        assert post(now - 1) == {"accepted": 0, "duplicates": 0, "conflicts": 1, "expired": 0, "dropped_no_consent": 0}


def test_events_in_any_order_leave_redis_series_as_the_memory_stores(redis_db: str):
    """A record call merges each series once per call: events of one user out of time order, several in a
    bucket, older than all the others (a backfill) and enough to prune, in calls of any size, leave every
    series and latest time as the memory store, which takes them one by one, keeps them."""
    rng = random.Random(18)
    events = [
        Event(
            rng.choice(["alice", "bob"]),
            rng.choice(["view", "buy"]),
            rng.choice([None, "k1", "k2"]),
            rng.choice([None, 2.5, -1.0]),
            ts=NOW - rng.choice([rng.uniform(0, 3 * 3600), 7200 - 60 * rng.randrange(0, 5)]),
            id=rng.choice([None, f"e{rng.randrange(500)}"]),  # some ids again: duplicates or conflicts
        )
        for _ in range(700)
    ]
    events += [Event("alice", "view", ts=NOW - 60 * i) for i in range(100)]  # a backfill, newest first
    later = [Event("alice", "view", ts=NOW + 60 * i) for i in range(1, 5 * 60)]  # live: the minutes get pruned

    async def stored(store: FeatureStore) -> tuple[list[RecordResult], list[dict[str, Any]]]:
        results, start = [], 0
        while start < len(events):
            size = rng.choice([1, 7, EVENTS_PER_CALL, 100, MAX_BATCH])
            results.append(await store.record(events[start : start + size], now=NOW))
            start += size
        for start in range(0, len(later), 10):
            chunk = later[start : start + 10]
            results.append(await store.record(chunk, now=chunk[-1].ts))
        series = [s.to_dict() for user in ("alice", "bob") for s in (await store.export(user)).series]
        return results, sorted(series, key=lambda s: (s["event"], s["key"], s["resolution"], len(s["buckets"])))

    state = rng.getstate()
    memory = in_loop(MemoryStore, stored)
    rng.setstate(state)  # the same calls for both stores
    redis_store = in_loop(lambda: RedisStore(redis_db), stored)
    assert redis_store == memory
    assert any(len(s["buckets"]) > 120 for s in memory[1])  # a minute series long enough to be pruned
