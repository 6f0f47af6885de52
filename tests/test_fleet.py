"""The fleet's heartbeats: each server process says which versions it serves, and GET /v1/ruleset on any
of them says whether they agree. Two real server processes over one Redis in the slow pass."""

from __future__ import annotations

import asyncio
import shutil
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from server_process import eventually, servers

from tailor.runtime.fleet import Fleet, Member
from tailor.runtime.http import create_app
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.status import RulesetStatus

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def member(process: str, version: str = "v1", models: dict[str, str] | None = None, age: float = 0.0) -> Member:
    models = {"p_click": "m1"} if models is None else models
    return Member(process, "retail", version, models, NOW - timedelta(seconds=age), 5.0)


def test_the_fleet_agrees_when_every_process_serves_the_same_rules_and_models() -> None:
    me = member("a")
    assert Fleet.of(me, [member("b"), member("a", "stale-self")]).agrees
    assert [m.process for m in Fleet.of(me, [member("c"), member("b")]).processes] == ["a", "b", "c"]
    assert not Fleet.of(me, [member("b", "v2")]).agrees
    assert not Fleet.of(me, [member("b", models={"p_click": "m2"})]).agrees
    alone = Fleet.of(me, [])
    assert alone.agrees and alone.processes == (me,)
    assert Fleet.from_dict(Fleet.of(me, [member("b", "v2")]).to_dict()) == Fleet.of(me, [member("b", "v2")])


def test_redis_keeps_one_heartbeat_per_process_and_drops_the_stale(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store = RedisStore(redis_url, prefix=redis_prefix)
        now = time.time()
        fresh = Member("a", "retail", "v1", {}, datetime.fromtimestamp(now - 20, UTC), 10.0)  # 2 beats missed
        old = Member("b", "retail", "v0", {}, datetime.fromtimestamp(now - 20, UTC), 5.0)  # 4 beats missed
        await store.beat(fresh)
        await store.beat(old)
        assert await store.fleet(now) == [fresh]
        assert await store.fleet(now - 1000) == [fresh]  # the stale one was deleted by the read before
        await store.leave("a")
        assert await store.fleet(now) == []
        await store.close()

    asyncio.run(main())


def test_the_ruleset_says_the_fleet_of_a_memory_store_is_this_process() -> None:
    service = DecisionService(RETAIL, MemoryStore())
    service.open()
    with TestClient(create_app(service, watch=False)) as client:
        body = client.get("/v1/ruleset").json()
        scraped = client.get("/metrics").text.splitlines()
    assert "tailor_fleet_processes 1.0" in scraped
    assert "tailor_fleet_agrees 1.0" in scraped
    fleet = body["fleet"]
    assert fleet["agrees"] is True
    assert [p["process"] for p in fleet["processes"]] == [service.process]
    assert fleet["processes"][0]["version"] == body["version"]
    assert fleet["processes"][0]["models"] == {"p_click": service.current.ruleset.models["p_click"].version}
    assert RulesetStatus.from_dict(body).to_dict() == body


@pytest.mark.slow
def test_two_servers_over_one_redis_share_scores_and_see_each_others_versions(tmp_path: Path, redis_url: str) -> None:
    """Both serve one copy of the rules (a version names the rules' path too); a rollback changes one alone."""
    rules = tmp_path / "retail"
    shutil.copytree(RETAIL, rules)
    args = ("--redis", redis_url, "--prediction-cache", "store", "--heartbeat", "0.5", "--settle-ms", "50")
    with servers(tmp_path) as start:
        first, second = start(rules, *args), start(rules, *args)
        # Both processes tell the same, whichever is asked, once each has written its heartbeat.
        for server in (first, second):
            fleet = eventually(lambda s=server: _fleet(s, size=2), "two processes in the fleet")
            assert fleet["agrees"] is True

        # One process computes a score; the other takes it from the store. (Inputs such as the seconds since
        # the last view change from one moment to the next: those are left unknown here.)
        fan = {'views("Electronics", 24h)': 5, 'views("Electronics", 7d)': 9, "user.tier": "bronze"}
        body = {"context": {"page": "home", "device": "mobile"}, "features": fan}
        first.decide(user_id="fan", **body)
        assert _predictions(first) == {"computed": 1, "cache": 0}
        written = redis.Redis.from_url(redis_url)
        eventually(lambda: written.exists("tailor:{fan}:m"), "the score to be written to the store")
        written.close()
        second.decide(user_id="fan", **body)
        assert _predictions(second) == {"computed": 0, "cache": 1}

        # An edit reloads both: they agree on the new version.
        home = rules / "home.rules"
        home.write_text(home.read_text() + "\n# the same rules, another version\n")
        for server in (first, second):
            eventually(lambda s=server: len(s.ruleset()["previous"]) == 1, "the edit to be served")
            eventually(lambda s=server: _fleet(s, size=2, agrees=True), "the fleet to agree on the edit")
        # A rollback on one process makes the fleet disagree, on either; the other's makes it agree again.
        for server, agrees in ((first, False), (second, True)):
            assert server.http.post("/v1/ruleset/rollback", headers=server.auth).status_code == 200
            for asked in (first, second):
                eventually(lambda s=asked, a=agrees: _fleet(s, size=2, agrees=a), f"agrees to be {agrees}")
                assert asked.metric("tailor_fleet_agrees") == float(agrees)
                assert asked.metric("tailor_fleet_processes") == 2.0
        versions = {p["version"] for p in first.ruleset()["fleet"]["processes"]}
        assert versions == {first.ruleset()["version"]} == {second.ruleset()["version"]}


def _fleet(server, size: int, agrees: bool | None = None) -> dict | None:
    fleet = server.ruleset()["fleet"]
    if fleet is None or len(fleet["processes"]) != size:
        return None
    if agrees is not None and fleet["agrees"] is not agrees:
        return None
    return fleet


def _predictions(server) -> dict[str, float]:
    found = {}
    for line in server.http.get("/metrics").text.splitlines():
        if line.startswith("tailor_model_predictions_total{"):
            found[line.split('"')[1]] = float(line.split()[-1])
    return found
