"""Real servers: a served log replays exactly, shadow serving's diff equals ``tailor diff``, the canary's share
is deterministic and a candidate that degrades is rolled back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_logs import copy_retail, edited, requests
from server_process import Server, eventually, servers

from tailor.compiler.bucketing import hash as bucket_hash
from tailor.runtime.canary import MIN_DECISIONS, canary_seed

COUNT = 300
MODELS = Path(__file__).resolve().parents[1] / "rulesets" / "retail" / "models"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    with servers(tmp_path) as start_server:
        yield start_server


def tailor_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tailor.cli", *args], capture_output=True, text=True, timeout=300)


def send(server: Server, count: int = COUNT, seed: int = 11) -> list[dict[str, Any]]:
    answers = []
    for request in requests(count, seed):
        body: dict[str, Any] = {"user_id": request.user_id, "context": request.context}
        if request.features:
            body["features"] = request.features
        if request.slots is not None:
            body["slots"] = list(request.slots)
        response = server.http.post("/v1/decide", json=body, headers=server.auth)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def logged(directory: Path) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in directory.glob("decisions-*.ndjson") if path.is_file())


def test_a_real_servers_log_replays_exactly(tmp_path: Path, start: Any) -> None:
    path = copy_retail(tmp_path, extras=True)
    log = tmp_path / "log"
    server = start(path, "--decision-log", str(log))
    send(server)
    assert server.stop() == 0  # a clean stop writes the log out
    assert logged(log) == COUNT
    done = tailor_cli("diff", str(path), str(path), "--replay", str(log), "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["decisions"] == COUNT and data["changed"] == 0
    assert data["self_check"] == {"decisions": COUNT, "reproduced": COUNT}  # 100%
    assert data["models_per_decision"]["before"] > 0
    assert "reports 0 changed" in done.stderr


def test_shadow_serving_reports_what_tailor_diff_reports(tmp_path: Path, start: Any) -> None:
    path = copy_retail(tmp_path, extras=True)
    candidate = edited(path, tmp_path / "candidate", "home.rules", "p_click > 0.7", "p_click > 0.3")
    log = tmp_path / "log"
    server = start(path, "--decision-log", str(log), "--shadow", str(candidate))
    sent = send(server)
    assert all(answer["ruleset"]["version"] == sent[0]["ruleset"]["version"] for answer in sent)  # never served
    shadow = server.http.get("/v1/shadow", headers=server.auth).json()
    metrics = server.http.get("/metrics").text
    assert server.stop() == 0
    done = tailor_cli("diff", str(path), str(candidate), "--replay", str(log), "--format", "json")
    assert done.returncode == 0, done.stderr
    diff = json.loads(done.stdout)
    assert shadow["decisions"] == diff["decisions"] == COUNT
    assert shadow["changed"] == diff["changed"] > 0
    for key in ("slots", "rules", "models_per_decision", "not_replayable", "declarations", "old", "new"):
        assert shadow[key] == diff[key], key
    hero = next(slot for slot in shadow["slots"] if slot["slot"] == "hero")
    assert f'tailor_shadow_disagreements_total{{slot="hero"}} {float(hero["changed"])}' in metrics


def test_shadow_sampling_and_a_candidate_that_needs_more_than_was_fetched(tmp_path: Path, start: Any) -> None:
    path = copy_retail(tmp_path)
    candidate = edited(
        path,
        tmp_path / "candidate",
        "home.rules",
        "default show hero_generic in hero",
        'rule garden_fans\n  when clicks("Garden", 7d) > 0\n  then show hero_first_order in hero\n  priority 50\n\n'
        "default show hero_generic in hero",
    )
    server = start(path, "--shadow", str(candidate), "--shadow-sample", "0.5")
    send(server, 200)
    shadow = server.http.get("/v1/shadow", headers=server.auth).json()
    assert 40 < shadow["decisions"] + shadow["not_replayable"]["decisions"] < 160  # about half
    assert shadow["not_replayable"]["features"] == {'clicks("Garden", 7d)': shadow["not_replayable"]["decisions"]}
    assert shadow["not_replayable"]["decisions"] > 0
    assert shadow["shadow"]["sample"] == 0.5


CONTEXT_ONLY = """\
ruleset shop
content home_banner = {"id": "home"}
content model_banner = {"id": "model"}
content generic = {"id": "generic"}

rule home_page
  when context.page == "home"
  then show home_banner in hero
  priority 10

default show generic in hero
"""

WITH_MODEL = (
    CONTEXT_ONLY
    + """
model p_click = "models/p_click.onnx"

rule likely_clickers
  when p_click > 0.5
  then show model_banner in hero
  priority 20
"""
)


def shop(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "shop.rules").write_text(text)
    shutil.copytree(MODELS, folder / "models")
    return folder


def test_the_canary_serves_a_deterministic_share(tmp_path: Path, start: Any) -> None:
    live = shop(tmp_path, "live", CONTEXT_ONLY)
    candidate = shop(tmp_path, "candidate", CONTEXT_ONLY.replace("priority 10", "priority 11"))
    server = start(live, "--canary", str(candidate), "--canary-share", "30%")
    users = [f"user-{n}" for n in range(200)]
    served = {}
    for user in users:
        answer = server.decide(user_id=user, context={"page": "home"})
        served[user] = answer["ruleset"]["version"]
    status = server.http.get("/v1/canary", headers=server.auth).json()
    seed = canary_seed("shop")
    in_canary = {user for user in users if bucket_hash(seed, user) < 0.3}
    assert {user for user, version in served.items() if version == status["version"]} == in_canary
    assert 30 < len(in_canary) < 90
    assert status["serving"] and status["rollbacks"] == [] and status["share"] == 0.3
    assert status["decisions"] == len(in_canary) and status["live_decisions"] == len(users) - len(in_canary)
    again = server.decide(user_id=next(iter(in_canary)), context={"page": "home"})
    assert again["ruleset"]["version"] == status["version"]  # the same users every time


def test_a_degrading_canary_is_rolled_back_and_logged(tmp_path: Path, start: Any) -> None:
    live = shop(tmp_path, "live", CONTEXT_ONLY)
    candidate = shop(tmp_path, "candidate", WITH_MODEL)
    # A deadline no model meets: every candidate decision that reaches the model is degraded; live never is.
    server = start(live, "--canary", str(candidate), "--canary-share", "50%", "--deadline-ms", "0.001")
    seed = canary_seed("shop")
    users = [f"user-{n}" for n in range(600)]
    canary_users = [user for user in users if bucket_hash(seed, user) < 0.5]
    assert len(canary_users) > MIN_DECISIONS + 20
    live_version = server.decide(user_id=next(u for u in users if u not in canary_users))["ruleset"]["version"]
    versions = [server.decide(user_id=user, context={"page": "cart"})["ruleset"]["version"] for user in users]
    status = server.http.get("/v1/canary", headers=server.auth).json()
    assert not status["serving"]
    assert len(status["rollbacks"]) == 1 and status["rollbacks"][0]["version"] == status["version"]
    assert status["bad"] >= MIN_DECISIONS and status["live_bad"] == 0
    canary_served = [v for user, v in zip(users, versions, strict=True) if user in canary_users]
    assert canary_served.count(status["version"]) == MIN_DECISIONS  # judged, then rolled back at once
    assert canary_served[-1] == live_version  # its users get the live version again
    eventually(lambda: "rolled back" in server.output(), "the rollback in the log")
    assert server.metric("tailor_canary_rollbacks_total") == 1.0
