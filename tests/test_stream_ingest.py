"""Stream ingestion over a real Redis: records stored once, acknowledged after the write, bad ones dead-lettered.

Each test has a redis-server of the module's own, emptied before it, so
stream, group and store keys start empty.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis

from bench.ports import free_port
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.runtime.events import Event, RecordResult
from tailor.runtime.feedback import Join
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.redis_stream_source import RedisStreamSource
from tailor.runtime.stream_ingest import Ingester

STREAM = "in"
GROUP = "tailor"
DAY = 86400.0


def views(key: str = "Electronics") -> FeatureRef:
    return FeatureRef(FeatureKind.COUNT, f'count("view", "{key}", 86400s)', "view", key, 86400.0)


def add(url: str, *entries: dict[str, Any], stream: str = STREAM) -> list[str]:
    """XADD each entry; values that are not text are written as JSON."""
    client = redis.Redis.from_url(url, decode_responses=True)
    ids = [
        client.xadd(stream, {k: v if isinstance(v, str) else json.dumps(v) for k, v in entry.items()})
        for entry in entries
    ]
    client.close()
    return ids


CLICKS = FeatureRef(FeatureKind.COUNT, 'count("click", "acc", 86400s)', "click", "acc", DAY)


def view(user: str, number: int, **more: Any) -> dict[str, Any]:
    return {"event": {"user_id": user, "type": "view", "key": "Electronics", "id": f"e{number}", **more}}


def source(url: str, consumer: str = "c1", **options: Any) -> RedisStreamSource:
    return RedisStreamSource(url, STREAM, GROUP, consumer, dead_letters=f"{STREAM}:dead", block=0.05, **options)


def in_loop(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(body())


def pending(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.xpending(STREAM, GROUP)["pending"])
    finally:
        client.close()


def test_events_and_feedback_are_stored_then_acknowledged(empty_redis: str):
    url = empty_redis
    now = time.time()
    click = {"decision_id": "d1", "slot": "hero", "type": "click", "id": "f1"}
    add(url, *(view("u1", i, ts=now - 5) for i in range(3)), {"feedback": click})

    async def body() -> tuple[Any, dict[str, Any], Any]:
        store = RedisStore(url)
        await store.keep_decisions([Join("d1", "u1", "v1", now - 10, {"hero": ("r1", "acc")})], DAY)
        ingester = Ingester(source(url), store)
        entries = await ingester.source.read(100)
        taken = await ingester.take(entries)
        values = await store.fetch("u1", [views(), CLICKS])
        await ingester.source.close()
        await store.close()
        return taken, values, ingester.metrics

    taken, values, metrics = in_loop(body)
    assert (taken.events.accepted, taken.feedback.accepted, taken.dead_letters) == (3, 1, 0)
    assert values == {'count("view", "Electronics", 86400s)': 3, 'count("click", "acc", 86400s)': 1}
    assert pending(url) == 0
    text = metrics.exposition()[0].decode()
    assert 'tailor_ingest_records_total{kind="event",outcome="accepted"} 3.0' in text
    assert 'tailor_ingest_records_total{kind="feedback",outcome="accepted"} 1.0' in text
    assert "tailor_ingest_acknowledged_total 4.0" in text


def test_bad_records_go_to_dead_letters_with_their_reason_and_the_rest_is_stored(empty_redis: str):
    url = empty_redis
    now = time.time()
    add(
        url,
        view("u1", 1),
        {"event": "{not json"},
        {"event": {"type": "view"}},
        {"event": {"user_id": "u1", "type": "view"}, "feedback": {}},
        {"something": "else"},
        view("u1", 2, ts=now + 3600),
        {"feedback": {"decision_id": "never-served", "slot": "hero", "type": "click"}},
        view("u1", 3),
    )

    async def body() -> tuple[Any, dict[str, Any]]:
        store = RedisStore(url)
        ingester = Ingester(source(url), store)
        taken = await ingester.take(await ingester.source.read(100))
        values = await store.fetch("u1", [views()])
        await ingester.source.close()
        await store.close()
        return taken, values

    taken, values = in_loop(body)
    assert taken.events.accepted == 2 and taken.dead_letters == 6
    assert values == {'count("view", "Electronics", 86400s)': 2}
    assert pending(url) == 0
    client = redis.Redis.from_url(url, decode_responses=True)
    letters = [fields for _, fields in client.xrange(f"{STREAM}:dead")]
    client.close()
    reasons = [letter["reason"] for letter in letters]
    assert reasons[0].startswith("event: the body is not valid JSON")
    assert reasons[1] == "event: user_id: Field required"
    assert reasons[2].startswith("an entry carries exactly one of the fields event and feedback")
    assert reasons[3] == "an entry carries exactly one of the fields event and feedback; its fields: something"
    assert reasons[4].startswith("event.ts is from the future")
    assert reasons[5] == "feedback: unknown_decision"
    assert letters[0]["event"] == "{not json" and letters[0]["origin"].startswith(f"{STREAM}/")
    assert letters[3]["something"] == "else"


def test_a_batch_stored_but_not_acknowledged_is_claimed_by_another_consumer_and_counted_once(empty_redis: str):
    url = empty_redis
    """The ingester that read it dies after the write, before the acknowledgement: the events without
    ids count once too, by their entry's id."""
    without_id = {"event": {"user_id": "u1", "type": "view", "key": "Electronics"}}
    add(url, *(view("u1", i) for i in range(5)), *(without_id for _ in range(5)))

    async def body() -> tuple[Any, Any, dict[str, Any]]:
        store = RedisStore(url)
        dying = Ingester(source(url, "dies"), store)
        first, _ = await dying.store_batch(await dying.source.read(100))  # ...and never acknowledges
        await dying.source.close()
        survivor = Ingester(source(url, "lives", min_idle=0.0), store)
        claimed = await survivor.source.read(100)
        again = await survivor.take(claimed)
        values = await store.fetch("u1", [views()])
        await survivor.source.close()
        await store.close()
        return first, again, values

    first, again, values = in_loop(body)
    assert first.events.accepted == 10
    assert (again.events.accepted, again.events.duplicates) == (0, 10)
    assert values == {'count("view", "Electronics", 86400s)': 10}
    assert pending(url) == 0


def test_while_the_store_fails_nothing_is_acknowledged_and_a_restart_stores_every_record_once(empty_redis: str):
    url = empty_redis
    add(url, *(view(f"u{i % 3}", i) for i in range(30)))
    dead_store = f"redis://127.0.0.1:{free_port()}/0"

    async def body() -> tuple[float, int, int, dict[str, Any]]:
        stop = asyncio.Event()
        failing = Ingester(source(url, "c1"), RedisStore(dead_store, timeout=0.2))
        asyncio.get_running_loop().call_later(1.0, stop.set)
        await failing.run(stop)
        failures = failing.metrics.store_failures._value.get()
        held = pending(url)
        await failing.source.close()
        await failing.store.close()
        store = RedisStore(url)
        restarted = Ingester(source(url, "c1"), store, batch=7)  # the same name: its own pending entries first
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        await restarted.run(stop)
        counts = {}
        for user in ("u0", "u1", "u2"):
            counts.update({user: (await store.fetch(user, [views()]))[views().text]})
        accepted = int(restarted.metrics.events["accepted"]._value.get())
        await restarted.source.close()
        await store.close()
        return failures, held, accepted, counts

    failures, held, accepted, counts = in_loop(body)
    assert failures >= 1
    assert held == 30  # read, never acknowledged
    assert accepted == 30
    assert counts == {"u0": 10, "u1": 10, "u2": 10}
    assert pending(url) == 0


class FailingFor(RedisStore):
    """A real store that cannot write the events whose ids are in ``failing`` (as if Redis dropped the
    connection), until they are taken out of it. Every write first waits until a second write has begun,
    so the two batches under way are written at once."""

    def __init__(self, url: str, failing: set[str]):
        super().__init__(url)
        self.failing = failing
        self.writes = 0
        self.both = asyncio.Event()

    async def record(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        self.writes += 1
        if self.writes >= 2:
            self.both.set()
        if {event.id for event in events} & self.failing:
            raise redis.ConnectionError("the store is down for this batch")
        async with asyncio.timeout(5):
            await self.both.wait()
        return await super().record(events, now)


async def until(probe: Callable[[], bool], what: str) -> None:
    """Poll ``probe`` in the running loop, the ingester running beside it, for up to 10 s."""
    async with asyncio.timeout(10):
        while not probe():
            await asyncio.sleep(0.01)
    assert probe(), what


def pending_ids(url: str) -> set[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {entry["message_id"] for entry in client.xpending_range(STREAM, GROUP, "-", "+", 100)}
    finally:
        client.close()


def counter(child: Any) -> float:
    return float(child._value.get())


def test_a_failing_second_batch_under_way_stays_pending_while_the_first_is_acknowledged(empty_redis: str):
    url = empty_redis
    ids = add(url, *(view("u1", i) for i in range(10)))

    async def body() -> tuple[set[str], float, dict[str, Any], int, Any]:
        store = FailingFor(url, {f"e{i}" for i in range(5, 10)})
        ingester = Ingester(source(url), store, batch=5, in_flight=2)
        stop = asyncio.Event()
        running = asyncio.create_task(ingester.run(stop))
        metrics = ingester.metrics
        await until(lambda: counter(metrics.store_failures) >= 2, "the second batch retried")
        held = pending_ids(url)  # while the second batch is still being retried
        acknowledged = counter(metrics.acknowledged)
        stored = await store.fetch("u1", [views()])
        stop.set()
        await running
        left = len(pending_ids(url))
        await ingester.source.close()
        await store.close()
        store = RedisStore(url)
        restarted = Ingester(source(url), store, batch=2, in_flight=2)  # its own pending entries first
        stop = asyncio.Event()
        running = asyncio.create_task(restarted.run(stop))
        await until(lambda: counter(restarted.metrics.acknowledged) == 5, "the second batch stored")
        stop.set()
        await running
        values = await store.fetch("u1", [views()])
        await restarted.source.close()
        await store.close()
        return held, acknowledged, stored | {"after": values[views().text]}, left, restarted.metrics

    held, acknowledged, stored, left, metrics = in_loop(body)
    assert held == set(ids[5:])
    assert acknowledged == 5
    assert stored[views().text] == 5
    assert left == 5  # stopped while it failed: left pending, to be read again
    assert counter(metrics.events["accepted"]) == 5 and counter(metrics.events["duplicate"]) == 0
    assert stored["after"] == 10
    assert pending(url) == 0


def test_a_failing_first_batch_holds_back_the_acknowledgement_of_the_second_until_it_is_stored(empty_redis: str):
    """Batches are acknowledged in the order read, as a Kafka commit (every offset before it) needs."""
    url = empty_redis
    add(url, *(view("u1", i) for i in range(10)))

    async def body() -> tuple[float, int, float, dict[str, Any], Any]:
        store = FailingFor(url, {f"e{i}" for i in range(5)})
        ingester = Ingester(source(url), store, batch=5, in_flight=2)
        stop = asyncio.Event()
        running = asyncio.create_task(ingester.run(stop))
        metrics = ingester.metrics
        await until(lambda: store.both.is_set() and counter(metrics.store_failures) >= 2, "the first retried")
        async with asyncio.timeout(10):
            while (await store.fetch("u1", [views()]))[views().text] < 5:
                await asyncio.sleep(0.01)
        acknowledged, held = counter(metrics.acknowledged), pending(url)  # the second stored, not acknowledged
        store.failing.clear()  # the store is back
        await until(lambda: counter(metrics.acknowledged) == 10, "both batches acknowledged")
        stop.set()
        await running
        values = await store.fetch("u1", [views()])
        await ingester.source.close()
        await store.close()
        return acknowledged, held, counter(metrics.store_failures), values, metrics

    acknowledged, held, failures, values, metrics = in_loop(body)
    assert acknowledged == 0 and held == 10
    assert failures >= 2
    assert values == {views().text: 10}
    assert counter(metrics.events["accepted"]) == 10 and counter(metrics.events["duplicate"]) == 0
    assert pending(url) == 0


class JudgedTogether(RedisStore):
    """A real store whose join reads wait for each other: the two batches under way both judge their
    feedback before either counts it, the closest two batches written at once can come."""

    def __init__(self, url: str):
        super().__init__(url)
        self.asked = 0
        self.both = asyncio.Event()

    async def joins(self, decision_ids: Sequence[str], *, marks: bool = True) -> dict[str, Join]:
        self.asked += 1
        if self.asked == 2:
            self.both.set()
        async with asyncio.timeout(5):
            await self.both.wait()
        return await super().joins(decision_ids, marks=marks)


def test_feedback_in_two_batches_under_way_at_once_is_counted_once(empty_redis: str):
    """The same items (one with an id, one without) and the same event in two batches: each is counted
    once, the other copy answering as a duplicate, though both batches judged them before either counted."""
    url = empty_redis
    now = time.time()
    with_id = {"feedback": {"decision_id": "d1", "slot": "hero", "type": "click", "id": "f1"}}
    without_id = {"feedback": {"decision_id": "d2", "slot": "hero", "type": "click"}}
    add(url, with_id, without_id, view("u1", 1, ts=now - 5), with_id, without_id, view("u1", 1, ts=now - 5))

    async def body() -> tuple[bool, dict[str, Any], Any]:
        store = JudgedTogether(url)
        joins = [Join(f"d{n}", "u1", "v1", now - 10, {"hero": ("r1", "acc")}) for n in (1, 2)]
        await store.keep_decisions(joins, DAY)
        ingester = Ingester(source(url), store, batch=3, in_flight=2)
        stop = asyncio.Event()
        running = asyncio.create_task(ingester.run(stop))
        await until(lambda: counter(ingester.metrics.acknowledged) == 6, "both batches acknowledged")
        stop.set()
        await running
        values = await store.fetch("u1", [views(), CLICKS])
        await ingester.source.close()
        await store.close()
        return store.both.is_set(), values, ingester.metrics

    together, values, metrics = in_loop(body)
    assert together
    assert values == {views().text: 1, CLICKS.text: 2}
    assert counter(metrics.feedback["accepted"]) == 2 and counter(metrics.feedback["duplicate"]) == 2
    assert counter(metrics.events["accepted"]) == 1 and counter(metrics.events["duplicate"]) == 1
    assert pending(url) == 0
