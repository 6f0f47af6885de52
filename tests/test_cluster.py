"""Two ``tailor serve`` processes over a real Redis Cluster (three masters, three replicas).

The same events go to the cluster, through both servers, and to one Redis
through a third server. Then: every event and feedback item is counted once, after a server
was killed while a batch was on its way and after a master failed over
(senders retry whole batches, as they must when an answer is lost); the
decisions agree with the single Redis; a decision during a fail-over is
answered, never a 500; a decision is one script call on the nodes,
counted in ``INFO commandstats``; a user is exported and erased. Two
ingesters share a Stream: one killed with entries pending, a fail-over of the
Stream's master while the other ingests, every event counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis_process import private_redis
from server_process import KEY, Server, eventually, servers

from bench.local_cluster import LocalCluster
from tailor.compiler.features import ANY_KEY, FeatureKind, FeatureRef
from tailor.runtime.redis_store import RedisStore

pytestmark = pytest.mark.slow

RULES = Path(__file__).parent.parent / "rulesets" / "retail"
AUTH = {"Authorization": f"Bearer {KEY}"}
USERS = [f"shopper-{n}" for n in range(40)]
CATEGORIES = ["Electronics", "Garden", "Books", "Home & Garden"]
CONTEXT = {"page": "product", "category": "Electronics"}
DAY = 86400.0


def make_events(now: float) -> list[dict[str, Any]]:
    """About 400 events of 40 users, each with its id, from the last few hours."""
    rng = random.Random(18)
    events = []
    for n in range(400):
        user = rng.choice(USERS)
        kind = rng.choice(["view", "view", "view", "click", "add_to_cart"])
        key = rng.choice(CATEGORIES)
        events.append({"user_id": user, "type": kind, "key": key, "id": f"e{n}", "ts": now - rng.uniform(0, 5 * 3600)})
    return events


def batches(events: list[dict[str, Any]], size: int = 50) -> list[list[dict[str, Any]]]:
    """Batches that span users: each holds events of many users, so it is split over the nodes."""
    return [events[start : start + size] for start in range(0, len(events), size)]


def send(server: Server, batch: list[dict[str, Any]]) -> dict[str, int]:
    response = server.http.post("/v1/events", json={"events": batch}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def decisions(server: Server) -> dict[str, dict[str, Any]]:
    """Per user, what each slot shows (rule and content): what must agree between stores."""
    shown = {}
    for user in USERS:
        # Just after a fail-over, a decision may degrade while the client learns the new map of slots.
        answer = eventually(lambda u=user: _whole(server.decide(user_id=u, context=CONTEXT)), f"{user}'s decision")
        shown[user] = {slot: (s["rule"], s["content"]) for slot, s in answer["slots"].items()}
    return shown


def counts(url: str, cluster: bool) -> dict[tuple[str, str, str], int]:
    """Each user's 24-hour count per event type and category, read from the store."""
    refs = [
        FeatureRef(FeatureKind.COUNT, f'count("{kind}", "{key}", 24h)', kind, key, DAY)
        for kind in ("view", "click", "add_to_cart")
        for key in [*CATEGORIES, ANY_KEY]
    ]

    async def read() -> dict[tuple[str, str, str], int]:
        store = RedisStore(url, cluster=cluster)
        try:
            found = {}
            for user in USERS:
                values = await store.fetch(user, refs)
                for ref in refs:
                    found[user, ref.event, ref.key] = values[ref.text]
            return found
        finally:
            await store.close()

    return asyncio.run(read())


def expected_counts(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for user in USERS:
        for kind in ("view", "click", "add_to_cart"):
            for key in [*CATEGORIES, ANY_KEY]:
                found[user, kind, key] = sum(
                    1 for e in events if e["user_id"] == user and e["type"] == kind and key in (e["key"], ANY_KEY)
                )
    return found


def test_two_servers_over_a_cluster_count_once_agree_and_read_once(redis_cluster: LocalCluster, tmp_path: Path) -> None:
    redis_cluster.flush()
    now = time.time()
    events = make_events(now)
    first, second = batches(events[:200]), batches(events[200:])
    with private_redis(tmp_path / "single") as single, servers(tmp_path) as start:
        # Found by asking the node; forced with the flag; and one Redis, for comparison.
        a = start(RULES, "--redis", redis_cluster.url, "--decision-log", "off")
        b = start(RULES, "--redis", redis_cluster.url, "--redis-cluster")
        alone = start(RULES, "--redis", single.url)
        assert "Redis Cluster" in a.output() and "Redis Cluster" in b.output()
        for batch in batches(events):
            assert send(alone, batch)["accepted"] == len(batch)

        # The first half through both servers, then b is killed while a batch is on its way.
        for n, batch in enumerate(first):
            send(a if n % 2 else b, batch)
        lost = threading.Thread(target=lambda: _post_quietly(b.url, second[0]))
        lost.start()
        b.process.send_signal(signal.SIGKILL)
        lost.join()
        b.process.wait()
        # The sender does not know what was stored: it sends everything again, through a.
        for batch in first + second[:1]:
            send(a, batch)

        # A master fails over while decisions are asked for: each is answered, degraded at worst.
        answers: list[int] = []
        stop = threading.Event()

        def decide_meanwhile() -> None:
            with httpx.Client(base_url=a.url, timeout=10) as client:
                while not stop.is_set():
                    response = client.post(
                        "/v1/decide", json={"user_id": "shopper-1", "context": CONTEXT}, headers=AUTH
                    )
                    answers.append(response.status_code)

        deciding = threading.Thread(target=decide_meanwhile)
        deciding.start()
        try:
            eventually(lambda: len(answers) > 0, "decisions to be asked for")
            redis_cluster.fail_over()
            during = len(answers)
            eventually(lambda: len(answers) > during + 10, "decisions after the fail-over")
        finally:
            stop.set()
            deciding.join()
        assert set(answers) == {200}, answers

        # The rest after the fail-over, the last ones twice, through a second server started meanwhile.
        c = start(RULES, "--redis", redis_cluster.url, "--decision-log", "off")
        for n, batch in enumerate(second):
            send(c if n % 2 else a, batch)
        send(c, second[-1])

        expected = expected_counts(events)
        assert counts(redis_cluster.url, True) == expected
        assert counts(single.url, False) == expected
        assert decisions(a) == decisions(alone) == decisions(c)

        # Feedback through both servers, each item sent twice (a retry), counted once.
        shown = [c.decide(user_id=user, context=CONTEXT, slots=["sidebar"])["decision_id"] for user in USERS]
        items = [
            {"decision_id": decision, "slot": "sidebar", "type": kind, "id": f"{kind}-{decision}"}
            for decision in shown
            for kind in ("impression", "click")
        ]
        for server in (c, a):  # c first: it keeps its own decisions before it counts their feedback
            for start in range(0, len(items), 30):
                response = server.http.post("/v1/feedback", json={"items": items[start : start + 30]}, headers=AUTH)
                assert response.status_code == 200, response.text
        rows = [r for r in c.http.get("/v1/kpis", headers=AUTH).json()["rows"] if r["slot"] == "sidebar"]
        assert sum(r["impressions"] for r in rows) == len(USERS), rows
        assert sum(r["clicks"] for r in rows) == len(USERS), rows
        assert sum(r["decisions"] for r in rows) >= len(USERS), rows  # and every other decision on the cluster

        # One decision, one round trip: as the server counts its store calls (served decisions are kept for
        # feedback in the background, not counted), and on the nodes, for the store's reads alone.
        before = a.metric("tailor_store_round_trips_total")
        degraded = [a.decide(user_id=u, context=CONTEXT, slots=["sidebar", "cart_upsell"])["degraded"] for u in USERS]
        assert not any(degraded)
        assert a.metric("tailor_store_round_trips_total") == before + len(USERS)
        # An empty feedback batch first writes the decisions a has queued, so none is written meanwhile.
        assert a.http.post("/v1/feedback", json={"items": []}, headers=AUTH).status_code == 200
        redis_cluster.reset_stats()
        counts(redis_cluster.url, True)  # a fetch per user: 15 features of the user, one HMGET
        calls = redis_cluster.commands()
        assert calls.get("hmget", 0) == len(USERS), calls
        assert calls.get("evalsha", 0) + calls.get("eval", 0) == 0, calls  # no script without a consent gate

        # Export and erasure, slot by slot: the user's keys, join records and feedback ids on other masters.
        exported = a.http.get("/v1/users/shopper-1/export", headers=AUTH)
        assert exported.status_code == 200, exported.text
        store = exported.json()["store"]
        assert store["series"] and store["joins"] and store["feedback_ids"], store
        erased = a.http.delete("/v1/users/shopper-1", headers=AUTH)
        assert erased.status_code == 200, erased.text
        assert erased.json()["store"]["joins"] == len(store["joins"]), erased.text
        assert erased.json()["store"]["feedback_ids"] == len(store["feedback_ids"]), erased.text
        after = c.http.get("/v1/users/shopper-1/export", headers=AUTH).json()
        assert not any(after["store"].values()), after
        assert any(c.http.get("/v1/users/shopper-2/export", headers=AUTH).json()["store"].values())


def _whole(answer: dict[str, Any]) -> dict[str, Any] | None:
    return None if answer["degraded"] else answer


def _post_quietly(url: str, batch: list[dict[str, Any]]) -> None:
    """A batch whose server dies meanwhile: the answer (if any) is lost, as a sender would lose it."""
    with contextlib.suppress(httpx.TransportError):
        httpx.post(f"{url}/v1/events", json={"events": batch}, headers=AUTH, timeout=10)


def test_two_ingesters_over_a_cluster_store_every_event_once(redis_cluster: LocalCluster, tmp_path: Path) -> None:
    """Two ``tailor ingest`` processes share a Stream on the cluster. The first is killed while entries
    it read are pending (its writes held by the other masters until ``XPENDING`` shows them); the second
    claims them, and the master holding the Stream fails over while it ingests the rest, half of which is
    added after. Every event is counted once (ids make a second write a duplicate), every entry acked."""
    redis_cluster.flush()
    events = make_events(time.time())
    first, rest = events[: len(events) // 2], events[len(events) // 2 :]
    client = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    ingesters: list[subprocess.Popen[bytes]] = []
    args = ["--redis", redis_cluster.url, "--stream", "in", "--group", "tailor", "--min-idle", "1s", "--batch", "10"]

    def ingest(n: int) -> subprocess.Popen[bytes]:
        with (tmp_path / f"ingest-{n}.log").open("wb") as log:
            command = [sys.executable, "-m", "tailor.cli", "ingest", *args, "--consumer", f"c{n}"]
            ingesters.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        return ingesters[-1]

    def group() -> dict[str, Any]:
        found = client.xinfo_groups("in")
        return found[0] if found else {"entries-read": 0, "pending": 0}

    def pending(consumer: str) -> int:
        if not client.exists("in") or not client.xinfo_groups("in"):
            return 0  # the group is made by the first ingester
        return len(client.xpending_range("in", "tailor", min="-", max="+", count=1000, consumername=consumer))

    try:
        for event in first:
            client.xadd("in", {"event": json.dumps(event)})
        # The masters without the Stream hold writes (CLIENT PAUSE WRITE): the first ingester reads a
        # batch, and its events' scripts wait there, unacknowledged, until it is killed.
        stream_master = client.get_node_from_key("in").port
        others = [node for node in redis_cluster.masters() if node.port != stream_master]
        for node in others:
            node.client.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            killed = ingest(0)
            eventually(lambda: pending("c0") > 0, "the first ingester to hold entries unacknowledged")
            killed.kill()
            killed.wait()
        finally:
            for node in others:
                node.client.execute_command("CLIENT", "UNPAUSE")
        assert pending("c0") > 0

        survivor = ingest(1)
        redis_cluster.fail_over(stream_master)  # while the second ingester claims and stores
        for event in rest:
            client.xadd("in", {"event": json.dumps(event)})
        eventually(
            lambda: group()["entries-read"] == len(events) and int(group()["pending"]) == 0,
            "every entry to be read and acknowledged",
        )
        assert client.get_node_from_key("in").port != stream_master  # the Stream is on the new master
        assert survivor.poll() is None, (tmp_path / "ingest-1.log").read_text()
    finally:
        for process in ingesters:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        client.close()
    assert counts(redis_cluster.url, True) == expected_counts(events)
