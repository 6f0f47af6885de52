"""POST /v1/feedback and GET /v1/kpis over the HTTP API (TestClient), on the memory store and on Redis.

Per-item answers, idempotent retries, bad batches refused whole, feedback
turned into events rules read, served impressions, and the KPI rows' rates.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tailor.runtime.feedback import Impressions, utc_day
from tailor.runtime.http import create_app
from tailor.runtime.http.schemas import FeedbackResponse, KpisResponse
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.statistics import wilson_interval
from tailor.runtime.store import FeatureStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHOP = """\
ruleset shop

content acc = {"id": "acc"}
content promo = {"id": "promo"}
content generic = {"id": "generic"}
content fresh = {"id": "fresh"}

rule clicked_accessories
  when clicks("acc", 7d) > 0
  then show promo in hero

default show generic in hero
default show acc in sidebar

rule seen_twice
  when count("impression", "acc", 24h) >= 2
  then show fresh in footer
"""
DAY = 86400.0


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest) -> FeatureStore:
    """Each store; the Redis Cluster's run (sharded feedback keys) is in the slow pass."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        return RedisStore(url, prefix=f"test:{uuid.uuid4().hex[:12]}:", cluster=True, timeout=5.0)
    return RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    return root


def serve(rules: Path, store: FeatureStore, **options: Any) -> TestClient:
    service = DecisionService(rules, store)
    service.open()
    return TestClient(create_app(service, watch=False, **options))


@pytest.fixture
def client(rules: Path, store: FeatureStore) -> Iterator[TestClient]:
    with serve(rules, store) as client:
        yield client


def decide(client: TestClient, user: str = "u1", **body: Any) -> dict[str, Any]:
    response = client.post("/v1/decide", json={"user_id": user, **body})
    assert response.status_code == 200, response.text
    return response.json()


def feedback(client: TestClient, *items: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/feedback", json={"items": list(items)})
    assert response.status_code == 200, response.text
    return FeedbackResponse.model_validate(response.json()).model_dump(mode="json")


def kpis(client: TestClient, **query: str) -> list[dict[str, Any]]:
    response = client.get("/v1/kpis", params=query)
    assert response.status_code == 200, response.text
    return KpisResponse.model_validate(response.json()).model_dump(mode="json")["rows"]


def row(client: TestClient, slot: str, **query: str) -> dict[str, Any]:
    (found,) = [r for r in kpis(client, **query) if r["slot"] == slot]
    return found


def item(decision: dict[str, Any], type_: str, slot: str = "sidebar", **extra: Any) -> dict[str, Any]:
    return {"decision_id": decision["decision_id"], "slot": slot, "type": type_, **extra}


def test_each_item_is_answered_and_counted_once(client: TestClient) -> None:
    shown = decide(client)
    assert shown["slots"]["sidebar"]["content"] == "acc"
    batch = [
        item(shown, "impression"),
        item(shown, "impression"),  # no id: once per (decision, slot, type)
        item(shown, "click", id="c1"),
        item(shown, "conversion", value=20.0, id="order-1"),
        item(shown, "conversion", value=5.5, id="order-2"),  # another id: counted too
        item(shown, "dwell", value=31.0),  # a custom type: an event, no KPI
        item({"decision_id": "never-served"}, "click"),
        item(shown, "click", slot="footer"),  # the footer showed nothing
        item(shown, "click", user_id="somebody-else"),
    ]
    answer = feedback(client, *batch)
    assert answer == {
        "accepted": 5,
        "duplicates": 1,
        "ignored": 0,
        "results": [
            {"index": 6, "status": "unknown_decision"},
            {"index": 7, "status": "unknown_slot"},
            {"index": 8, "status": "wrong_user"},
        ],
        "dropped_no_consent": 0,
    }
    retried = feedback(client, *batch)  # a retry of the whole batch counts nothing again
    assert (retried["accepted"], retried["duplicates"]) == (0, 6)
    assert retried["results"] == answer["results"]

    sidebar = row(client, "sidebar")
    assert {k: sidebar[k] for k in ("rule", "content", "decisions", "impressions", "clicks", "conversions")} == {
        "rule": "default",
        "content": "acc",
        "decisions": 1,
        "impressions": 1,
        "clicks": 1,
        "conversions": 2,
    }
    assert sidebar["value"] == pytest.approx(25.5)
    assert sidebar["value_per_impression"] == pytest.approx(25.5)
    assert sidebar["ctr"] == 1.0 and sidebar["conversion_rate"] == 2.0
    assert (sidebar["conversion_rate_low"], sidebar["conversion_rate_high"]) == tuple(wilson_interval(1, 1))


def on_cluster(store: FeatureStore) -> bool:
    return isinstance(store, RedisStore) and store.cluster


def test_an_id_reused_with_another_payload_is_a_conflict_and_the_first_stands(
    client: TestClient, store: FeatureStore
) -> None:
    first, second = decide(client, "u1"), decide(client, "u2")
    assert feedback(client, item(first, "click", id="k"))["accepted"] == 1
    answer = feedback(client, item(first, "click", id="k", ts=time.time() - 5), item(second, "click", id="k"))
    assert answer["results"] == [{"index": 0, "status": "conflict"}, {"index": 1, "status": "conflict"}]
    assert row(client, "sidebar")["clicks"] == 1


def test_feedback_after_the_attribution_window_is_expired(client: TestClient) -> None:
    now = time.time()
    old = decide(client, at=now - 8 * DAY)  # replayed: decided eight days ago
    recent = decide(client, at=now - 2 * DAY)
    answer = feedback(
        client,
        item(old, "click"),
        item(recent, "click"),
        item(recent, "impression", ts=now - 2 * DAY + 60),
        item(old, "impression", ts=now - 8 * DAY + 60),  # within a week of the decision
    )
    assert answer["results"] == [{"index": 0, "status": "expired"}]
    assert answer["accepted"] == 3
    # Each is counted under the UTC day of its decision.
    assert row(client, "sidebar", since=utc_day(now - 2 * DAY), until=utc_day(now - 2 * DAY))["clicks"] == 1
    assert row(client, "sidebar", until=utc_day(now - 8 * DAY))["impressions"] == 1
    assert row(client, "sidebar")["decisions"] == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"items": [{"decision_id": "d", "slot": "hero", "type": "Click"}]}, "items[0].type"),
        ({"items": [{"decision_id": "d", "slot": "hero", "type": "click", "value": "12"}]}, "items[0].value"),
        ({"items": [{"decision_id": 7, "slot": "hero", "type": "click"}]}, "items[0].decision_id"),
        ({"items": [{"decision_id": "d", "slot": "hero"}]}, "items[0].type"),
        ({"items": [{"decision_id": "d", "slot": "hero", "type": "click", "colour": 1}]}, "items[0].colour"),
        ({"items": [{"decision_id": "d", "slot": "hero", "type": "click"}] * 1001}, "items"),
        ({"events": []}, "items"),
    ],
)
def test_bad_feedback_is_refused_whole_and_changes_nothing(
    client: TestClient, body: dict[str, Any], reason: str
) -> None:
    shown = decide(client)
    assert feedback(client, item(shown, "click"))["accepted"] == 1
    before = kpis(client)
    good = item(shown, "impression")
    if "items" in body:
        body = {"items": [good, *body["items"]]}
        reason = reason.replace("items[0]", "items[1]")
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert kpis(client) == before


def test_non_finite_values_and_future_times_are_refused(client: TestClient) -> None:
    shown = decide(client)
    before = kpis(client)
    raw = '{"items": [{"decision_id": "%s", "slot": "sidebar", "type": "conversion", "value": NaN}]}'
    response = client.post(
        "/v1/feedback", content=raw % shown["decision_id"], headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "items[0].value" in response.json()["detail"]
    future = [item(shown, "impression"), item(shown, "click", ts=time.time() + 3600)]
    response = client.post("/v1/feedback", json={"items": future})
    assert response.status_code == 422
    assert "item 1 is from the future" in response.json()["detail"]
    assert kpis(client) == before
    huge = {"items": [item(shown, "click", id="x" * 256, user_id="u" * 256)] * 2000}  # over the 1 MiB body limit
    response = client.post("/v1/feedback", content=json.dumps(huge))
    assert response.status_code == 413
    assert kpis(client) == before


def test_feedback_becomes_events_that_rules_read(client: TestClient) -> None:
    first = decide(client)
    assert first["slots"]["hero"]["content"] == "generic" and first["slots"]["footer"] is None
    feedback(client, item(first, "impression"))
    second = decide(client)
    feedback(client, item(second, "impression"), item(second, "click"))
    third = decide(client)
    assert third["slots"]["hero"]["content"] == "promo"  # clicks("acc", 7d) > 0
    assert third["slots"]["footer"]["content"] == "fresh"  # count("impression", "acc", 24h) >= 2
    explained = client.post("/v1/explain", json={"user_id": "u1"}).json()
    assert "promo" in json.dumps(explained["explain"])
    assert decide(client, "u2")["slots"]["hero"]["content"] == "generic"  # someone else's clicks are not theirs


def test_rates_come_with_wilson_intervals(client: TestClient) -> None:
    for n in range(10):
        shown = decide(client, f"user-{n}")
        items = [item(shown, "impression")]
        if n < 3:
            items.append(item(shown, "click"))
        if n == 0:
            items.append(item(shown, "conversion", value=40.0))
        feedback(client, *items)
    sidebar = row(client, "sidebar")
    assert (sidebar["decisions"], sidebar["impressions"], sidebar["clicks"], sidebar["conversions"]) == (10, 10, 3, 1)
    assert sidebar["ctr"] == pytest.approx(0.3)
    assert (sidebar["ctr_low"], sidebar["ctr_high"]) == pytest.approx(tuple(wilson_interval(3, 10)))
    assert sidebar["conversion_rate"] == pytest.approx(0.1)
    assert (sidebar["conversion_rate_low"], sidebar["conversion_rate_high"]) == pytest.approx(
        tuple(wilson_interval(1, 10))
    )
    assert sidebar["value_per_impression"] == pytest.approx(4.0)
    hero = row(client, "hero")
    assert (hero["impressions"], hero["ctr"], hero["ctr_low"], hero["conversion_rate_high"]) == (0, None, None, None)
    assert [r["slot"] for r in kpis(client, slot="hero")] == ["hero"]
    assert kpis(client, rule="clicked_accessories") == []
    assert kpis(client, version="not-a-version") == []


def test_a_batch_on_one_redis_is_the_join_read_and_one_call_and_its_retry_stores_nothing_again(
    rules: Path, redis_url: str, redis_prefix: str
) -> None:
    """On one Redis the items are counted with their events and marks in one call after the join read; a
    retry is answered as duplicates, and the events and marks it would store are already there. A batch
    taken before is first only read, and counted in full when something of it is new."""
    store = RedisStore(redis_url, prefix=redis_prefix)
    plain = redis.Redis.from_url(redis_url)

    def stored() -> dict[bytes, Any]:
        """Every key of the test's prefix with its content, TTLs aside."""
        dump = {}
        for key in plain.scan_iter(match=f"{redis_prefix}*", count=1000):
            kind = plain.type(key)
            read = {b"hash": plain.hgetall, b"set": plain.smembers, b"string": plain.get}
            dump[key] = read[kind](key) if kind in read else plain.zrange(key, 0, -1, withscores=True)
        return dump

    try:
        with serve(rules, store) as client:
            shown = decide(client)
            batch = [
                item(shown, "impression", id="i1"),
                item(shown, "click", id="c1"),
                item(shown, "conversion", value=12.5, id="o1"),
                item(shown, "click", slot="hero"),  # no id: deduplicated in its join record
            ]
            trips = store.round_trips
            assert feedback(client, *batch)["accepted"] == 4
            assert store.round_trips - trips == 2
            joined = client.post("/v1/feedback/joined", json={"decision_ids": [shown["decision_id"]]})
            (joined,) = joined.json()["decisions"]
            assert sorted((mark["slot"], mark["type"]) for mark in joined["feedback"]) == [
                ("hero", "click"),
                ("sidebar", "click"),
                ("sidebar", "conversion"),
                ("sidebar", "impression"),
            ]
            before = stored()
            trips = store.round_trips
            retried = feedback(client, *batch)
            assert (retried["accepted"], retried["duplicates"]) == (0, 4)
            assert store.round_trips - trips == 2
            assert stored() == before
            assert decide(client)["slots"]["hero"]["content"] == "promo"  # the click's event, read by a rule
            plain.delete(store.feedback.id_key("o1"))  # as if its id had expired: the retry finds it new
            trips = store.round_trips
            again = feedback(client, *batch)
            assert (again["accepted"], again["duplicates"]) == (1, 3)
            assert store.round_trips - trips == 3  # the read-only call first, then the one that counts
    finally:
        plain.close()


def test_a_bad_kpi_query_is_a_422(client: TestClient) -> None:
    for query in ({"since": "yesterday"}, {"until": "2024-13-01"}, {"since": "2024-05-02", "until": "2024-05-01"}):
        response = client.get("/v1/kpis", params=query)
        assert response.status_code == 422, query
        assert "since" in response.json()["detail"] or "until" in response.json()["detail"]


def test_served_impressions_count_every_served_slot(rules: Path, store: FeatureStore) -> None:
    with serve(rules, store, impressions=Impressions.SERVED) as client:
        first = decide(client)
        decide(client)
        answer = feedback(client, item(first, "impression"), item(first, "click"))
        assert (answer["accepted"], answer["ignored"], answer["results"]) == (1, 1, [])
        sidebar = row(client, "sidebar")
        assert (sidebar["decisions"], sidebar["impressions"], sidebar["clicks"]) == (2, 2, 1)
        third = decide(client)
        assert third["slots"]["footer"]["content"] == "fresh"  # the two served impressions are events too
        assert feedback(client)["accepted"] == 0  # feedback first writes the decisions queued (the third)
        metrics = client.get("/metrics").text
        assert 'tailor_feedback_counted_total{measure="impressions",rule="(default)",slot="sidebar"} 3.0' in metrics
        assert 'tailor_feedback_items_total{outcome="ignored"} 1.0' in metrics


def test_serve_takes_the_attribution_window_and_the_source_of_impressions() -> None:
    from tailor.cli import build_parser
    from tailor.runtime.launch import ServeOptions

    parser = build_parser()
    default = parser.parse_args(["serve", "rules"])
    options = ServeOptions(path="rules")
    assert (default.attribution, default.impressions) == (options.attribution, options.impressions)
    assert (options.attribution, options.impressions) == (7 * DAY, "feedback")
    given = parser.parse_args(["serve", "rules", "--attribution", "3d", "--impressions", "served"])
    assert (given.attribution, given.impressions) == (3 * DAY, "served")
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "rules", "--impressions", "sometimes"])


@pytest.mark.parametrize("kind", ["redis", pytest.param("cluster", marks=pytest.mark.slow)])
def test_served_decisions_kept_again_count_once_and_their_impressions_match_the_memory_store(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Redis keeps a chunk of served decisions in one script call: sent again (a retry), it counts nothing
    twice; its impression events, merged per series, read as the memory store's (one event a slot). On a
    cluster the impressions are the user slot's call and the join record the shard's: a keep cut short
    after the first (made here by running it alone) and sent again still counts each once."""
    import asyncio

    from tailor.compiler.features import FeatureKind, FeatureRef
    from tailor.runtime.feedback import Join
    from tailor.runtime.kpis import KpiQuery

    at = time.time() - 30
    shown = {"hero": ("r1", "acc"), "sidebar": ("default", "acc"), "footer": ("r2", "x")}
    joins = [Join(f"d{i}", "ü/1", "v1", at + i, shown) for i in range(3)]
    refs = [
        FeatureRef(FeatureKind.COUNT, f'count("impression", "{key}", 1h)', "impression", key, 3600.0)
        for key in ("acc", "x", "any")
    ]
    since = FeatureRef(FeatureKind.SINCE, 'since("impression", "x")', "impression", "x")

    async def kept(store: FeatureStore, times: int) -> tuple[dict[str, Any], Any]:
        if on_cluster(store):
            await store.feedback.served._served(joins, str(int(DAY * 1000)), time.time())  # type: ignore[attr-defined]
        for _ in range(times):
            await store.keep_decisions(joins, DAY, impressions=True)
        counts = await store.kpi_counts(KpiQuery(None, None, None, None, None))
        values = await store.fetch("ü/1", [*refs, since], at=at + 60)
        await store.close()
        return values, counts

    if kind == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        redis_store = RedisStore(url, prefix=f"test:{uuid.uuid4().hex[:12]}:", cluster=True, timeout=5.0)
    else:
        redis_store = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    on_redis = asyncio.run(kept(redis_store, 2))
    in_memory = asyncio.run(kept(MemoryStore(), 1))
    assert on_redis == in_memory
    assert on_redis[0] == {refs[0].text: 6, refs[1].text: 3, refs[2].text: 9, since.text: pytest.approx(58)}
    assert on_redis[1]["v1", "sidebar", "default", "acc"] == {"decisions": 3.0, "impressions": 3.0}


def test_join_records_keep_experiments_models_and_marks_and_count_arms_on_redis_as_in_memory(
    redis_url: str, redis_prefix: str
) -> None:
    """The keep, count and join-read scripts take and give JSON: a join record's experiments (``x``),
    models (``m``) and feedback marks read back whole, and the arms' served impressions, measures and
    converters count as the memory store's, once though the Redis chunk is sent twice."""
    import asyncio

    from tailor.runtime.feedback import FeedbackMark, Join, JoinArm, Tally

    at = time.time() - 30
    shown = {"hero": ("r1", "acc"), "sidebar": ("default", "acc")}
    exposed = Join("d1", "ü/1", "v1", at, shown, (JoinArm("exp é", "B", "p1", ("hero",)),), {"m": 0.25})
    plain = Join("d2", "u2", "v1", at, {"hero": ("r1", "acc")})
    arms = (("exp é", "p1", "B"),)
    day = exposed.day
    tallies = [
        Tally("d1", "hero", "click", None, "f1", "v1", day, "r1", "acc", "clicks", 0.0, "ü/1", arms),
        Tally("d1", "hero", "conversion", "c1", "f2", "v1", day, "r1", "acc", "conversions", 3.0, "ü/1", arms),
        Tally("d1", "hero", "conversion", "c1", "f2", "v1", day, "r1", "acc", "conversions", 3.0, "ü/1", arms),
    ]
    mark = FeedbackMark("hero", "click", at + 5)

    async def kept(store: FeatureStore, times: int) -> tuple[Any, ...]:
        for _ in range(times):
            await store.keep_decisions([exposed, plain], DAY, impressions=True)
        outcomes = await store.count_feedback(tallies, DAY)
        await store.mark_feedback([("d1", mark)])
        joins = await store.joins(["d1", "d2", "gone"])
        totals = await store.arm_totals("exp é", "p1")
        await store.close()
        return outcomes, joins, totals

    on_redis = asyncio.run(kept(RedisStore(redis_url, prefix=redis_prefix), 2))
    in_memory = asyncio.run(kept(MemoryStore(), 1))
    assert on_redis == in_memory
    outcomes, joins, totals = on_redis
    assert [outcome.value for outcome in outcomes] == ["accepted", "accepted", "duplicate"]
    assert joins["d1"].experiments == exposed.experiments and joins["d1"].models == {"m": 0.25}
    assert joins["d1"].feedback == (mark,) and set(joins) == {"d1", "d2"}
    assert totals.total["B"] == {
        "impressions": 1,
        "clicks": 1,
        "conversions": 1,
        "value": 3.0,
        "converters": 1,
        "value_squares": 9.0,
    }
