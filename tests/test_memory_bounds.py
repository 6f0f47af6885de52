"""The memory store's bounds: at most ``max_users`` users, and a sweep that never stops the loop for long.

The store's monotonic clock is replaced where its series must expire, as in
test_stores.py; nothing here asserts on timings: what bounds a pause is how
many users one sweep step looks at, and that is what is checked.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from tailor.compiler.features import ANY_KEY, FeatureKind, FeatureRef
from tailor.runtime import memory_store
from tailor.runtime.buckets import MAX_BATCH
from tailor.runtime.events import Event
from tailor.runtime.http import create_app
from tailor.runtime.memory_store import (
    DEFAULT_MAX_USERS,
    EVENTS_PER_STEP,
    EVICTIONS,
    SWEEP_USERS,
    MemoryStore,
)
from tailor.runtime.service import DecisionService

DAY = 86400.0
NOW = 19675 * DAY + 12 * 3600.0
VIEWS = FeatureRef(FeatureKind.COUNT, f'count("view", "{ANY_KEY}", 86400s)', "view", ANY_KEY, DAY)


def view(user: str, at: float = NOW) -> Event:
    return Event(user, "view", "Books", ts=at)


def views_of(store: MemoryStore, user: str, at: float = NOW) -> int:
    return store.fetch_now(user, [VIEWS], at)[VIEWS.text]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The memory store's monotonic clock, which its TTLs and sweeps count in; move it by hand."""
    now = [1000.0]
    monkeypatch.setattr(memory_store, "time", SimpleNamespace(time=time.time, monotonic=lambda: now[0]))
    return now


def fill(store: MemoryStore, users: int, prefix: str = "u") -> None:
    """One view each for ``users`` users, a batch at a time."""
    names = [f"{prefix}{n}" for n in range(users)]
    for start in range(0, users, MAX_BATCH):
        store.record_now([view(name) for name in names[start : start + MAX_BATCH]], now=NOW)


# --- at most max_users users -------------------------------------------------------------


def test_beyond_max_users_the_least_recently_written_user_is_evicted():
    store = MemoryStore(max_users=3)
    evicted = EVICTIONS.users
    for user in ("ann", "bo", "cy"):
        store.record_now([view(user)], now=NOW)
    store.record_now([view("ann")], now=NOW)  # ann wrote again: bo is now the least recent
    assert views_of(store, "bo") == 1  # reads do not count as activity
    store.record_now([view("dee")], now=NOW)
    assert store.users == 3 and EVICTIONS.users == evicted + 1
    kept = {user: views_of(store, user) for user in ("ann", "bo", "cy", "dee")}
    assert kept == {"ann": 2, "bo": 0, "cy": 1, "dee": 1}
    store.set_profile_now("cy", {"tier": "gold"})  # a profile write is activity too: ann goes next
    store.record_now([view("eve")], now=NOW)
    assert store.fetch_now("cy", [FeatureRef(FeatureKind.PROFILE, "user.tier", name="tier")]) == {"user.tier": "gold"}
    assert views_of(store, "ann") == 0 and EVICTIONS.users == evicted + 2
    # Deleting attributes of nobody does not make a user (nor evict one).
    store.set_profile_now("zed", {"tier": None})
    assert store.users == 3 and EVICTIONS.users == evicted + 2


def test_max_users_has_a_default_and_must_be_positive():
    assert MemoryStore().max_users == DEFAULT_MAX_USERS
    with pytest.raises(ValueError, match="max_users must be at least 1"):
        MemoryStore(max_users=0)


def test_evictions_are_counted_in_the_metrics(tmp_path: Path):
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text("ruleset shop\ncontent a = {}\ndefault show a in hero\n")
    service = DecisionService(root, MemoryStore(max_users=2))
    service.open()
    name = "tailor_memory_store_evicted_users_total"

    def evicted(client: TestClient) -> float:
        lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(name + " ")]
        return float(lines[0].split()[1])

    with TestClient(create_app(service, watch=False)) as client:
        before = evicted(client)
        for user in ("ann", "bo", "cy"):
            response = client.post("/v1/events", json={"events": [{"user_id": user, "type": "view"}]})
            assert response.status_code == 200, response.text
        assert evicted(client) == before + 1


# --- a sweep in bounded steps ------------------------------------------------------------------


def test_a_sweep_step_looks_at_no_more_than_sweep_users_users(clock: list[float]):
    store = MemoryStore()
    users = 2 * SWEEP_USERS + 7
    fill(store, users)
    store.record_now([view("writer")], now=NOW)
    assert store.users == users + 1
    # Forty days later everything has expired; each write takes one step of the sweep.
    clock[0] += 40 * DAY
    later = NOW + 40 * DAY
    left = [store.users]
    while store.users > 1:
        store.record_now([view("writer", later)], now=later)
        left.append(store.users)
        assert len(left) <= users  # the sweep does finish
    dropped = [before - after for before, after in itertools.pairwise(left)]
    assert all(0 < count <= SWEEP_USERS for count in dropped)
    assert len(dropped) == math.ceil((users + 1) / SWEEP_USERS)  # the writer, alive, is looked at too
    assert views_of(store, "writer", later) == len(dropped)  # what it wrote since is all there


def test_the_sweep_takes_one_step_per_chunk_of_a_batch(clock: list[float]):
    store = MemoryStore()
    users = 40 * SWEEP_USERS
    fill(store, users)
    clock[0] += 40 * DAY
    later = NOW + 40 * DAY
    asyncio.run(store.record([view("writer", later)] * MAX_BATCH, now=later))
    steps = math.ceil(MAX_BATCH / EVENTS_PER_STEP)
    # Each chunk's step looked at SWEEP_USERS users and dropped them, unless one was the writer.
    assert users + 1 - store.users in (steps * SWEEP_USERS - 1, steps * SWEEP_USERS)


# --- memory per user -------------------------------------------------------------------------


def test_a_one_event_user_is_small_and_light_on_the_garbage_collector():
    """About 2.2 KB and 8 objects the collector walks per user with one event and an id (Python
    3.11, 64 bits); it was 3.5 KB and 18, and every full collection walks them all."""
    store = MemoryStore()
    users = 10_000
    store.record_now([Event("warm", "view", "Books", ts=NOW, id="w")], now=NOW)
    gc.collect()
    objects = len(gc.get_objects())
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        for start in range(0, users, MAX_BATCH):
            batch = range(start, start + MAX_BATCH)
            store.record_now([Event(f"user-{n}", "view", "Books", ts=NOW, id=f"evt-{n}") for n in batch], now=NOW)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - held
    finally:
        tracemalloc.stop()
    assert (len(gc.get_objects()) - objects) / users <= 9
    assert held / users <= 2_600
