"""tailor serve's reload and model-file flags reach the running server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from server_process import servers

from bench.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_a_model_over_model_max_bytes_stops_startup_on_its_model_line(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rulesets" / "retail", tmp_path / "retail")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailor.cli",
            "serve",
            "retail",
            "--port",
            str(free_port()),
            "--model-max-bytes",
            "1000",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    source = (tmp_path / "retail" / "retail.rules").read_text().splitlines()
    line = next(number for number, text in enumerate(source, 1) if text.startswith("model p_click"))
    expected = (
        f"retail/retail.rules:{line}:1: error: model p_click: model file retail/models/p_click.onnx is larger than 1000"
    )
    assert expected in done.stdout


def test_bad_reload_flags_are_usage_errors(tmp_path: Path) -> None:
    for flag, value in (("--reload-timeout", "0"), ("--settle-ms", "-1"), ("--model-read-timeout", "nan")):
        done = subprocess.run(
            [sys.executable, "-m", "tailor.cli", "serve", str(ROOT / "rulesets" / "retail"), flag, value],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (flag, done.stderr)
        assert flag in done.stderr


def test_readiness_reports_the_age_of_the_last_reload_check(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rulesets" / "retail", tmp_path / "retail")
    with servers(tmp_path) as start:
        server = start(tmp_path / "retail", "--settle-ms", "50", "--reload-timeout", "30")
        body = server.http.get("/readyz").json()
        assert body["status"] == "ready"
        assert isinstance(body["reload_check_age_seconds"], float) and body["reload_check_age_seconds"] >= 0


def test_the_memory_store_bound_and_its_warning_reach_the_server(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rulesets" / "retail", tmp_path / "retail")
    with servers(tmp_path) as start:
        server = start(tmp_path / "retail", "--memory-max-users", "2")
        events = [{"user_id": f"u{n}", "type": "view", "key": "Books", "id": f"e{n}"} for n in range(5)]
        answer = server.http.post("/v1/events", json={"events": events}, headers=server.auth)
        assert answer.status_code == 200 and answer.json()["accepted"] == 5
        assert server.metric("tailor_memory_store_evicted_users_total") == 3.0
        assert "at most 2 users; its data is lost when the process exits" in server.output()
