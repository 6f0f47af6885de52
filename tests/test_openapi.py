"""Every key a response carries is described, at its place, in the OpenAPI schema.

Real responses of every JSON endpoint are walked key by key (recursively)
against ``/openapi.json``: an object's key must be one of its properties,
or the object must describe its other keys (``additionalProperties``, as
maps do), and every key the schema requires must be there. A key a
``to_dict`` writes that the schema leaves out is a client generated from
the schema that cannot read it.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broken_edit import BROKEN

from tailor.dsl.diagnostics import RulesError
from tailor.runtime.http import create_app
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

with warnings.catch_warnings():  # the test client's own deprecation notice about its HTTP library
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"


# A decision that runs the click model, so the explanation has model inputs (some unknown: null).
EXPLAINED = {
    "user_id": "u1",
    "context": {"page": "home", "device": "mobile"},
    "features": {'views("Electronics", 24h)': 5},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("openapi") / "retail"
    shutil.copytree(RETAIL, root)
    service = DecisionService(root, MemoryStore(), sample_every=1)
    service.open()
    home = root / "home.rules"
    home.write_text(home.read_text() + "\n# a second version, so that there is a previous one\n")
    assert service.install(service.prepare())
    (root / "broken.rules").write_text(BROKEN)
    with pytest.raises(RulesError) as failed:
        service.prepare()
    service.failed(failed.value.diagnostics)
    with TestClient(create_app(service, watch=False)) as client:
        yield client


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def undescribed(value: Any, schema: dict[str, Any], document: dict[str, Any], where: str) -> list[str]:
    """The places under ``value`` whose keys ``schema`` does not describe, or that lack a key it requires."""
    schema = resolve(schema, document)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        found = [undescribed(value, branch, document, where) for branch in branches if _fits(value, branch, document)]
        return min(found, key=len) if found else [f"{where}: no branch of the schema fits {type(value).__name__}"]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        problems = [f"{where}.{key} is required but missing" for key in schema.get("required", ()) if key not in value]
        for key, item in value.items():
            if key in properties:
                problems += undescribed(item, properties[key], document, f"{where}.{key}")
            elif isinstance(extra, dict):
                problems += undescribed(item, extra, document, f"{where}[{key!r}]")
            elif extra is not True:
                problems.append(f"{where}.{key} is not in the schema")
        return problems
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            p
            for index, item in enumerate(value)
            for p in undescribed(item, schema["items"], document, f"{where}[{index}]")
        ]
    return []


def _fits(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> bool:
    schema = resolve(schema, document)
    kind = schema.get("type")
    if kind is None:
        return True
    python = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }[kind]
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, python)


def check(client: TestClient, method: str, path: str, route: str, status: int = 200, **request: Any) -> dict[str, Any]:
    document = client.get("/openapi.json").json()
    response = client.request(method, path, **request)
    assert response.status_code == status, response.text
    body = response.json()
    schema = document["paths"][route][method.lower()]["responses"][str(status)]["content"]["application/json"]
    assert undescribed(body, schema["schema"], document, path) == []
    return body


def test_decide(client: TestClient) -> None:
    body = check(client, "POST", "/v1/decide", "/v1/decide", json={**EXPLAINED, "slots": ["hero", "nowhere"]})
    assert body["slots"]["nowhere"] is None


def test_explain(client: TestClient) -> None:
    body = check(client, "POST", "/v1/explain", "/v1/explain", json=EXPLAINED)
    explain = body["explain"]
    assert explain["models"] and explain["model_inputs"]["p_click"]
    assert None in explain["model_inputs"]["p_click"].values()  # an unknown input is written as null
    assert any(trace["candidates"] for trace in explain["slots"].values())


def test_events_and_profile(client: TestClient) -> None:
    events = {"events": [{"user_id": "u1", "type": "view", "key": "Electronics", "id": "e1"}]}
    check(client, "POST", "/v1/events", "/v1/events", json=events)
    check(client, "PUT", "/v1/users/u1", "/v1/users/{user_id}", json={"attributes": {"tier": "gold", "old": None}})


def test_export_and_erasure(client: TestClient) -> None:
    events = {"events": [{"user_id": "u9", "type": "view", "key": "Electronics", "id": "e9"}]}
    assert client.post("/v1/events", json=events).status_code == 200
    assert client.put("/v1/users/u9", json={"attributes": {"tier": "gold"}}).status_code == 200
    client.post("/v1/decide", json={**EXPLAINED, "user_id": "u9"})
    body = check(client, "GET", "/v1/users/u9/export", "/v1/users/{user_id}/export")
    assert body["store"]["series"] and body["store"]["series"][0]["buckets"] and body["store"]["joins"]
    body = check(client, "DELETE", "/v1/users/u9", "/v1/users/{user_id}")
    assert body["store"]["series"] and body["decision_log"]["summary"]


def test_ruleset_with_an_error(client: TestClient) -> None:
    body = check(client, "GET", "/v1/ruleset", "/v1/ruleset")
    assert body["previous"] and body["rules"]
    keys = {key for problem in body["last_error"] for key in problem}
    assert {"end_line", "end_column", "hint", "related"} <= keys


def test_stats(client: TestClient) -> None:
    client.post("/v1/decide", json=EXPLAINED)
    body = check(client, "GET", "/v1/stats", "/v1/stats")
    assert body["predicates"]


def test_health_and_readiness(client: TestClient) -> None:
    check(client, "GET", "/healthz", "/healthz")
    check(client, "GET", "/readyz", "/readyz")


def test_errors(client: TestClient) -> None:
    body = check(client, "POST", "/v1/decide", "/v1/decide", status=422, json={"user_id": 5})
    assert body["errors"]


def test_console_endpoints(client: TestClient) -> None:
    home = client.get("/v1/files/home.rules")
    check(client, "GET", "/v1/files/home.rules", "/v1/files/{name}")
    text = home.json()["text"]
    body = check(client, "POST", "/v1/lint", "/v1/lint", json={"text": text + "\nrule x when", "file": "home.rules"})
    assert body["diagnostics"][0]["end_line"]
    check(client, "POST", "/v1/fmt", "/v1/fmt", json={"text": text})
    client.post("/v1/decide", json=EXPLAINED)
    body = check(client, "GET", "/v1/rules", "/v1/rules")
    assert any(row["findings"] for row in body["rules"]) and any(row["cap"] for row in body["rules"])
    body = check(client, "POST", "/v1/trace", "/v1/trace", json={"request": EXPLAINED})
    assert body["predicates"]
    extra = 'content extra = {"id": "x"}\n\nrule extra\n  when context.page == "x"\n  then show extra in hero\n'
    scratch = {"request": EXPLAINED, "text": extra, "file": "broken.rules"}  # the failed edit's file, replaced
    body = check(client, "POST", "/v1/trace", "/v1/trace", json=scratch)
    assert body["explain"]["slots"]


def test_rollback_last(client: TestClient) -> None:
    """Last: it changes what is served."""
    body = check(client, "POST", "/v1/ruleset/rollback", "/v1/ruleset/rollback")
    assert body["previous"] == []


def test_the_walk_finds_what_is_missing() -> None:
    a = {"type": "object", "properties": {"a": {"type": "integer"}, "n": {"type": "integer"}}, "required": ["n"]}
    document = {"components": {"schemas": {"A": a}}}
    schema = {"anyOf": [{"$ref": "#/components/schemas/A"}, {"type": "null"}]}
    assert undescribed({"a": 1, "n": 0, "b": {"c": 2}}, schema, document, "x") == ["x.b is not in the schema"]
    assert undescribed({"a": 1}, schema, document, "x") == ["x.n is required but missing"]
    assert undescribed(None, schema, document, "x") == []
    maps = {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/A"}}
    assert undescribed({"k": {"n": 1, "z": 0}}, maps, document, "m") == ["m['k'].z is not in the schema"]
