"""The console's endpoints over real HTTP routes and the retail example: lint, format, files, rules, trace, diff.

The page itself is driven in a real browser by ``test_console_browser.py`` (slow).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailor.runtime.decision_log_reader import read_records
from tailor.runtime.launch import ServeOptions, build_app

ROOT = Path(__file__).resolve().parents[1]
HOME = {"page": "home"}
VIP_RULE = 'when vip and context.page == "home"'
OPENED = 'when context.page == "home"'  # the VIP rule for every visitor of the home page
BROKEN = ("  then show hero_vip", "  show hero_vip")  # the README tour's broken edit


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console") / "retail"
    shutil.copytree(ROOT / "rulesets" / "retail", root)
    return root


def _app(retail: Path, log: Path | None, **options: Any) -> TestClient:
    given = {"decision_log": str(log)} if log is not None else {"decision_log": "off"}
    return TestClient(build_app(ServeOptions(path=str(retail), **given, **options)))


@pytest.fixture(scope="module")
def client(retail: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    log = tmp_path_factory.mktemp("log")
    with _app(retail, log) as client:
        client.log = log  # type: ignore[attr-defined]
        yield client


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/console/console.js"' in page.text
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        served = client.get(f"/console/{name}")
        assert served.status_code == 200 and kind in served.headers["content-type"]
    assert client.get("/console/nothing.js").status_code == 404
    assert client.get("/v1/decide").status_code == 405  # the page takes no route of the API


def test_lint_answers_what_tailor_lint_prints_with_the_caret(client: TestClient, retail: Path) -> None:
    text = (retail / "home.rules").read_text().replace(*BROKEN)
    answer = client.post("/v1/lint", json={"text": text, "file": "home.rules"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    broken = retail.parent / "broken"
    shutil.copytree(retail, broken)
    (broken / "home.rules").write_text(text)
    printed = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "lint", "--format", "json", "."],
        cwd=broken,
        capture_output=True,
        text=True,
        check=False,
    )
    assert printed.returncode == 1, printed.stderr
    assert body["diagnostics"] == json.loads(printed.stdout)
    error = body["diagnostics"][0]
    assert (error["file"], error["line"], error["severity"]) == ("home.rules", 17, "error")
    assert body["text"].startswith("home.rules:17:3: error: expected 'then'")
    assert "17 |   show hero_vip in hero\n   |   ^^^^" in body["text"]


def test_lint_of_the_live_text_finds_no_error(client: TestClient, retail: Path) -> None:
    text = (retail / "home.rules").read_text()
    body = client.post("/v1/lint", json={"text": text, "file": "home.rules"}).json()
    assert [d for d in body["diagnostics"] if d["severity"] == "error"] == []


def test_lint_refuses_a_file_outside_the_ruleset(client: TestClient) -> None:
    answer = client.post("/v1/lint", json={"text": "default show a in b", "file": "../elsewhere.rules"})
    assert answer.status_code == 422
    assert "inside the ruleset" in answer.json()["detail"]


def test_format_and_files(client: TestClient) -> None:
    formatted = client.post("/v1/fmt", json={"text": "rule x when views(1d)>2 then show a in b"})
    assert formatted.json() == {"text": "rule x\n  when views(1d) > 2\n  then show a in b\n"}
    bad = client.post("/v1/fmt", json={"text": "rule x when"})
    assert bad.status_code == 422 and bad.json()["errors"][0].startswith("scratch.rules:1:8: error")
    home = client.get("/v1/files/home.rules")
    assert home.status_code == 200 and "rule vip_early_access" in home.json()["text"]
    assert client.get("/v1/files/../README.md").status_code == 404
    assert client.get("/v1/files/models/p_click.onnx").status_code == 404  # ruleset files only


def test_trace_shows_the_decision_decide_makes_and_every_predicate(client: TestClient) -> None:
    asked = {"user_id": "u42", "context": HOME, "features": {"user.tier": "gold"}}
    traced = client.post("/v1/trace", json={"request": asked})
    assert traced.status_code == 200, traced.text
    decided = client.post("/v1/decide", json=asked).json()
    body = traced.json()
    assert body["slots"] == decided["slots"] and body["slots"]["hero"]["rule"] == "vip_early_access"
    truths = {(p["rule"], p["text"]): p for p in body["predicates"]}
    page = truths["vip_early_access", 'context.page == "home"']
    assert (page["truth"], page["shown"]) == ("true", 'context.page "home", needed == "home"')
    assert truths["welcome_back", 'user.tier not in ["gold", "platinum"]']["truth"] == "false"
    assert body["explain"]["slots"]["hero"]["candidates"][1]["outcome"] == "won"


def test_scratch_rules_decide_without_being_served_or_logged(client: TestClient, retail: Path) -> None:
    served = client.get("/v1/ruleset").json()["version"]
    logged = _logged_through(client, "before")
    text = (retail / "home.rules").read_text().replace(VIP_RULE, OPENED)
    asked = {"user_id": "u2", "context": HOME}
    traced = client.post("/v1/trace", json={"text": text, "file": "home.rules", "request": asked}).json()
    assert traced["ruleset"]["version"] != served
    assert traced["slots"]["hero"]["rule"] == "vip_early_access"
    client.post("/v1/trace", json={"request": asked})
    client.post("/v1/explain", json=asked)
    assert client.post("/v1/decide", json=asked).json()["slots"]["hero"]["rule"] != "vip_early_access"
    assert client.get("/v1/ruleset").json()["version"] == served
    after = _logged_through(client, "after")
    assert [record.user_id for record in after[len(logged) : -1]] == ["u2"]  # the /v1/decide alone
    broken = client.post("/v1/trace", json={"text": "rule x when", "request": asked})
    assert broken.status_code == 422 and "1:8" in broken.json()["errors"][0]


def _logged_through(client: TestClient, sentinel: str) -> list[Any]:
    """Every record logged up to a decision for ``sentinel``, made now (the log keeps the order served)."""
    client.post("/v1/decide", json={"user_id": sentinel, "context": HOME})
    deadline = time.monotonic() + 30
    while True:
        records = list(read_records(client.log))  # type: ignore[attr-defined]
        if records and records[-1].user_id == sentinel:
            return records
        assert time.monotonic() < deadline, "the sentinel decision was never logged"
        time.sleep(0.02)


def test_rules_board_counts_recent_decisions_and_kpis(client: TestClient) -> None:
    for user in ("u42", "u2", "erin"):
        answer = client.post("/v1/decide", json={"user_id": user, "context": HOME}).json()
        if answer["slots"]["hero"]["rule"]:
            items = [
                {"decision_id": answer["decision_id"], "slot": "hero", "type": kind, "id": f"{user}-{kind}"}
                for kind in ("impression", "click")
            ]
            assert client.post("/v1/feedback", json={"items": items}).status_code == 200
    board = client.get("/v1/rules").json()
    rows = {row["name"]: row for row in board["rules"]}
    assert board["replayed"] >= 3
    assert rows["electronics_accessories"]["cap"] == "cap 3 per 24h"
    assert rows["vip_early_access"]["source"].startswith("rule vip_early_access\n  when vip")
    assert rows["first_order"]["decisions"] >= 3
    clicked = [row for row in board["rules"] if row["clicks"]]
    for row in clicked:
        assert row["ctr_low"] <= row["ctr"] <= row["ctr_high"]
    assert {f["finding"] for row in board["rules"] for f in row["findings"]} >= {"low_traffic"}


def test_diff_against_live_replays_recent_logged_traffic(client: TestClient, retail: Path) -> None:
    for user in ("u42", "u2", "erin"):
        client.post("/v1/decide", json={"user_id": user, "context": HOME})
    text = (retail / "home.rules").read_text()
    same = client.post("/v1/scratch/diff", json={"text": text, "file": "home.rules"}).json()
    assert same["decisions"] >= 3 and same["changed"] == 0
    opened = text.replace(VIP_RULE, OPENED)
    answer = client.post("/v1/scratch/diff", json={"text": opened, "file": "home.rules"})
    diff = answer.json()
    assert diff["changed"] >= 1
    assert {"old", "new", "rules", "not_replayable"} <= diff.keys()  # tailor diff --format json's shape
    hero = next(slot for slot in diff["slots"] if slot["slot"] == "hero")
    assert any(t["to"]["rule"] == "vip_early_access" for t in hero["transitions"])


def test_erasure_forgets_the_recent_decisions(client: TestClient) -> None:
    client.post("/v1/decide", json={"user_id": "to-erase", "context": HOME})
    assert client.delete("/v1/users/to-erase").status_code == 200
    text = "default show hero_generic in hero\n"
    diff = client.post("/v1/scratch/diff", json={"text": text, "file": "home.rules"}).json()
    examples = [u for slot in diff["slots"] for t in slot["transitions"] for u in t["users"]]
    assert "to-erase" not in examples and diff["decisions"] >= 1


def test_with_a_key_the_page_loads_but_no_data_does(retail: Path) -> None:
    with _app(retail, None, api_key="console-key") as client:
        assert client.get("/").status_code == 200
        assert client.get("/console/console.js").status_code == 200
        for method, path, body in (
            ("POST", "/v1/lint", {"text": ""}),
            ("GET", "/v1/rules", None),
            ("GET", "/v1/files/home.rules", None),
            ("POST", "/v1/fmt", {"text": ""}),
            ("POST", "/v1/trace", {"request": {"user_id": "u42"}}),
            ("POST", "/v1/scratch/diff", {"text": ""}),
            ("GET", "/v1/models/p_click/drift/history", None),
        ):
            assert client.request(method, path, json=body).status_code == 401, path
        key = {"Authorization": "Bearer console-key"}
        history = client.get("/v1/models/p_click/drift/history", headers=key)
        assert history.status_code == 200 and history.json()["points"] == []  # the first point is an interval away
        rules = client.get("/v1/rules", headers=key)
        assert rules.status_code == 200 and rules.json()["replayed"] == 0  # nothing served yet
        assert client.post("/v1/decide", json={"user_id": "u42"}, headers=key).status_code == 200
        # No decision log: the console keeps the served traffic for its counts by itself.
        assert client.get("/v1/rules", headers=key).json()["replayed"] == 1


def test_no_console_leaves_the_endpoints_but_not_the_page(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(
        'content a = {"id": "a"}\n\nrule r\n  when context.page == "home"\n  then show a in hero\n'
    )
    with TestClient(build_app(ServeOptions(path=str(tmp_path), console=False))) as client:
        assert client.get("/").status_code == 404
        assert client.get("/console/console.js").status_code == 404
        assert client.post("/v1/lint", json={"text": "default show a in b"}).status_code == 200
        diff = client.post("/v1/scratch/diff", json={"text": "default show a in b"})
        assert diff.status_code == 404 and "--decision-log" in diff.json()["detail"]  # no page, no log: no traffic


def test_the_console_endpoints_are_in_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/lint", "/v1/fmt", "/v1/files/{name}", "/v1/rules", "/v1/trace", "/v1/scratch/diff"):
        assert path in paths, path
    rules = paths["/v1/rules"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert rules["$ref"].endswith("/RulesResponse")


def test_serve_takes_no_console() -> None:
    from tailor.cli import build_parser

    args = build_parser().parse_args(["serve", "rulesets/retail", "--no-console"])
    assert args.console is False
    assert build_parser().parse_args(["serve", "rulesets/retail"]).console is True
