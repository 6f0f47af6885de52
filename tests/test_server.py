"""The HTTP API over real HTTP semantics (TestClient), with the memory store and with Redis."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tailor.compiler.plan import PredicateStats
from tailor.runtime.http import create_app
from tailor.runtime.http.schemas import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    DecideResponse,
    EventsResponse,
    ExplainResponse,
    ProfileResponse,
    RulesetResponse,
    StatsResponse,
)
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.store import FeatureStore

with warnings.catch_warnings():  # the test client's own deprecation notice about its HTTP library
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHOP = """\
ruleset shop

content vip = {"id": "vip"}
content fan = {"id": "fan", "items": [1, 2]}
content home = {"id": "home"}
content generic = {"id": "generic"}
content side = {"id": "side"}

rule vip_banner
  when user.tier == "gold"
  then show vip in hero
  priority 30

rule electronics_fan
  when views("Electronics", 24h) > 2
  then show fan in hero
  priority 20

rule home_page
  when context.page == "home"
  then show home in hero
  priority 10

default show generic in hero

rule product_side
  when context.page == "product"
  then show side in sidebar
"""

KEY = "s3cret-key"
StoreFactory = Callable[..., FeatureStore]


def store_class(kind: str) -> type[FeatureStore]:
    return MemoryStore if kind == "memory" else RedisStore


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """Builds a store of the parametrized kind, optionally of a subclass (a slow or failing one)."""
    if request.param == "memory":
        return lambda cls=MemoryStore: cls()
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda cls=RedisStore: cls(url, prefix=prefix)


@pytest.fixture
def ruleset_dir(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    return root


def serve(
    root: Path, store: FeatureStore, *, deadline_ms: float = 50.0, sample_every: int = 16, **options: Any
) -> TestClient:
    service = DecisionService(root, store, deadline_ms=deadline_ms, sample_every=sample_every)
    service.open()
    return TestClient(create_app(service, watch=False, **options))


@pytest.fixture
def client(ruleset_dir: Path, make_store: StoreFactory) -> Iterator[TestClient]:
    with serve(ruleset_dir, make_store()) as client:
        yield client


def decide(client: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("user_id", "u1")
    response = client.post("/v1/decide", json=body)
    assert response.status_code == 200, response.text
    return DecideResponse.model_validate(response.json()).model_dump()


def hero(client: TestClient, **body: Any) -> str | None:
    slot = decide(client, **body)["slots"]["hero"]
    return slot["content"] if slot else None


def views(client: TestClient, user: str, n: int, ts: float | None = None, **extra: Any) -> dict[str, Any]:
    events = [{"user_id": user, "type": "view", "key": "Electronics", "ts": ts, **extra} for _ in range(n)]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    return EventsResponse.model_validate(response.json()).model_dump()


# --- decisions ---


def test_decide_shape(client: TestClient) -> None:
    response = client.post("/v1/decide", json={"user_id": "u1", "context": {"page": "home"}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"decision_id", "ruleset", "slots", "degraded"}
    assert body["ruleset"] == {"name": "shop", "version": client.get("/v1/ruleset").json()["version"]}
    assert body["slots"] == {
        "hero": {"content": "home", "payload": {"id": "home"}, "rule": "home_page"},
        "sidebar": None,
    }
    assert body["degraded"] is False
    other = client.post("/v1/decide", json={"user_id": "u1"}).json()
    assert other["decision_id"] != body["decision_id"]
    assert other["slots"]["hero"] == {"content": "generic", "payload": {"id": "generic"}, "rule": None}


def test_explain_shape(client: TestClient) -> None:
    response = client.post("/v1/explain", json={"user_id": "u1", "context": {"page": "home"}})
    assert response.status_code == 200
    body = ExplainResponse.model_validate(response.json()).model_dump()
    assert body["slots"]["hero"]["content"] == "home"
    trace = body["explain"]["slots"]["hero"]
    assert trace["served"] == "rule"
    assert [(c["rule"], c["won"]) for c in trace["candidates"]] == [
        ("vip_banner", False),
        ("electronics_fan", False),
        ("home_page", True),
    ]
    assert trace["candidates"][0]["reason"] == 'user.tier is unknown, needed == "gold"'
    assert trace["candidates"][0]["file"].endswith("shop.rules")
    assert set(body["explain"]["fetched"]) == {"user.tier", 'views("Electronics", 24h)'}
    assert body["explain"]["values"]['views("Electronics", 24h)'] == 0


def test_features_override_the_store(client: TestClient) -> None:
    assert hero(client, features={"user.tier": "gold"}) == "vip"
    assert client.put("/v1/users/u1", json={"attributes": {"tier": "gold"}}).status_code == 200
    assert hero(client) == "vip"
    assert hero(client, features={"user.tier": "silver"}) == "generic"
    assert hero(client, features={"user.tier": 5}) == "generic"  # a value of the wrong type is unknown
    assert hero(client, features={'views("Electronics", 24h)': 3, "user.tier": None}) == "fan"


@pytest.mark.parametrize(
    "key",
    [
        'views("Electronics",24h)',
        'views( "Electronics" , 24h )',
        'views("Electronics", 1d)',
        'views("Electronics", 1440m)',
        'count("view", "Electronics", 24h)',
    ],
)
def test_feature_keys_are_read_as_the_rules_write_them(client: TestClient, key: str) -> None:
    """A key written by hand names the feature the rules name: spacing, window units and shorthands aside."""
    body = decide(client, features={key: 3})
    assert body["slots"]["hero"]["content"] == "fan"
    assert "ignored_features" not in client.post("/v1/decide", json={"user_id": "u1", "features": {key: 3}}).json()
    explained = client.post("/v1/explain", json={"user_id": "u1", "features": {key: 3}}).json()
    assert explained["explain"]["values"]['views("Electronics", 24h)'] == 3


def test_features_the_ruleset_does_not_read_are_listed(client: TestClient) -> None:
    features = {"user.tier": "gold", "user.country": "FR", "views(7d)": 2, "context.page": "home", "p_click": 0.9}
    for path in ("/v1/decide", "/v1/explain"):
        body = client.post(path, json={"user_id": "u1", "features": features}).json()
        assert body["ignored_features"] == ["user.country", "views(7d)", "context.page", "p_click"], path
        assert body["slots"]["hero"]["content"] == "vip"  # context attributes come from the context
    assert "ignored_features" not in client.post("/v1/decide", json={"user_id": "u1", "features": {}}).json()


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("views(24)", "the window of views() must be a duration, not 24 (did you mean 24h or 24d?)"),
        ("views(", "unexpected end of input after '('"),
        ("user.tier == 1", "not a feature (a feature is a function call like"),
        ("wiews(24h)", "unknown function 'wiews' (did you mean 'views'?)"),
        ("profile.tier", "unknown attribute scope 'profile'"),
    ],
)
def test_a_key_that_is_no_feature_is_422(client: TestClient, key: str, why: str) -> None:
    for path in ("/v1/decide", "/v1/explain"):
        response = client.post(path, json={"user_id": "u1", "features": {"user.tier": "gold", key: 1}})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["detail"].startswith(f"features.{key} (the key): {why}"), body
        assert body["errors"] == [body["detail"]]


def test_one_feature_supplied_twice_is_422(client: TestClient) -> None:
    features = {'views("Electronics", 24h)': 3, 'views("Electronics", 1d)': 4}
    response = client.post("/v1/decide", json={"user_id": "u1", "features": features})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        'features.views("Electronics", 1d) (the key): names the same value as views("Electronics", 24h); give it once'
    )


def stored(accepted: int, duplicates: int = 0) -> dict[str, int]:
    """What POST /v1/events answers for a batch with no conflicts, nothing expired and nothing dropped."""
    return {"accepted": accepted, "duplicates": duplicates, "conflicts": 0, "expired": 0, "dropped_no_consent": 0}


def test_events_change_decisions_and_are_deduplicated(client: TestClient) -> None:
    assert hero(client, user_id="v") == "generic"
    assert views(client, "v", 2) == stored(2, duplicates=0)
    assert hero(client, user_id="v") == "generic"
    assert views(client, "v", 1, id="e-1") == stored(1, duplicates=0)
    assert hero(client, user_id="v") == "fan"
    assert views(client, "v", 1, id="e-1") == stored(0, duplicates=1)
    assert hero(client, user_id="other") == "generic"


def test_at_replays_the_past(client: TestClient) -> None:
    now = time.time()
    views(client, "r", 3, ts=now - 60)
    assert hero(client, user_id="r") == "fan"
    assert hero(client, user_id="r", at=now) == "fan"
    assert hero(client, user_id="r", at=now - 3 * 86400) == "generic"  # before they happened


def test_expired_and_future_events(client: TestClient) -> None:
    assert views(client, "x", 1, ts=time.time() - 90 * 86400) == {
        "accepted": 0,
        "duplicates": 0,
        "conflicts": 0,
        "expired": 1,
        "dropped_no_consent": 0,
    }
    response = client.post(
        "/v1/events",
        json={"events": [{"user_id": "x", "type": "view"}, {"user_id": "x", "type": "view", "ts": time.time() + 3600}]},
    )
    assert response.status_code == 422
    assert "future" in response.json()["detail"]
    assert views(client, "x", 0) == stored(0, duplicates=0)
    assert hero(client, user_id="x", features={}) == "generic"  # nothing of the rejected batch was stored


def test_unknown_slots_are_null(client: TestClient) -> None:
    body = decide(client, slots=["hero", "nope"], context={"page": "home"})
    assert body["slots"] == {"hero": {"content": "home", "payload": {"id": "home"}, "rule": "home_page"}, "nope": None}
    assert decide(client, slots=[])["slots"] == {}


def test_profile_upsert_and_delete(client: TestClient) -> None:
    response = client.put("/v1/users/p%2F1", json={"attributes": {"tier": "gold", "country": "FR", "tags": ["a"]}})
    assert response.status_code == 200
    assert ProfileResponse.model_validate(response.json()).model_dump() == {
        "user_id": "p/1",
        "updated": 3,
        "deleted": 0,
    }
    assert hero(client, user_id="p/1") == "vip"
    response = client.put("/v1/users/p%2F1", json={"attributes": {"tier": None}})
    assert response.json() == {"user_id": "p/1", "updated": 0, "deleted": 1}
    assert hero(client, user_id="p/1") == "generic"


# --- the ruleset ---


def test_ruleset_endpoint(client: TestClient) -> None:
    response = client.get("/v1/ruleset")
    assert response.status_code == 200
    body = RulesetResponse.model_validate(response.json()).model_dump()
    assert body["name"] == "shop"
    assert len(body["version"]) == 16
    assert body["files"] == ["shop.rules"]  # relative to the ruleset's root, wherever the server runs
    assert isinstance(body["loaded_at"], datetime)
    assert body["rules"][0] == {
        "name": "vip_banner",
        "slot": "hero",
        "priority": 30,
        "content": "vip",
        "file": body["files"][0],
        "line": 9,
    }
    assert [r["name"] for r in body["rules"]] == ["vip_banner", "electronics_fan", "home_page", "product_side"]
    assert body["last_error"] is None
    assert body["previous"] == []


def test_rollback(ruleset_dir: Path, make_store: StoreFactory) -> None:
    service = DecisionService(ruleset_dir, make_store())
    service.open()
    with TestClient(create_app(service, watch=False)) as client:
        assert client.post("/v1/ruleset/rollback").status_code == 409
        first = client.get("/v1/ruleset").json()["version"]
        (ruleset_dir / "shop.rules").write_text(SHOP.replace("priority 30", "priority 5"))
        assert service.install(service.prepare())
        second = client.get("/v1/ruleset").json()
        assert second["version"] != first
        assert [p["version"] for p in second["previous"]] == [first]
        assert hero(client, features={"user.tier": "gold"}, context={"page": "home"}) == "home"
        response = client.post("/v1/ruleset/rollback")
        assert response.status_code == 200
        assert response.json()["version"] == first
        assert response.json()["previous"] == []
        assert decide(client)["ruleset"]["version"] == first
        assert hero(client, features={"user.tier": "gold"}, context={"page": "home"}) == "vip"
        assert client.post("/v1/ruleset/rollback").status_code == 409


def test_a_failed_reload_keeps_serving_and_reports(ruleset_dir: Path) -> None:
    service = DecisionService(ruleset_dir, MemoryStore())
    service.open()
    from tailor.dsl.diagnostics import RulesError

    (ruleset_dir / "shop.rules").write_text(SHOP + "rule broken when views(24h) > then show vip in hero\n")
    with pytest.raises(RulesError) as raised:
        service.prepare()
    service.failed(raised.value.diagnostics)
    with TestClient(create_app(service, watch=False)) as client:
        body = client.get("/v1/ruleset").json()
        assert body["version"] == decide(client)["ruleset"]["version"]
        (problem,) = body["last_error"]
        assert problem["severity"] == "error"
        assert problem["file"] == "shop.rules"
        assert problem["line"] == SHOP.count("\n") + 1


def test_no_answer_shows_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are named relative to the ruleset's root: not where the server was started, not the machine's layout."""
    from tailor.dsl.diagnostics import Related, error

    root = tmp_path / "deploy" / "shop"
    (root / "pages").mkdir(parents=True)
    (root / "pages" / "shop.rules").write_text(SHOP)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the compiler names files relative to here, or absolute: outside, absolute
    service = DecisionService(root, MemoryStore())
    service.open()
    gone = root / "pages" / "gone.rules"
    where = Related("declared here", None, str(root / "pages" / "shop.rules"), 9, 1)
    service.failed([error(f"cannot read {gone}: vanished", None, file_name=str(gone), related=[where])])
    with TestClient(create_app(service, watch=False)) as client:
        status = client.get("/v1/ruleset").text
        explained = client.post("/v1/explain", json={"user_id": "u", "context": {"page": "home"}}).text
        for answer in (status, explained, client.post("/v1/decide", json={"user_id": "u"}).text):
            assert str(tmp_path) not in answer
        body = client.get("/v1/ruleset").json()
        assert body["files"] == ["pages/shop.rules"]
        assert {rule["file"] for rule in body["rules"]} == {"pages/shop.rules"}
        (problem,) = body["last_error"]
        assert problem["file"] == "pages/gone.rules"
        assert problem["message"] == "cannot read pages/gone.rules: vanished"
        assert problem["related"][0]["file"] == "pages/shop.rules"
        candidates = client.post("/v1/explain", json={"user_id": "u"}).json()["explain"]["slots"]["hero"]["candidates"]
        assert {c["file"] for c in candidates} == {"pages/shop.rules"}


def test_a_single_file_is_named_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    with serve(tmp_path / "shop.rules", MemoryStore()) as client:
        assert client.get("/v1/ruleset").json()["files"] == ["shop.rules"]


# --- numbers JSON cannot hold ---

TOTALS = """\
ruleset totals

content big = {"id": "big"}
content small = {"id": "small"}

rule big_spender
  when total("purchase", "any", 30d) > 500
  then show big in hero

default show small in hero
"""


def test_explain_names_an_infinite_total(tmp_path: Path) -> None:
    """A total past the largest float is infinite: explain says "inf", not null, which means unknown."""
    (tmp_path / "totals.rules").write_text(TOTALS)
    with serve(tmp_path, MemoryStore()) as client:
        for user, value in (("rich", 1e308), ("owing", -1e308)):
            batch = [{"user_id": user, "type": "purchase", "value": value}] * 2
            assert client.post("/v1/events", json={"events": batch}).status_code == 200
        total = 'total("purchase", "any", 30d)'
        rich = client.post("/v1/explain", json={"user_id": "rich"}).json()
        assert rich["explain"]["values"][total] == "inf"
        assert rich["slots"]["hero"]["content"] == "big"
        ExplainResponse.model_validate(rich)
        owing = client.post("/v1/explain", json={"user_id": "owing"}).json()
        assert owing["explain"]["values"][total] == "-inf"
        nobody = client.post("/v1/explain", json={"user_id": "nobody"}).json()
        assert nobody["explain"]["values"][total] == 0
        supplied = client.post("/v1/explain", json={"user_id": "x", "features": {"user.tier": None}}).json()
        assert supplied["ignored_features"] == ["user.tier"]


def test_model_inputs_keep_null_for_unknown() -> None:
    from tailor.runtime.http.explain_json import explanation_json
    from tailor.runtime.ruleset_root import RulesetRoot

    explain = {
        "slots": {},
        "fetched": [],
        "models": {"m": float("nan")},
        "model_inputs": {"m": {"a": float("nan"), "b": float("inf"), "c": 2.0}},
        "values": {"t": float("-inf"), "l": [1.0, float("inf")], "u": None},
    }
    sent = explanation_json(explain, RulesetRoot.of("."))
    assert sent["models"] == {"m": "nan"}
    assert sent["values"] == {"t": "-inf", "l": [1.0, "inf"], "u": None}
    inputs = sent["model_inputs"]["m"]
    assert inputs["a"] != inputs["a"] and (inputs["b"], inputs["c"]) == ("inf", 2.0)  # NaN is written as null


# --- operations ---


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready) == {"status", "reload_check_age_seconds"}
    hero(client, features={"user.tier": "gold"})
    hero(client, context={"page": "home"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'tailor_decisions_total{rule="vip_banner",slot="hero"} 1.0' in text
    assert 'tailor_decisions_total{rule="(nothing)",slot="sidebar"} 2.0' in text
    for stage in ("plan", "fetch", "finish", "total"):
        assert f'tailor_decision_seconds_count{{stage="{stage}"}}' in text
    assert 'tailor_decision_seconds_count{stage="total"} 2.0' in text
    assert "tailor_store_round_trips_total" in text
    assert 'tailor_degraded_decisions_total{reason="timeout"} 0.0' in text
    assert 'tailor_reloads_total{outcome="failed"} 0.0' in text
    assert "# TYPE tailor_model_calls_total counter" in text
    assert 'tailor_ruleset{name="shop",version="' in text


class _Unreachable(MemoryStore):
    async def ping(self) -> bool:
        return False


def test_readyz_fails_when_the_store_does_not_answer(ruleset_dir: Path) -> None:
    with serve(ruleset_dir, _Unreachable()) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"detail": "the feature store does not answer"}
        assert client.get("/healthz").status_code == 200


def test_statistics_are_sampled(ruleset_dir: Path) -> None:
    with serve(ruleset_dir, MemoryStore(), sample_every=1) as client:
        assert client.get("/v1/stats").json() == {"predicates": {}}
        for page in ("home", "product", "home"):
            hero(client, context={"page": page}, features={"user.tier": "gold"})
        body = StatsResponse.model_validate(client.get("/v1/stats").json()).model_dump()
        assert body["predicates"]['context.page == "home"'] == {"evaluated": 3, "held": 2}
        assert body["predicates"]['user.tier == "gold"'] == {"evaluated": 3, "held": 3}


def test_statistics_file_feeds_the_compiler(ruleset_dir: Path, tmp_path: Path) -> None:
    with serve(ruleset_dir, MemoryStore(), sample_every=2) as client:
        for _ in range(10):
            hero(client, context={"page": "home"})
        data = client.get("/v1/stats").json()
    assert data["predicates"]['context.page == "home"'] == {"evaluated": 5, "held": 5}
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(data))
    assert PredicateStats.load(path).counts['context.page == "home"'] == (5, 5)


# --- security ---

AUTH = {"Authorization": f"Bearer {KEY}"}
GUARDED = [
    ("POST", "/v1/decide", {"user_id": "u"}),
    ("POST", "/v1/explain", {"user_id": "u"}),
    ("POST", "/v1/events", {"events": [{"user_id": "u", "type": "view"}]}),
    ("PUT", "/v1/users/u", {"attributes": {}}),
    ("GET", "/v1/ruleset", None),
    ("POST", "/v1/ruleset/rollback", None),
    ("GET", "/v1/stats", None),
]
OPEN = ("/healthz", "/readyz", "/metrics")


def test_an_api_key_guards_every_endpoint_but_the_probes(ruleset_dir: Path) -> None:
    """Explanations hold a user's totals and recency, the ruleset its files: none of it without the key."""
    with serve(ruleset_dir, MemoryStore(), api_key=KEY) as client:
        for method, path, body in GUARDED:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == {"detail": "a valid API key is required"}
            expected = 409 if path == "/v1/ruleset/rollback" else 200
            assert client.request(method, path, json=body, headers=AUTH).status_code == expected, path
        for path in OPEN:
            assert client.get(path).status_code == 200


def test_public_decisions_opens_decide_alone(ruleset_dir: Path) -> None:
    with serve(ruleset_dir, MemoryStore(), api_key=KEY, public_decisions=True) as client:
        assert client.post("/v1/decide", json={"user_id": "u"}).status_code == 200
        for method, path, body in GUARDED[1:]:
            assert client.request(method, path, json=body).status_code == 401, path
        assert client.post("/v1/explain", json={"user_id": "u"}, headers=AUTH).status_code == 200
        for path in OPEN:
            assert client.get(path).status_code == 200


def test_without_a_key_nothing_is_guarded(client: TestClient) -> None:
    for method, path, body in GUARDED:
        assert client.request(method, path, json=body).status_code in (200, 409), path
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_an_empty_key_is_refused(ruleset_dir: Path) -> None:
    """An empty secret must not mean "no authentication"."""
    service = DecisionService(ruleset_dir, MemoryStore())
    service.open()
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="empty"):
            create_app(service, watch=False, api_key=empty)


@pytest.mark.parametrize("public_decisions", [False, True])
def test_the_schema_says_which_endpoints_need_the_key(ruleset_dir: Path, public_decisions: bool) -> None:
    with serve(ruleset_dir, MemoryStore(), api_key=KEY, public_decisions=public_decisions) as client:
        schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path, _ in GUARDED:
        operation = schema["paths"][path.replace("/users/u", "/users/{user_id}")][method.lower()]
        if public_decisions and path == "/v1/decide":
            assert "security" not in operation and "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"HTTPBearer": []}], path
            assert "401" in operation["responses"], path
    for path in OPEN:
        assert "security" not in schema["paths"][path]["get"]


# --- bad input ---


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "user_id: Field required"),
        ({"user_id": 5}, "user_id: Input should be a valid string"),
        ({"user_id": ""}, "user_id: String should have at least 1 character"),
        ({"user_id": "u" * 257}, "user_id: String should have at most 256 characters"),
        ({"user_id": "u", "context": []}, "context: Input should be a valid dictionary"),
        ({"user_id": "u", "context": {"page": {"a": 1}}}, "context.page: expected a string, a number, true, false"),
        ({"user_id": "u", "context": {f"k{i}": i for i in range(257)}}, "context: Dictionary should have at most 256"),
        ({"user_id": "u", "slots": "hero"}, "slots: Input should be a valid list"),
        ({"user_id": "u", "slots": ["s"] * 65}, "slots: List should have at most 64 items"),
        ({"user_id": "u", "features": {"user.tier": 2**70}}, "features.user.tier: integers must fit in 64 bits"),
        ({"user_id": "u", "at": "yesterday"}, "at: Input should be a valid number"),
        ({"user_id": "u", "at": -1}, "at: Input should be greater than or equal to 0"),
        ({"user_id": "u", "contxt": {}}, "contxt: Extra inputs are not permitted"),
    ],
)
def test_bad_decide_bodies_are_422(ruleset_dir: Path, body: dict[str, Any], message: str) -> None:
    with serve(ruleset_dir, MemoryStore()) as client:
        for path in ("/v1/decide", "/v1/explain"):
            response = client.post(path, json=body)
            assert response.status_code == 422, response.text
            data = response.json()
            assert any(line.startswith(message) for line in data["errors"]), data
            assert data["detail"].startswith(message)


def test_bad_bodies_elsewhere(client: TestClient) -> None:
    too_many = {"events": [{"user_id": "u", "type": "view"}] * (MAX_EVENTS + 1)}
    response = client.post("/v1/events", json=too_many)
    assert response.status_code == 422
    assert response.json()["detail"] == "events: List should have at most 1000 items after validation, not 1001"
    response = client.post("/v1/events", json={"events": [{"user_id": "u", "type": "view", "value": "many"}]})
    assert response.json()["errors"] == ["events[0].value: Input should be a valid number"]
    assert client.post("/v1/events", json={"events": [{"type": "view"}]}).status_code == 422
    assert client.put("/v1/users/u", json={"attributes": {"a": {"b": 1}}}).status_code == 422
    assert client.put("/v1/users/u", json={}).json()["detail"] == "attributes: Field required"
    assert client.put("/v1/users/" + "u" * 257, json={"attributes": {}}).status_code == 422
    response = client.post("/v1/decide", content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the body is not valid JSON")
    response = client.post("/v1/decide", content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    response = client.post(
        "/v1/decide", content=b'{"user_id": "u", "at": NaN}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/decide").status_code == 405


def test_huge_bodies_are_413(client: TestClient) -> None:
    huge = json.dumps({"user_id": "u", "context": {"blob": "x" * MAX_BODY_BYTES}})
    response = client.post("/v1/decide", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": f"the request body is larger than {MAX_BODY_BYTES} bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"user_id": "u", "context": {"blob": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = client.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


# --- degradation ---


def slow(base: type[FeatureStore]) -> type[FeatureStore]:
    class Slow(base):  # type: ignore[valid-type, misc]
        async def fetch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            await asyncio.sleep(1.0)
            return await super().fetch(*args, **kwargs)

    return Slow


def failing(base: type[FeatureStore]) -> type[FeatureStore]:
    class Failing(base):  # type: ignore[valid-type, misc]
        async def fetch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ConnectionError("the store is down")

    return Failing


@pytest.mark.parametrize(("wrap", "reason"), [(slow, "timeout"), (failing, "error")])
def test_degraded_decisions(
    ruleset_dir: Path, make_store: StoreFactory, request: pytest.FixtureRequest, wrap: Callable, reason: str
) -> None:
    kind = request.node.callspec.params["make_store"]
    with serve(ruleset_dir, make_store(wrap(store_class(kind))), deadline_ms=20) as client:
        assert client.put("/v1/users/u", json={"attributes": {"tier": "gold"}}).status_code == 200
        body = decide(client, user_id="u", context={"page": "home"})
        assert body["degraded"] is True
        # the store's rules cannot fire; the context rule and the default still do
        assert body["slots"]["hero"]["content"] == "home"
        assert hero(client, user_id="u") == "generic"
        # values the request supplies need no store: not degraded
        full = decide(client, user_id="u", features={"user.tier": "gold", 'views("Electronics", 24h)': 0})
        assert full["degraded"] is False
        assert full["slots"]["hero"]["content"] == "vip"
        explained = client.post("/v1/explain", json={"user_id": "u"}).json()
        assert explained["degraded"] is True
        assert explained["explain"]["values"]["user.tier"] is None
        metrics = client.get("/metrics").text
        assert f'tailor_degraded_decisions_total{{reason="{reason}"}} 3.0' in metrics


# --- the schema ---


def test_openapi_schema_is_complete(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        ("/v1/decide", "post"): "DecideResponse",
        ("/v1/explain", "post"): "ExplainResponse",
        ("/v1/events", "post"): "EventsResponse",
        ("/v1/users/{user_id}", "put"): "ProfileResponse",
        ("/v1/ruleset", "get"): "RulesetResponse",
        ("/v1/ruleset/rollback", "post"): "RulesetResponse",
        ("/v1/stats", "get"): "StatsResponse",
        ("/healthz", "get"): "Status",
        ("/readyz", "get"): "Status",
    }
    for (path, method), model in expected.items():
        responses = paths[path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + model)
        for code, response in responses.items():
            if code != "200":
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # 422s are ErrorResponse, as sent
    decide_body = schema["components"]["schemas"]["DecideRequest"]
    assert decide_body["properties"]["slots"]["anyOf"][0]["maxItems"] == 64
    assert decide_body["properties"]["user_id"]["maxLength"] == 256
    assert "413" in paths["/v1/decide"]["post"]["responses"]
    assert "409" in paths["/v1/ruleset/rollback"]["post"]["responses"]
    for response in ("DecideResponse", "ExplainResponse"):
        ignored = schema["components"]["schemas"][response]["properties"]["ignored_features"]
        assert ignored["items"] == {"type": "string"} and "ignored_features" not in schema["components"]["schemas"][
            response
        ].get("required", [])
