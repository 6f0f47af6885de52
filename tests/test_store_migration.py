"""``tailor migrate-store``: a store written in the earlier Redis layout answers the same after the move.

The earlier layout is written by ``old_layout`` (what the earlier record
script stored), the same events go to a ``MemoryStore``, and after the
migration the ``RedisStore`` must give the memory store's answers for every
feature; a second run must move nothing, and leave the answers as they were.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import redis
from old_layout import write_events, write_profile

from bench.local_cluster import LocalCluster
from tailor.cli import main
from tailor.compiler.features import ANY_KEY, FeatureKind, FeatureRef
from tailor.runtime.buckets import Scheme
from tailor.runtime.events import Event
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_clients import blocking_client
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.store import FeatureStore
from tailor.runtime.store_migration import Migration, OldLayout, migrate, move_user

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
NOW = 19675 * DAY + 12 * HOUR + 30
USERS = ("alice", "bob", "c d&e/{f}")  # the last one's id is encoded in key names
KEYS = ("Electronics", "Home & Garden")
PROFILES = {"alice": {"tier": "gold", "age": 31}, "c d&e/{f}": {"tier": "silver", "tags": ["a", "b"]}}


def events(user: str, seed: int) -> list[Event]:
    """Events over the last two weeks, at minutes, hours and days back, keyed and not, with values."""
    found = []
    for n, back in enumerate((30, 5 * MINUTE, 90 * MINUTE, 3 * HOUR, 20 * HOUR, 2 * DAY, 6 * DAY, 13 * DAY)):
        key = KEYS[(n + seed) % 2] if n % 3 else None
        found.append(Event(user, "view", key, ts=NOW - back - seed))
        if n % 2:
            found.append(Event(user, "buy", key, value=2.5 + n, ts=NOW - back - seed))
    return found


def refs() -> list[FeatureRef]:
    found = []
    for event in ("view", "buy"):
        for key in (ANY_KEY, *KEYS):
            for window in (10 * MINUTE, 2 * HOUR, DAY, 7 * DAY, 30 * DAY):
                text = f'{event}("{key}", {window:g}s)'
                found.append(FeatureRef(FeatureKind.COUNT, f"count {text}", event, key, window))
                found.append(FeatureRef(FeatureKind.TOTAL, f"total {text}", event, key, window))
            found.append(FeatureRef(FeatureKind.SINCE, f'since("{event}", "{key}")', event, key))
    found += [FeatureRef(FeatureKind.PROFILE, f"user.{name}", name=name) for name in ("tier", "age", "tags")]
    return found


def fetch_all(store: FeatureStore, users: Sequence[str], at: float = NOW) -> dict[str, dict[str, Any]]:
    async def body() -> dict[str, dict[str, Any]]:
        try:
            return {user: await store.fetch(user, refs(), at) for user in users}
        finally:
            await store.close()

    return asyncio.run(body())


def in_memory(extra: Sequence[Event] = (), profiles: dict[str, dict[str, Any]] = PROFILES) -> dict[str, Any]:
    store = MemoryStore()

    async def body() -> None:
        for seed, user in enumerate(USERS):
            await store.record(events(user, seed), now=NOW)
        if extra:
            await store.record(list(extra), now=NOW)
        for user, attributes in profiles.items():
            await store.set_profile(user, attributes)

    asyncio.run(body())
    return fetch_all(store, USERS)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    found = redis.Redis.from_url(redis_url)
    yield found
    found.close()


def write_old(client: redis.Redis, prefix: str) -> None:
    layout = OldLayout(prefix)
    for seed, user in enumerate(USERS):
        write_events(client, layout, events(user, seed), NOW)
    for user, attributes in PROFILES.items():
        write_profile(client, layout, user, attributes)


def old_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return [key for key in client.scan_iter(match=f"{prefix}*") if key.endswith((b":p", b":k")) or b":c:" in key]


def test_the_old_layout_moves_whole_once_and_answers_the_same(client: redis.Redis, redis_url: str, redis_prefix: str):
    write_old(client, redis_prefix)
    expected = in_memory()
    assert fetch_all(RedisStore(redis_url, prefix=redis_prefix), USERS) != expected  # nothing in the user hash yet

    longest = {
        user: max(client.pttl(key) for key in client.scan_iter(match=f"{redis_prefix}{{{part}}}:*"))
        for user, part in zip(USERS, ("alice", "bob", "c%20d%26e%2F%7Bf%7D"), strict=True)
    }
    dry = migrate(client, redis_prefix, dry_run=True)
    assert dry.users == len(USERS) and dry.attributes == 4 and dry.series > 0 and dry.buckets > 0
    assert migrate(client, redis_prefix, dry_run=True) == dry  # a dry run changed nothing

    assert migrate(client, redis_prefix) == dry
    assert old_keys(client, redis_prefix) == []
    migrated = fetch_all(RedisStore(redis_url, prefix=redis_prefix), USERS)
    assert migrated == expected
    assert all(migrated[user] for user in USERS)
    for user in USERS:  # each user hash lives as long as the longest-lived old key did
        ttl = client.pttl(RedisStore(redis_url, prefix=redis_prefix).user_key(user))
        assert longest[user] - 60_000 < ttl <= longest[user], user

    assert migrate(client, redis_prefix) == Migration()  # a second run moves nothing
    assert fetch_all(RedisStore(redis_url, prefix=redis_prefix), USERS) == expected


def test_a_run_resumed_after_one_user_adds_to_what_the_server_wrote_since(
    client: redis.Redis, redis_url: str, redis_prefix: str
):
    write_old(client, redis_prefix)
    store = RedisStore(redis_url, prefix=redis_prefix)
    later = [Event("bob", "view", "Electronics", ts=NOW - 10), Event("alice", "buy", value=4.0, ts=NOW - 6 * DAY)]

    async def serve_meanwhile() -> None:  # a server of this version, while the old data waits to be moved
        await store.record(later, now=NOW)
        await store.set_profile("alice", {"tier": "platinum"})
        await store.close()

    scheme = Scheme.for_retention()
    assert move_user(client, OldLayout(redis_prefix), scheme, "alice").users == 1  # then the run stopped
    asyncio.run(serve_meanwhile())
    rest = migrate(client, redis_prefix)
    assert rest.users == len(USERS) - 1
    profiles = {**PROFILES, "alice": {**PROFILES["alice"], "tier": "platinum"}}  # the newer attribute stands
    assert fetch_all(RedisStore(redis_url, prefix=redis_prefix), USERS) == in_memory(later, profiles)


def test_the_command_prints_what_it_moved(
    client: redis.Redis, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
):
    write_old(client, redis_prefix)
    assert main(["migrate-store", "--redis", redis_url, "--prefix", redis_prefix, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would move 3 users: 4 profile attributes, ")
    assert main(["migrate-store", "--redis", redis_url, "--prefix", redis_prefix]) == 0
    assert capsys.readouterr().out.startswith("moved 3 users: 4 profile attributes, ")
    assert main(["migrate-store", "--redis", redis_url, "--prefix", redis_prefix]) == 0
    assert capsys.readouterr().out == "moved 0 users: 0 profile attributes, 0 series, 0 count buckets\n"
    assert main(["migrate-store", "--redis", "localhost:6379"]) == 2
    assert "is not a Redis URL" in capsys.readouterr().err


@pytest.mark.slow
def test_on_a_cluster_every_master_is_scanned_and_each_user_moves_once(
    redis_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """The users' keys lie on all three masters; the command finds the cluster by asking its node."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    users = [f"user-{n}" for n in range(24)]
    client = blocking_client(redis_cluster.url, cluster=True, name="test", timeout=5.0)
    try:
        layout = OldLayout(prefix)
        for seed, user in enumerate(users):
            write_events(client, layout, events(user, seed), NOW)
        masters = {client.get_node_from_key(layout.series_index_key(user)).name for user in users}
        assert len(masters) == 3, masters
        assert main(["migrate-store", "--redis", redis_cluster.url, "--prefix", prefix, "--dry-run"]) == 0
        assert capsys.readouterr().out.startswith(f"would move {len(users)} users: 0 profile attributes, ")
        assert main(["migrate-store", "--redis", redis_cluster.url, "--prefix", prefix]) == 0
        assert capsys.readouterr().out.startswith(f"moved {len(users)} users: 0 profile attributes, ")
        assert main(["migrate-store", "--redis", redis_cluster.url, "--prefix", prefix]) == 0
        assert capsys.readouterr().out.startswith("moved 0 users: ")
        assert not [key for key in client.scan_iter(match=f"{prefix}*") if key.endswith(b":k") or b":c:" in key]
    finally:
        client.close()
    store = RedisStore(redis_cluster.url, prefix=prefix, cluster=True, timeout=5.0)
    memory = MemoryStore()

    async def record() -> None:
        for seed, user in enumerate(users):
            await memory.record(events(user, seed), now=NOW)

    asyncio.run(record())
    assert fetch_all(store, users) == fetch_all(memory, users)
