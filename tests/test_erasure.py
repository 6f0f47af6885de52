"""DELETE /v1/users/{id} and GET /v1/users/{id}/export against real server processes.

On Redis: two servers share a Redis of the test's own; users get events,
profiles, decisions (logged to the Stream, kept for feedback, exposed to an
experiment) and feedback through both; one user is erased through one
server, and then every key of that Redis, with every field, member, value
and Stream entry, is read: the user's id is nowhere, the other user's data
is intact, and the other server no longer serves the user's cached model
score. On the memory store: one server logging to files; the export after
erasure is empty, and after the next rotation no log file holds the user.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_contents import key_parts
from redis_process import private_redis
from server_process import Server, eventually, servers

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
GONE = "gone-user-5e1d"  # distinctive: a search of Redis or the files finds nothing else by accident
KEPT = "kept-user-9a0b"
EXPERIMENT = """\
experiment banner_test
  arms plain 50%, bold 50%

rule bold_banner
  when banner_test == "bold"
  then show sidebar_reviews in banner

default show sidebar_reviews in banner
"""
# Every input of the p_click model but the context, supplied: the model's row is the same before and after
# the erasure, so only the erasure notice can make the other server compute it again rather than reuse it.
MODEL_INPUTS: dict[str, Any] = {
    'views("Electronics", 24h)': 5,
    'views("Electronics", 7d)': 9,
    'clicks("Electronics", 7d)': 1,
    'add_to_carts("Electronics", 7d)': 0,
    'purchases("Electronics", 30d)': 0,
    'since("view", "Electronics")': 60.0,
    'since("purchase", "Electronics")': None,
    'since("purchase")': None,
    'total("purchase", "any", 30d)': 0.0,
    "views(24h)": 7,
    'count("impression", "acc-42", 7d)': 0,
    'clicks("acc-42", 30d)': 0,
    "user.tier": "silver",
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "retail"
    shutil.copytree(RETAIL, root)
    (root / "experiments.rules").write_text(EXPERIMENT)
    return root


def call(server: Server, method: str, path: str, **request: Any) -> dict[str, Any]:
    response = server.http.request(method, path, headers=server.auth, **request)
    assert response.status_code == 200, response.text
    return response.json()


def fill(server: Server, other: Server, user: str, count: int) -> list[str]:
    """Events, a profile, decisions (through both servers) and feedback (a click on each, and a conversion in
    the experiment, so the user's converted value is kept); the decision ids."""
    events = [{"user_id": user, "type": "view", "key": "Electronics", "id": f"{user}-v{i}"} for i in range(3)] + [
        {"user_id": user, "type": "purchase", "value": 42.0}
    ]
    assert call(server, "POST", "/v1/events", json={"events": events})["accepted"] == 4
    call(other, "PUT", f"/v1/users/{user}", json={"attributes": {"tier": "gold", "email": f"{user}@example.com"}})
    decided = []
    for index in range(count):
        answer = call((server, other)[index % 2], "POST", "/v1/decide", json={"user_id": user, "context": {}})
        decided.append(answer)
    items = [
        {"decision_id": answer["decision_id"], "slot": "banner", "type": "click", "id": f"{user}-fb{index}"}
        for index, answer in enumerate(decided)
    ]
    items.append(
        {
            "decision_id": decided[0]["decision_id"],
            "slot": "banner",
            "type": "conversion",
            "value": 30.0,
            "id": f"{user}-cv",
        }
    )

    def counted() -> bool:  # join records are written off the response path: retry until they are there
        result = call(other, "POST", "/v1/feedback", json={"items": items})
        return not [r for r in result["results"] if r["status"] == "unknown_decision"]

    eventually(counted, "the join records of the decisions")
    return [answer["decision_id"] for answer in decided]


def predictions(server: Server) -> tuple[float, float]:
    found = {}
    for line in server.http.get("/metrics").text.splitlines():
        if line.startswith("tailor_model_predictions_total{"):
            found[line.split('"')[1]] = float(line.split()[-1])
    return found["computed"], found["cache"]


def test_two_servers_on_redis_erase_a_user_everywhere(rules: Path, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as store, servers(tmp_path) as start:
        a = start(rules, "--redis", store.url)
        b = start(rules, "--redis", store.url)
        client = redis.Redis(port=store.port)
        eventually(lambda: client.pubsub_numsub("tailor:erasures")[0][1] == 2, "both servers to subscribe")
        gone = fill(a, b, GONE, 4)
        kept = fill(b, a, KEPT, 3)
        eventually(lambda: client.xlen("tailor:decisions") == len(gone) + len(kept), "the decisions in the Stream")

        # The other server caches the erased user's model score (and the kept user's).
        explain = {"context": {"device": "mobile"}, "features": MODEL_INPUTS, "slots": ["hero"]}
        computed, cached = predictions(b)  # the decisions above may have run the model too
        for user in (GONE, KEPT, GONE, KEPT):
            assert "p_click" in call(b, "POST", "/v1/explain", json={"user_id": user, **explain})["explain"]["models"]
        assert predictions(b) == (computed + 2, cached + 2)

        exported = call(b, "GET", f"/v1/users/{GONE}/export")
        assert exported["store"]["profile"] == {"tier": "gold", "email": f"{GONE}@example.com"}
        assert {(s["event"], s["key"]) for s in exported["store"]["series"]} >= {
            ("view", "Electronics"),
            ("purchase", "any"),
            ("click", "sidebar_reviews"),
        }
        assert sorted(j["decision_id"] for j in exported["store"]["joins"]) == sorted(gone)
        assert sorted(r["decision_id"] for r in exported["decisions"]) == sorted(gone)  # two processes log them
        assert exported["decision_log"] == "stream"
        exposures = {e["experiment"]: e["arm"] for e in exported["store"]["exposures"]}
        assert exposures["banner_test"] in ("plain", "bold")  # the retail ruleset's own experiments too
        assert [(v["experiment"], v["value"]) for v in exported["store"]["experiment_values"]] == [
            ("banner_test", 30.0)
        ]
        assert len(exported["store"]["feedback_ids"]) == len(gone) + 1 and len(exported["store"]["event_ids"]) >= 3
        assert any(j["experiments"] for j in exported["store"]["joins"])
        assert any(GONE.encode() in part for _, part in key_parts(client))

        erased = call(a, "DELETE", f"/v1/users/{GONE}")
        assert erased["processes_notified"] == 2
        assert erased["decision_log"] == {
            "sink": "stream",
            "deleted": len(gone),
            "pending_files": 0,
            "dropped": 0,
            "summary": f"stream: deleted {len(gone)}",
        }
        assert erased["store"] == {
            "profile_attributes": 2,
            "series": len(exported["store"]["series"]),
            "event_ids": erased["store"]["event_ids"],
            "exposures": len(exposures),
            "experiment_values": 1,
            "joins": len(gone),
            "feedback_ids": len(gone) + 1,
        }
        assert erased["store"]["event_ids"] >= 3

        left = [(key, part) for key, part in key_parts(client) if GONE.encode() in part]
        assert left == []
        assert sum(KEPT.encode() in part for _, part in key_parts(client)) > 10
        assert call(a, "GET", f"/v1/users/{KEPT}/export")["store"]["joins"]
        assert client.xlen("tailor:decisions") == len(kept)

        empty = call(b, "GET", f"/v1/users/{GONE}/export")
        assert not any(empty["store"].values()) and empty["decisions"] == []

        # The other server heard of it, and computes the erased user's score again; the kept user's is cached.
        eventually(lambda: b.metric('tailor_erasures_total{origin="notice"}') == 1, "the notice")
        for user in (GONE, KEPT):
            call(b, "POST", "/v1/explain", json={"user_id": user, **explain})
        assert predictions(b) == (computed + 3, cached + 3)

        again = call(b, "DELETE", f"/v1/users/{GONE}")
        assert not any(again["store"].values()) and again["decision_log"]["deleted"] == 0
        client.close()


def log_lines(directory: Path) -> list[bytes]:
    lines = []
    for path in sorted(directory.glob("decisions-*")):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        lines += data.splitlines()
    return lines


def test_the_memory_store_and_log_files(rules: Path, tmp_path: Path) -> None:
    logs = tmp_path / "log"
    with servers(tmp_path) as start:
        server = start(rules, "--decision-log", str(logs), "--log-max-bytes", "4000")
        gone = fill(server, server, GONE, 6)
        fill(server, server, KEPT, 2)
        eventually(lambda: len(log_lines(logs)) == 8, "the decisions in the files")
        exported = call(server, "GET", f"/v1/users/{GONE}/export")
        assert [r["decision_id"] for r in exported["decisions"]] == gone and exported["decision_log"] == "files"
        assert exported["store"]["profile"]["tier"] == "gold" and exported["store"]["joins"]

        erased = call(server, "DELETE", f"/v1/users/{GONE}")
        files = erased["decision_log"]["pending_files"]
        assert files >= 1  # the file being written, and any rotated before (how many depends on batching)
        assert erased["decision_log"]["summary"] == f"files: will be rewritten at next rotation ({files} files pending)"
        assert erased["processes_notified"] == 1 and erased["store"]["joins"] == len(gone)
        assert not any(call(server, "GET", f"/v1/users/{GONE}/export")["store"].values())
        assert any(GONE.encode() in line for line in log_lines(logs))  # not before the next rotation

        # Decisions for the kept user fill the current file, and its rotation applies the erasure.
        def rewritten() -> bool:
            call(server, "POST", "/v1/decide", json={"user_id": KEPT, "context": {}})
            return not (logs / "pending-erasures.json").exists()

        eventually(rewritten, "the pending erasure to be applied")
        lines = log_lines(logs)
        assert not any(GONE.encode() in line for line in lines)
        assert sum(KEPT.encode() in line for line in lines) >= 3
        assert call(server, "GET", f"/v1/users/{GONE}/export")["decisions"] == []
