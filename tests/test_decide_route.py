"""``POST /v1/decide``'s short path answers exactly as the route, and leaves everything else to it.

Each case sends the same request twice over real HTTP semantics (TestClient):
once as the short path takes it (``content-type: application/json``), once
with a content type it passes on (``application/json; charset=utf-8``), which
the FastAPI route answers. The two answers must be the same bytes but for the
decision id.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tailor.runtime.http import create_app
from tailor.runtime.http.decide_route import DecideShortPath
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService, StoreUnavailable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RULES = """\
ruleset shop

content vip = {"id": "vip", "tags": ["a", "é"]}
content home = {"id": "home", "n": 1.5}
content generic = {"id": "generic"}

rule vip_banner
  when user.tier == "gold"
  then show vip in hero
  priority 30

rule home_page
  when context.page == "home"
  then show home in hero
  priority 10

default show generic in hero
"""
KEY = "s3cret-key"
SHORT = {"content-type": "application/json"}
ROUTE = {"content-type": "application/json; charset=utf-8"}  # passed on to the route


class FailingStore(MemoryStore):
    async def fetch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise StoreUnavailable("the store is down (on purpose)")


def _client(tmp_path: Path, store: MemoryStore | None = None, **options: Any) -> TestClient:
    root = tmp_path / "shop"
    root.mkdir(exist_ok=True)
    (root / "shop.rules").write_text(RULES)
    service = DecisionService(root, store or MemoryStore(), deadline_ms=1000.0)
    service.open()
    return TestClient(create_app(service, watch=False, **options))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as client:
        yield client


def _both(client: TestClient, body: bytes, **headers: str) -> tuple[Any, Any]:
    short = client.post("/v1/decide", content=body, headers={**SHORT, **headers})
    route = client.post("/v1/decide", content=body, headers={**ROUTE, **headers})
    return short, route


def _without_id(content: bytes) -> bytes:
    answer = orjson.loads(content)
    answer.pop("decision_id", None)
    return orjson.dumps(answer)


def test_the_app_puts_the_short_path_in_front_of_its_middleware(client: TestClient) -> None:
    assert client.app.user_middleware[0].cls is DecideShortPath


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u1", "context": {"page": "home"}, "at": 1_800_000_000.0},
        {"user_id": "u2", "at": 1_800_000_000},
        {"user_id": "u3", "context": {"page": "home"}, "slots": ["hero", "nowhere"], "features": {"user.tier": "gold"}},
        {"user_id": "u4", "features": {"user.tier": "gold", "user.unread": 1}},  # an ignored feature is listed
        {"user_id": "u5", "consent": False, "context": {"page": "home"}},
    ],
)
def test_a_served_decision_is_the_same_bytes_as_the_route_s(client: TestClient, body: dict[str, Any]) -> None:
    short, route = _both(client, orjson.dumps(body))
    assert (short.status_code, route.status_code) == (200, 200), (short.text, route.text)
    assert short.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert short.headers["content-length"] == str(len(short.content))
    assert _without_id(short.content) == _without_id(route.content)
    assert orjson.loads(short.content)["decision_id"] != orjson.loads(route.content)["decision_id"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"user_id": ""}',
        b'{"user_id": "u1", "contxt": {}}',
        b'{"user_id": "u1", "at": NaN}',  # JSON the short path refuses; the route's parser reads it, the model not
        b'{"user_id": "\\ud800"}',  # a lone surrogate: the same
        b'{"user_id": "u1", "features": {"user.tier": 18446744073709551616}}',  # not a float on either path
        b'{"user_id": "u1"',
        b"[1, 2]",
        b"",
        b'{"user_id": "u1", "features": {"user.tier": {"a": 1}}}',
        b'{"user_id": 5}',
        b'{"user_id": "u1", "at": 18446744073709551616}',
    ],
)
def test_bad_input_gets_the_route_s_answer(client: TestClient, body: bytes) -> None:
    short, route = _both(client, body)
    assert 400 <= short.status_code < 500
    assert (short.status_code, short.content) == (route.status_code, route.content)
    assert "detail" in short.json()


def test_the_body_limit_and_the_api_key_are_the_route_s(tmp_path: Path) -> None:
    body = orjson.dumps({"user_id": "u1", "context": {"page": "home"}})
    with _client(tmp_path, api_key=KEY, max_body=64) as client:
        short, route = _both(client, body)
        assert short.status_code == route.status_code == 401
        assert short.content == route.content
        wrong = client.post("/v1/decide", content=body, headers={**SHORT, "authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = {"authorization": f"Bearer {KEY}"}
        short, route = _both(client, body, **good)
        assert (short.status_code, route.status_code) == (200, 200)
        assert _without_id(short.content) == _without_id(route.content)
        large = orjson.dumps({"user_id": "u1", "context": {"page": "x" * 100}})
        short, route = _both(client, large, **good)
        assert short.status_code == route.status_code == 413
        assert short.content == route.content

        def chunks() -> Iterator[bytes]:
            yield body[:10]
            yield body[10:]

        chunked = client.post("/v1/decide", content=chunks(), headers={**SHORT, **good})
        assert chunked.status_code == 200
        assert orjson.loads(chunked.content)["slots"]["hero"]["content"] == "home"
    with _client(tmp_path, api_key=KEY, public_decisions=True) as client:
        short, route = _both(client, body)
        assert (short.status_code, route.status_code) == (200, 200)


def test_a_failure_while_deciding_is_answered_by_the_app_s_handler(tmp_path: Path) -> None:
    with _client(tmp_path, FailingStore()) as client:
        short, route = _both(client, b'{"user_id": "u1"}')
        assert short.status_code == route.status_code == 200  # degraded, not failed: the store's error is caught
        assert orjson.loads(short.content)["degraded"] is True
        assert _without_id(short.content) == _without_id(route.content)
        features = b'{"user_id": "u1", "features": {"views(\\"Nothing\\", 99h)": 1, "user.tier": [1]}}'
        short, route = _both(client, features)
        assert (short.status_code, short.content) == (route.status_code, route.content)
        assert short.status_code == 422
