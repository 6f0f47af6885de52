"""No request makes the API answer 5xx.

Hypothesis sends arbitrary JSON (and bytes) to every endpoint, and bodies
shaped like each endpoint's model whose fields hold anything from valid
values to the wrong types, huge numbers, NaN and deep nesting. Every answer
must be below 500, and every 200 must match the response model the OpenAPI
schema documents.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tailor.runtime.http import create_app
from tailor.runtime.http.schemas import (
    DecideResponse,
    EventsResponse,
    ExplainResponse,
    ProfileResponse,
    RulesetResponse,
    StatsResponse,
)
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

with warnings.catch_warnings():  # the test client's own deprecation notice about its HTTP library
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = time.time()

ENDPOINTS = [
    ("POST", "/v1/decide"),
    ("POST", "/v1/explain"),
    ("POST", "/v1/events"),
    ("PUT", "/v1/users/fuzz"),
    ("GET", "/v1/ruleset"),
    ("POST", "/v1/ruleset/rollback"),
    ("GET", "/v1/stats"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
MODELS: dict[str, type[BaseModel]] = {
    "/v1/decide": DecideResponse,
    "/v1/explain": ExplainResponse,
    "/v1/events": EventsResponse,
    "/v1/ruleset": RulesetResponse,
    "/v1/ruleset/rollback": RulesetResponse,
    "/v1/stats": StatsResponse,
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    service = DecisionService(RETAIL, MemoryStore(), sample_every=1)  # every decision feeds the statistics
    service.open()
    with TestClient(create_app(service, watch=False), raise_server_exceptions=True) as client:
        client.app_state = service  # type: ignore[attr-defined]
        yield client


FEATURES = sorted(
    DecisionService(RETAIL, MemoryStore()).prepare().ruleset.plan.features  # user.tier, views(...), p_click, ...
)

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1]),
    st.floats(),  # NaN and the infinities are written as the tokens the standard library accepts
)
long_text = st.sampled_from([4096, 4097]).map(lambda n: "x" * n)  # the longest allowed, and one more
wild_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12), long_text)
json_values = st.recursive(
    wild_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["gold", "platinum", "home", "product", "Electronics", "x" * 4096]),
)


@st.composite
def corrupted(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], odds: int = 3) -> dict[str, Any]:
    """A valid body; one time in ``odds``, one field (or one value inside it) replaced by anything at all.

    Corrupting at most one place keeps most bodies valid, so the engine behind
    the validation is fuzzed too, not only the validation.
    """
    body = draw(valid)
    if draw(st.sampled_from([False] * (odds - 1) + [True])):
        key = draw(st.sampled_from([*body, "unexpected"]))
        inner = body.get(key)
        if isinstance(inner, dict) and inner and draw(st.booleans()):
            inner[draw(st.sampled_from(sorted(inner)))] = draw(json_values)
        elif isinstance(inner, list) and inner and draw(st.booleans()):
            inner[draw(st.integers(0, len(inner) - 1))] = draw(json_values)
        else:
            body[key] = draw(json_values)
    return body


known_features = st.sampled_from(FEATURES)
# The ruleset's features as a caller may write them: other spacing, other window units.
respelt_features = known_features.flatmap(
    lambda text: st.sampled_from(
        [
            text.replace(", ", ","),
            text.replace("(", "( ").replace(")", " )"),
            text.replace("24h", "1d").replace("7d", "1w"),
            text.replace("30d", "720h"),
        ]
    )
)
feature_keys = st.one_of(known_features, respelt_features, known_features, st.text(min_size=1, max_size=8))

names = st.sampled_from(["page", "category", "cart_total", "device", "tier", "country"]) | st.text(
    min_size=1, max_size=12
)
slot_names = st.sampled_from(["hero", "sidebar", "cart_upsell"]) | st.text(min_size=1, max_size=8)
epochs = st.floats(min_value=NOW - 60 * 86400, max_value=NOW + 3600)

decide_bodies = corrupted(
    st.fixed_dictionaries(
        {"user_id": st.sampled_from(["u1", "u2"]) | st.text(min_size=1, max_size=20)},
        optional={
            "context": st.dictionaries(names, scalars, max_size=6),
            "slots": st.lists(slot_names, max_size=4),
            "features": st.dictionaries(feature_keys, scalars, max_size=8),
            "at": epochs,
        },
    )
)
events = corrupted(
    st.fixed_dictionaries(
        {"user_id": st.sampled_from(["u1", "u2"]), "type": st.sampled_from(["view", "purchase", "cart_abandoned"])},
        optional={
            "key": st.sampled_from(["Electronics", "any"]),
            "value": st.floats(allow_nan=False, allow_infinity=False) | st.integers(0, 1000),
            "ts": epochs,
            "id": st.sampled_from(["e1", "e2"]) | st.text(min_size=1, max_size=8),
        },
    ),
    odds=12,
)
event_bodies = corrupted(st.fixed_dictionaries({"events": st.lists(events, max_size=5)}))
profile_bodies = corrupted(
    st.fixed_dictionaries({"attributes": st.dictionaries(names, scalars | st.lists(scalars, max_size=3), max_size=5)})
)


def check(client: TestClient, method: str, path: str, body: Any = None, raw: bytes | None = None) -> None:
    content = raw if raw is not None else (None if body is None else json.dumps(body))
    headers = {"content-type": "application/json"} if content is not None else {}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code < 500, (method, path, body, response.text)
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)
        return
    model = MODELS.get(path) or (ProfileResponse if path.startswith("/v1/users/") else None)
    if model is not None:
        model.model_validate(response.json())


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), body=st.one_of(st.none(), json_values))
def test_arbitrary_json_anywhere(client: TestClient, endpoint: tuple[str, str], body: Any) -> None:
    check(client, *endpoint, body=body)


@FUZZ
@given(path=st.sampled_from(["/v1/decide", "/v1/explain"]), body=decide_bodies)
def test_decision_shaped_bodies(client: TestClient, path: str, body: dict[str, Any]) -> None:
    check(client, "POST", path, body=body)


@FUZZ
@given(body=event_bodies)
def test_event_shaped_bodies(client: TestClient, body: dict[str, Any]) -> None:
    check(client, "POST", "/v1/events", body=body)


@FUZZ
@given(user_id=st.text(min_size=1, max_size=40), body=profile_bodies)
def test_profile_shaped_bodies(client: TestClient, user_id: str, body: dict[str, Any]) -> None:
    check(client, "PUT", "/v1/users/" + quote(user_id, safe=""), body=body)


@FUZZ
@given(endpoint=st.sampled_from([e for e in ENDPOINTS if e[0] != "GET"]), raw=st.binary(max_size=64))
def test_arbitrary_bytes(client: TestClient, endpoint: tuple[str, str], raw: bytes) -> None:
    check(client, *endpoint, raw=raw)


def test_deep_nesting_and_reads_after_the_fuzzing(client: TestClient) -> None:
    for raw in (b"[" * 50_000, b'{"user_id": ' * 20_000, b'{"user_id": "u", "context": {"a": ' + b"[" * 20_000):
        check(client, "POST", "/v1/decide", raw=raw)
    for method, path in ENDPOINTS:
        if method == "GET":
            check(client, method, path)
    assert client.get("/metrics").status_code == 200
