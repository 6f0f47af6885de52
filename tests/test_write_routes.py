"""The short paths of ``POST /v1/feedback`` and ``POST /v1/events`` answer exactly as the routes, and leave
everything else to them.

As in test_decide_route.py, each batch goes once as the short path takes it
(``content-type: application/json``) and once with a content type it passes
on to the FastAPI route; the answers must be the same bytes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from tailor.runtime.events import Event
from tailor.runtime.feedback import Tally
from tailor.runtime.http import create_app
from tailor.runtime.http.write_routes import EventsShortPath, FeedbackShortPath
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RULES = """\
ruleset shop

content acc = {"id": "acc"}
content generic = {"id": "generic"}

default show generic in hero
default show acc in sidebar
"""
KEY = "s3cret-key"
SHORT = {"content-type": "application/json"}
ROUTE = {"content-type": "application/json; charset=utf-8"}  # passed on to the route


class FailingStore(MemoryStore):
    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> Any:
        raise ConnectionError("the store is down (on purpose)")

    async def record(self, events: Sequence[Event], now: float | None = None) -> Any:
        raise ConnectionError("the store is down (on purpose)")


def _client(tmp_path: Path, store: MemoryStore | None = None, **options: Any) -> TestClient:
    root = tmp_path / "shop"
    root.mkdir(exist_ok=True)
    (root / "shop.rules").write_text(RULES)
    service = DecisionService(root, store or MemoryStore(), deadline_ms=1000.0)
    service.open()
    return TestClient(create_app(service, watch=False, **options))


def _batch(client: TestClient, **headers: str) -> bytes:
    """A batch on a decision of its own: items counted, a duplicate, and items not counted, for their reasons."""
    decided = client.post("/v1/decide", json={"user_id": "u1"}, headers=headers).json()
    on = decided["decision_id"]
    items = [
        {"decision_id": on, "slot": "sidebar", "type": "impression"},
        {"decision_id": on, "slot": "sidebar", "type": "impression"},
        {"decision_id": on, "slot": "hero", "type": "click", "id": f"{on}:c1"},
        {"decision_id": on, "slot": "sidebar", "type": "conversion", "value": 12.5, "id": f"{on}:o1"},
        {"decision_id": on, "slot": "footer", "type": "click"},
        {"decision_id": "never-served", "slot": "hero", "type": "click"},
        {"decision_id": on, "slot": "hero", "type": "dwell", "value": 3, "user_id": "u2"},
    ]
    return orjson.dumps({"items": items})


def _both(client: TestClient, path: str, body: bytes, **headers: str) -> tuple[Any, Any]:
    """The same request once as the short path takes it and once as it passes it on to the route."""
    short = client.post(path, content=body, headers={**SHORT, **headers})
    route = client.post(path, content=body, headers={**ROUTE, **headers})
    return short, route


def _bad_input_same_as_route(tmp_path: Path, path: str, body: bytes) -> None:
    with _client(tmp_path) as client:
        short, route = _both(client, path, body)
        assert 400 <= short.status_code < 500
        assert (short.status_code, short.content) == (route.status_code, route.content)


def _key_and_failure_same_as_route(client: TestClient, path: str, body: bytes) -> None:
    """Without the key both answer 401, with it a failing store makes both answer 503: the same bytes."""
    for headers, status in (({}, 401), ({"authorization": f"Bearer {KEY}"}, 503)):
        short, route = _both(client, path, body, **headers)
        assert short.status_code == route.status_code == status
        assert short.content == route.content


def test_the_short_paths_sit_behind_the_decisions_one(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert [m.cls for m in client.app.user_middleware[1:3]] == [FeedbackShortPath, EventsShortPath]


def test_a_batch_is_answered_as_the_route_answers_it(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        short = client.post("/v1/feedback", content=_batch(client), headers=SHORT)
        route = client.post("/v1/feedback", content=_batch(client), headers=ROUTE)
        assert (short.status_code, route.status_code) == (200, 200), (short.text, route.text)
        assert short.content == route.content
        assert short.headers["content-length"] == str(len(short.content))
        answer = orjson.loads(short.content)
        assert (answer["accepted"], answer["duplicates"]) == (3, 1)
        assert [r["status"] for r in answer["results"]] == ["unknown_slot", "unknown_decision", "wrong_user"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [{"decision_id": "d", "slot": "hero"}]}',
        b'{"items": [{"decision_id": "d", "slot": "hero", "type": "Click"}]}',
        b'{"items": [{"decision_id": "d", "slot": "hero", "type": "click", "value": NaN}]}',
        b'{"items": [{"decision_id": "d", "slot": "hero", "type": "click", "value": "5"}]}',
        b'{"items": [{"decision_id": "\\ud800", "slot": "hero", "type": "click"}]}',
        b'{"itms": []}',
        b'{"items": [',
        b"",
    ],
)
def test_bad_input_gets_the_route_s_answer(tmp_path: Path, body: bytes) -> None:
    _bad_input_same_as_route(tmp_path, "/v1/feedback", body)


def test_the_api_key_and_the_store_s_failure_are_the_route_s(tmp_path: Path) -> None:
    with _client(tmp_path, FailingStore(), api_key=KEY) as client:
        _key_and_failure_same_as_route(client, "/v1/feedback", _batch(client, authorization=f"Bearer {KEY}"))


def _events(user: str) -> bytes:
    """Events counted, a duplicate, a conflict, one too old to keep, and one whose user declined."""
    now = time.time()
    events = [
        {"user_id": user, "type": "view", "key": "shoes", "id": f"{user}:1"},
        {"user_id": user, "type": "view", "key": "shoes", "id": f"{user}:1"},
        {"user_id": user, "type": "view", "key": "hats", "id": f"{user}:1"},
        {"user_id": user, "type": "purchase", "key": "shoes", "value": 40.5, "ts": now - 5},
        {"user_id": user, "type": "view", "key": "shoes", "ts": now - 400 * 86400},
        {"user_id": user, "type": "view", "key": "shoes", "consent": False},
    ]
    return orjson.dumps({"events": events})


def test_an_event_batch_is_answered_as_the_route_answers_it(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        short = client.post("/v1/events", content=_events("u1"), headers=SHORT)
        route = client.post("/v1/events", content=_events("u2"), headers=ROUTE)
        assert (short.status_code, route.status_code) == (200, 200), (short.text, route.text)
        assert short.content == route.content
        assert short.headers["content-length"] == str(len(short.content))
        answer = orjson.loads(short.content)
        expected = {"accepted": 2, "duplicates": 1, "conflicts": 1, "expired": 1, "dropped_no_consent": 1}
        assert answer == expected
        again = client.post("/v1/events", content=_events("u1"), headers=SHORT)
        assert orjson.loads(again.content)["duplicates"] == 2  # the ids seen before


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [{"user_id": "u1", "key": "k"}]}',
        b'{"events": [{"user_id": "u1", "type": "view", "key": "k", "value": NaN}]}',
        b'{"events": [{"user_id": "u1", "type": "view", "key": "k", "ts": "now"}]}',
        b'{"events": [{"user_id": "\\ud800", "type": "view", "key": "k"}]}',
        b'{"events": [{"user_id": "u1", "type": "view", "key": "k", "ts": 99999999999999}]}',
        b'{"evnts": []}',
        b'{"events": [',
    ],
)
def test_bad_events_get_the_route_s_answer(tmp_path: Path, body: bytes) -> None:
    _bad_input_same_as_route(tmp_path, "/v1/events", body)


def test_events_need_the_key_and_a_failing_store_is_the_route_s_503(tmp_path: Path) -> None:
    with _client(tmp_path, FailingStore(), api_key=KEY) as client:
        _key_and_failure_same_as_route(client, "/v1/events", _events("u1"))
