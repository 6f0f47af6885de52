"""Hot reload and degradation, end to end: a real ``tailor serve`` process, real files, a real Redis.

Waiting is always a bounded polling loop on what the API says, never a sleep
of a guessed length and never an assertion on how long something took. How
hot reload survives what files and file systems do to it is in
test_reload_failures.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import no_redis, start_redis
from server_process import KEY, WAIT, Server, children, eventually, running, servers

from bench.ports import free_port
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.reload import Reloader
from tailor.runtime.service import DecisionService

SHOP = """\
ruleset shop

content vip = {"id": "vip"}
content fan = {"id": "fan"}
content generic = {"id": "generic"}

rule vip_banner
  when user.tier == "gold"
  then show vip in hero
  priority 30

rule electronics_fan
  when views("Electronics", 24h) > 2
  then show fan in hero
  priority 20

default show generic in hero
"""
# --- in process: coalescing ---


def test_a_burst_of_requests_makes_one_reload_and_a_change_during_one_makes_one_more(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    service = DecisionService(tmp_path, MemoryStore())
    first = service.open().version

    async def scenario() -> None:
        reloader = Reloader(service)
        reloader.start(watch=False)
        for priority in range(10):  # ten saves before the worker wakes: one reload of the last
            (tmp_path / "shop.rules").write_text(SHOP.replace("priority 30", f"priority {40 + priority}"))
            reloader.request()
        while reloader.busy:
            await asyncio.sleep(0.005)
        assert reloader.attempts == 1
        assert service.current is not None
        assert service.current.rules[0].priority == 49

        worker = reloader.compiler.pid
        assert worker is not None
        os.kill(worker, signal.SIGSTOP)  # the next compile waits in the worker, as a long one would
        try:
            reloader.request()
            while not reloader.compiler.busy:
                await asyncio.sleep(0.005)
            for priority in range(5):  # changes while a reload runs: exactly one more, on the final state
                (tmp_path / "shop.rules").write_text(SHOP.replace("priority 30", f"priority {60 + priority}"))
                reloader.request()
        finally:
            os.kill(worker, signal.SIGCONT)
        while reloader.busy:
            await asyncio.sleep(0.005)
        assert reloader.attempts == 3
        assert service.current.rules[0].priority == 64
        await reloader.stop()

    asyncio.run(scenario())
    assert service.previous[0].version == first
    registry = service.metrics.registry
    assert registry.get_sample_value("tailor_reloads_total", {"outcome": "ok"}) == 2  # the 2nd saw the final file
    assert registry.get_sample_value("tailor_reloads_total", {"outcome": "unchanged"}) == 1


def test_a_reload_compiles_in_a_worker_process_while_decisions_are_answered(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    service = DecisionService(tmp_path, MemoryStore())
    first = service.open().version

    async def hero() -> tuple[str, str]:
        served, outcomes, _ = await service.decide("u", {}, ["hero"], {"user.tier": "gold"})
        return served.version, outcomes.decision.slots["hero"].content

    async def scenario() -> int:
        reloader = Reloader(service)
        reloader.start(watch=False)
        worker = reloader.compiler.pid
        assert worker is not None and worker != os.getpid()
        os.kill(worker, signal.SIGSTOP)  # a compile that takes its time: only that process waits
        try:
            (tmp_path / "shop.rules").write_text(SHOP.replace("show vip in hero", "show fan in hero"))
            reloader.request()
            while not reloader.compiler.busy:
                await asyncio.sleep(0.005)
            for _ in range(20):
                assert await hero() == (first, "vip")
            assert reloader.busy and service.current.version == first
        finally:
            os.kill(worker, signal.SIGCONT)
        while reloader.busy:
            await asyncio.sleep(0.005)
        assert (await hero())[1] == "fan"
        assert reloader.compiler.pid == worker  # one worker for every reload
        await reloader.stop()
        return worker

    worker = asyncio.run(scenario())
    assert not running(worker)
    assert service.last_error is None


def test_a_reload_parses_only_the_changed_file(tmp_path: Path) -> None:
    head, _, rules = SHOP.partition("rule vip_banner")
    (tmp_path / "a.rules").write_text(head)
    (tmp_path / "b.rules").write_text("rule vip_banner" + rules)
    (tmp_path / "c.rules").write_text('rule c when context.page == "c" then show fan in hero\n')
    service = DecisionService(tmp_path, MemoryStore())
    service.open()
    misses, hits = service.cache.misses, service.cache.hits
    (tmp_path / "c.rules").write_text('rule c when context.page == "d" then show fan in hero\n')
    service.install(service.prepare())
    assert service.cache.misses - misses == 1
    assert service.cache.hits - hits == 2


def test_the_watcher_reloads_a_single_file_ruleset(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    path.write_text(SHOP)
    (tmp_path / "notes.txt").write_text("not rules")
    service = DecisionService(path, MemoryStore())
    first = service.open().version

    async def scenario() -> None:
        reloader = Reloader(service)
        reloader.start()
        await asyncio.sleep(0.2)  # let the watcher start; a change before it would be missed
        (tmp_path / "notes.txt").write_text("still not rules")
        path.write_text(SHOP.replace("priority 30", "priority 31"))
        deadline = time.monotonic() + WAIT
        while service.current is not None and service.current.version == first:
            assert time.monotonic() < deadline, "the edit was never picked up"
            await asyncio.sleep(0.02)
        await reloader.stop()

    asyncio.run(scenario())
    assert service.current is not None and service.current.rules[0].priority == 31


# --- a real server ---


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    with servers(tmp_path) as start:
        yield start


def test_edits_are_served_without_a_restart(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    rules = root / "shop.rules"
    rules.write_text(SHOP)
    server = start_server(root, "--stats-sample", "1")
    first = server.ruleset()
    assert first["last_error"] is None
    assert server.decide(features={"user.tier": "gold"})["slots"]["hero"]["content"] == "vip"

    # an edit: the served version changes, and decisions follow it
    rules.write_text(SHOP.replace('user.tier == "gold"', 'user.tier == "platinum"'))
    second = eventually(lambda: (r := server.ruleset())["version"] != first["version"] and r, "the edit")
    decision = server.decide(features={"user.tier": "gold"})
    assert decision["ruleset"]["version"] == second["version"]
    assert decision["slots"]["hero"]["content"] == "generic"
    assert [p["version"] for p in second["previous"]] == [first["version"]]

    # a broken edit: the old version keeps serving, last_error says why
    rules.write_text(SHOP + "\nrule broken when views(24h) > then show vip in hero\n")
    broken = eventually(lambda: (r := server.ruleset())["last_error"] and r, "the failed reload")
    assert broken["version"] == second["version"]
    (problem,) = broken["last_error"]
    assert problem["file"].endswith("shop.rules")
    assert problem["line"] == SHOP.count("\n") + 2
    assert server.decide()["ruleset"]["version"] == second["version"]
    assert "ruleset reload failed" in server.output()

    # a fix: served, and the error is gone
    rules.write_text(SHOP.replace("priority 20", "priority 40"))
    third = eventually(lambda: (r := server.ruleset())["version"] != second["version"] and r, "the fix")
    assert third["last_error"] is None
    assert third["version"] != first["version"]

    # rollback needs the key, and returns to the previous good version
    assert server.http.post("/v1/ruleset/rollback").status_code == 401
    response = server.http.post("/v1/ruleset/rollback", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.json()["version"] == second["version"]
    assert server.decide()["ruleset"]["version"] == second["version"]

    # the statistics the decisions sampled, downloaded for the compiler
    out = tmp_path / "stats.json"
    result = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "stats", "--url", server.url, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TAILOR_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    assert stats["predicates"]['user.tier == "gold"']["evaluated"] >= 1
    compiled = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "compile", str(root), "--stats", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert server.stop() == 0


def test_serve_compiles_in_a_child_that_stops_with_it(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    rules = root / "shop.rules"
    rules.write_text(SHOP)
    server = start_server(root)
    first = server.ruleset()["version"]
    (worker,) = eventually(
        lambda: [pid for pid, command in children(server.process.pid) if "compile_worker" in command] or None,
        "the worker",
    )
    os.kill(worker, signal.SIGSTOP)  # a compile that never ends: only the worker waits, the server answers
    rules.write_text(SHOP.replace("priority 20", "priority 40"))
    eventually(lambda: server.metric("tailor_reload_compiling") == 1, "the reload to start")
    for _ in range(10):
        assert server.decide(features={"user.tier": "gold"})["ruleset"]["version"] == first
    assert server.stop() == 0  # Ctrl-C during the compile: the server stops, and ends its worker
    assert not running(worker)


def test_serve_refuses_a_broken_ruleset_with_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "bad.rules").write_text("when x > then show a\n")
    result = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "serve", str(tmp_path / "bad.rules"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "bad.rules:1:10: error:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "--workers above 1 needs --redis"),
        (["--retention", "2h"], "--retention must be at least 1d"),
        (["--retention", "soon"], "is not a duration"),
    ],
)
def test_serve_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    env = {k: v for k, v in os.environ.items() if k != "TAILOR_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "serve", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_decisions_degrade_while_redis_is_down_and_recover(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    if shutil.which("redis-server") is None:
        no_redis("no redis-server to start and stop")
    (tmp_path / "shop.rules").write_text(SHOP)
    port = free_port()
    redis_process = start_redis(port)
    try:
        server = start_server(tmp_path, "--redis", f"redis://127.0.0.1:{port}/0", "--deadline-ms", "500")
        auth = {"Authorization": f"Bearer {KEY}"}
        events = {"events": [{"user_id": "u", "type": "view", "key": "Electronics"}] * 3}
        assert server.http.post("/v1/events", json=events, headers=auth).status_code == 200
        decision = server.decide()
        assert decision["degraded"] is False
        assert decision["slots"]["hero"]["content"] == "fan"

        redis_process.terminate()
        redis_process.wait(timeout=30)
        decision = server.decide()
        assert decision["degraded"] is True
        assert decision["slots"]["hero"]["content"] == "generic"
        assert server.http.get("/readyz").status_code == 503
        assert server.http.post("/v1/events", json=events, headers=auth).status_code == 503
        assert server.http.get("/healthz").status_code == 200

        redis_process = start_redis(port)  # empty: no persistence
        recovered = eventually(lambda: (d := server.decide())["degraded"] is False and d, "decisions to recover")
        assert recovered["slots"]["hero"]["content"] == "generic"
        assert server.http.post("/v1/events", json=events, headers=auth).status_code == 200
        assert server.decide()["slots"]["hero"]["content"] == "fan"
        assert server.http.get("/readyz").status_code == 200
        metrics = server.http.get("/metrics").text
        degraded = [line for line in metrics.splitlines() if line.startswith("tailor_degraded_decisions_total{")]
        assert sum(float(line.split()[-1]) for line in degraded) >= 1
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=30)


def test_a_changed_model_file_reloads_and_a_broken_one_keeps_the_old_serving(tmp_path: Path) -> None:
    retail = tmp_path / "retail"
    shutil.copytree(Path(__file__).resolve().parents[1] / "rulesets" / "retail", retail)
    model = retail / "models" / "p_click.onnx"
    good = model.read_bytes()
    service = DecisionService(retail, MemoryStore())
    first = service.open().version

    async def scenario() -> None:
        reloader = Reloader(service)
        reloader.start()
        await asyncio.sleep(0.2)  # let the watcher start; a change before it would be missed
        model.write_bytes(b"not a model")  # a bad file: the old version and its model keep serving
        deadline = time.monotonic() + WAIT
        while service.last_error is None:
            assert time.monotonic() < deadline, "the broken model was never noticed"
            await asyncio.sleep(0.02)
        assert service.current is not None and service.current.version == first
        assert any(d["message"].startswith("model p_click: not a valid ONNX model") for d in service.last_error)
        model.write_bytes(good)  # fixed: the next reload serves again, and clears the error
        while service.last_error is not None:
            assert time.monotonic() < deadline + WAIT, "the fixed model was never picked up"
            await asyncio.sleep(0.02)
        await reloader.stop()

    asyncio.run(scenario())
    assert service.current is not None and service.current.ruleset.models["p_click"].version
