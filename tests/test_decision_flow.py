"""One decision flow, two ways to run it: the in-process engine and the server's service decide alike.

``Engine.decide`` reads its store synchronously (``fetch_now``); ``DecisionService.decide``
awaits ``fetch`` within its deadline. Both run ``runtime/decision_flow.py``, so on the same
store contents and requests they must return equal decisions, on either store: supplied
values override stored ones (and are not fetched), a user the store has never seen gets
the defaults of an empty history, and a store that cannot be reached degrades both alike
and never raises. The retail example is the ruleset: profiles, counts, totals, ``since``
and a model that reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.ports import free_port
from tailor.compiler.decide import Decision
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.runtime.engine import Engine
from tailor.runtime.events import Event
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.ruleset_loader import load
from tailor.runtime.service import DecisionService
from tailor.runtime.store import FeatureStore

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
NOW = 20_454 * DAY + 12 * HOUR  # a fixed noon: every decision reads the store as of a known time
RETENTION = 90 * DAY  # long enough for a buyer lapsed 35 days ago to be remembered
PATIENT_MS = 10_000.0  # the agreement must not depend on how busy the machine is
STORE_KINDS = (FeatureKind.COUNT, FeatureKind.TOTAL, FeatureKind.SINCE, FeatureKind.PROFILE)

EVENTS = [
    # erin: a gold member who browses electronics
    *(Event("erin", "view", "Electronics", ts=NOW - i * HOUR) for i in range(1, 5)),
    Event("erin", "purchase", "Books", value=30.0, ts=NOW - 2 * DAY),
    # bob: an electronics fan who clicked the accessories banner
    *(Event("bob", "view", "Electronics", ts=NOW - i * 10 * MINUTE) for i in range(1, 7)),
    Event("bob", "add_to_cart", "Electronics", ts=NOW - 20 * MINUTE),
    Event("bob", "impression", "acc-42", ts=NOW - DAY),
    Event("bob", "click", "acc-42", ts=NOW - DAY + 5),
    # carol: a lapsed buyer who abandoned a cart this week
    Event("carol", "purchase", "Electronics", value=120.0, ts=NOW - 35 * DAY),
    Event("carol", "cart_abandoned", ts=NOW - 3 * DAY),
    *(Event("carol", "view", ts=NOW - i * DAY) for i in range(1, 4)),
]
PROFILES = {"erin": {"tier": "gold"}, "bob": {"tier": "silver"}, "carol": {"tier": "bronze"}}

REQUESTS: list[dict[str, Any]] = [
    {"user_id": "erin", "context": {"page": "home", "device": "mobile"}},
    {"user_id": "erin", "context": {"page": "product", "category": "Electronics"}, "slots": ["sidebar"]},
    {"user_id": "bob", "context": {"page": "home", "device": "desktop"}},
    {"user_id": "bob", "context": {"page": "cart", "cart_total": 120}, "slots": ["cart_upsell", "nowhere"]},
    {"user_id": "carol", "context": {"page": "home"}},
    {"user_id": "carol", "context": {"page": "cart", "cart_total": 20}},
    # a user the store has never seen
    {"user_id": "nobody", "context": {"page": "home", "device": "mobile"}},
    {"user_id": "nobody", "context": {"page": "cart", "cart_total": 40}},
    # supplied values override stored ones
    {"user_id": "erin", "context": {"page": "home"}, "features": {"user.tier": "bronze"}},
    {"user_id": "bob", "context": {"page": "home"}, "features": {'views("Electronics", 24h)': 0}},
    {"user_id": "bob", "context": {"page": "home"}, "features": {"p_click": 0.95}},
    {"user_id": "carol", "context": {"page": "home"}, "features": {'since("purchase")': 2 * DAY}},
    {"user_id": "nobody", "context": {"page": "home"}, "features": {"user.tier": "platinum"}},
    # as of an earlier time: carol's cart was not abandoned yet
    {"user_id": "carol", "context": {"page": "cart", "cart_total": 20}, "at": NOW - 5 * DAY},
]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[[], FeatureStore]:
    """Fresh stores of one kind; Redis ones share this test's key prefix (deleted afterwards)."""
    if request.param == "memory":
        return lambda: MemoryStore(retention=RETENTION)
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisStore(url, prefix=prefix, retention=RETENTION)


@pytest.fixture
def unreachable() -> Iterator[RedisStore]:
    """A Redis store at a port nobody listens on."""
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="down:")
    yield store
    asyncio.run(store.close())


def _filled(store: FeatureStore) -> None:
    async def fill() -> None:
        await store.record(EVENTS, now=NOW)
        for user, attributes in PROFILES.items():
            await store.set_profile(user, attributes)

    asyncio.run(fill())


def _arguments(request: dict[str, Any]) -> dict[str, Any]:
    return {"slots": None, "features": None, "at": NOW, **request}


def served(store: FeatureStore, requests: Sequence[dict[str, Any]]) -> list[Decision]:
    """The server's decisions: ``DecisionService.decide``, in one event loop."""
    service = DecisionService(RETAIL, store, deadline_ms=PATIENT_MS, sample_every=0)
    service.open()

    async def decide_all() -> list[Decision]:
        return [(await service.decide(**_arguments(request)))[1].decision for request in requests]

    return asyncio.run(decide_all())


def in_process(store: FeatureStore | None, requests: Sequence[dict[str, Any]]) -> list[Decision]:
    """The engine's decisions: ``Engine.decide``, outside any event loop."""
    engine = Engine(load(RETAIL), store)
    return [engine.decide(**_arguments(request)) for request in requests]


def _content(decision: Decision, slot: str) -> str | None:
    return decision.slots[slot].content


def test_engine_and_service_decide_alike(make_store: Callable[[], FeatureStore]) -> None:
    store = make_store()
    try:
        _filled(store)
        decisions = in_process(store, REQUESTS)
        server = served(store, REQUESTS)
    finally:
        asyncio.run(store.close())
    assert decisions == server
    assert not any(decision.degraded for decision in decisions)
    # the store's contents decide...
    assert _content(decisions[0], "hero") == "hero_vip"
    assert _content(decisions[1], "sidebar") == "sidebar_bundle"
    assert _content(decisions[2], "hero") == "hero_accessories" and decisions[2].models_run == ("p_click",)
    assert _content(decisions[4], "hero") == "hero_welcome_back"
    assert _content(decisions[5], "cart_upsell") == "upsell_comeback"
    assert decisions[3].slots["nowhere"].content is None
    # ...a user without history gets what an empty history gives...
    assert _content(decisions[6], "hero") == "hero_generic"
    assert _content(decisions[7], "cart_upsell") == "upsell_shipping_gap"
    # ...and supplied values override the stored ones
    assert _content(decisions[8], "hero") != "hero_vip"
    assert _content(decisions[11], "hero") != "hero_welcome_back"
    assert _content(decisions[12], "hero") == "hero_vip"
    assert _content(decisions[13], "cart_upsell") != "upsell_comeback"


def test_both_stores_give_the_same_decisions(redis_url: str, redis_prefix: str) -> None:
    decisions = []
    for store in (MemoryStore(retention=RETENTION), RedisStore(redis_url, prefix=redis_prefix, retention=RETENTION)):
        _filled(store)
        decisions.append(in_process(store, REQUESTS))
        asyncio.run(store.close())
    assert decisions[0] == decisions[1]


class Asked(MemoryStore):
    """A memory store that remembers which features each fetch asked for."""

    def __init__(self) -> None:
        super().__init__(retention=RETENTION)
        self.asked: list[list[str]] = []

    def fetch_now(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        self.asked.append([ref.text for ref in features])
        return super().fetch_now(user_id, features, at)

    async def fetch(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        return self.fetch_now(user_id, features, at)


def test_both_fetch_only_what_the_request_does_not_supply() -> None:
    ruleset = load(RETAIL)
    stored = [text for text, ref in ruleset.plan.features.items() if ref.kind in STORE_KINDS]
    everything = dict.fromkeys(stored)
    requests = [
        {"user_id": "erin", "context": {"page": "home"}},
        {"user_id": "erin", "context": {"page": "home"}, "features": {"user.tier": "gold"}},
        {"user_id": "erin", "context": {"page": "home"}, "features": everything},
    ]
    asked = []
    for decide in (in_process, served):
        store = Asked()
        _filled(store)
        decisions = decide(store, requests)
        asked.append(store.asked)
        assert decisions[2].fetched == decisions[0].fetched  # what the decision needed, supplied or not
    assert asked[0] == asked[1]
    assert len(asked[0]) == 2  # everything supplied: no round trip
    assert "user.tier" in asked[0][0] and "user.tier" not in asked[0][1]
    assert set(asked[0][1]) == set(asked[0][0]) - {"user.tier"}


def test_an_unreachable_store_degrades_both_alike(unreachable: RedisStore) -> None:
    ruleset = load(RETAIL)
    stored = [text for text, ref in ruleset.plan.features.items() if ref.kind in STORE_KINDS]
    requests = [
        {"user_id": "erin", "context": {"page": "home"}},
        {"user_id": "erin", "context": {"page": "cart", "cart_total": 40}, "slots": ["cart_upsell"]},
        {"user_id": "erin", "context": {"page": "home"}, "features": {"user.tier": "gold"}},
        # everything supplied: the store is not asked, so the decision is whole
        {"user_id": "erin", "context": {"page": "home"}, "features": {**dict.fromkeys(stored), "user.tier": "gold"}},
    ]
    engine = in_process(unreachable, requests)
    server = served(unreachable, requests)
    assert engine == server
    assert [decision.degraded for decision in engine] == [True, True, True, False]
    assert _content(engine[0], "hero") == "hero_generic"  # the store's rules cannot fire: the default
    assert _content(engine[1], "cart_upsell") == "upsell_shipping_gap"  # a rule on the context still does
    assert _content(engine[2], "hero") == _content(engine[3], "hero") == "hero_vip"  # so do supplied values


def test_a_degraded_decision_knows_no_counter() -> None:
    """Without a store a counter nobody supplied is 0; with a store that failed it is unknown."""

    class Down(MemoryStore):
        def fetch_now(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ConnectionError("the store is down")

    ruleset = load(RETAIL)
    request = {"user_id": "carol", "context": {"page": "home"}}
    alone = Engine(ruleset).explain(**request)
    failed = Engine(ruleset, Down()).explain(**request)
    assert alone.decision.degraded is False and failed.decision.degraded is True
    assert alone.values["views(7d)"] == 0
    assert failed.values["views(7d)"] is None


def test_the_engine_writes_only_to_a_store_that_writes_synchronously(unreachable: RedisStore) -> None:
    engine = Engine(load(RETAIL), unreachable)
    with pytest.raises(TypeError, match="asynchronously"):
        engine.record([Event("erin", "view", "Electronics", ts=NOW)], now=NOW)
    with pytest.raises(TypeError, match="asynchronously"):
        engine.set_profile("erin", {"tier": "gold"})
    local = Engine(load(RETAIL))
    local.record([Event("erin", "view", "Electronics", ts=NOW - i) for i in range(3)], now=NOW)
    local.set_profile("erin", {"tier": "gold"})
    assert isinstance(local.store, MemoryStore)
    assert _content(local.decide("erin", {"page": "home"}, at=NOW), "hero") == "hero_vip"
