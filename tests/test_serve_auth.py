"""``tailor serve`` as an operator starts it: who may call what, and the options it refuses to start with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.ports import free_port

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHOP = """\
ruleset shop

content vip = {"id": "vip"}
content generic = {"id": "generic"}

rule vip_banner
  when user.tier == "gold" and total("purchase", "any", 30d) > 100
  then show vip in hero

default show generic in hero
"""
EVERY_ENDPOINT_BUT = "authentication: API key required on every endpoint except /healthz, /readyz, /metrics"


def environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "TAILOR_API_KEY"}
    return {**env, **extra}


def run_serve(path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", "serve", str(path), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    return root


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """Start ``tailor serve`` and wait until it answers; returns its client and a reader of its log."""
    processes: list[subprocess.Popen[bytes]] = []

    def started(path: Path, *args: str, env: dict[str, str]) -> tuple[httpx.Client, Path]:
        port = free_port()
        log = tmp_path / f"serve-{len(processes)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "tailor.cli", "serve", str(path), "--port", str(port), *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        processes.append(process)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"tailor serve exited:\n{log.read_text()}"
            try:
                if client.get("/healthz").status_code == 200:
                    return client, log
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"tailor serve did not start:\n{log.read_text()}"
            time.sleep(0.1)

    yield started
    for process in processes:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def authentication_lines(log: Path) -> list[str]:
    return [line.split("authentication:", 1)[1] for line in log.read_text().splitlines() if "authentication:" in line]


def test_with_a_key_per_user_data_needs_it(rules: Path, start) -> None:
    client, log = start(rules, env=environment(TAILOR_API_KEY=KEY))
    assert authentication_lines(log) == [EVERY_ENDPOINT_BUT.removeprefix("authentication:")]
    purchase = {"events": [{"user_id": "u", "type": "purchase", "value": 250}]}
    assert client.post("/v1/events", json=purchase, headers=AUTH).status_code == 200
    assert client.put("/v1/users/u", json={"attributes": {"tier": "gold"}}, headers=AUTH).status_code == 200
    for method, path, body in (
        ("POST", "/v1/explain", {"user_id": "u"}),
        ("POST", "/v1/decide", {"user_id": "u"}),
        ("GET", "/v1/ruleset", None),
        ("GET", "/v1/stats", None),
    ):
        refused = client.request(method, path, json=body)
        assert refused.status_code == 401, path
        assert "250" not in refused.text
    explained = client.post("/v1/explain", json={"user_id": "u"}, headers=AUTH).json()
    assert explained["explain"]["values"]['total("purchase", "any", 30d)'] == 250
    assert explained["slots"]["hero"]["content"] == "vip"
    ruleset = client.get("/v1/ruleset", headers=AUTH).json()
    assert ruleset["files"] == ["shop.rules"]
    assert str(rules) not in client.get("/v1/ruleset", headers=AUTH).text
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_public_decisions_open_decide_alone(rules: Path, start) -> None:
    client, log = start(rules, "--api-key", KEY, "--public-decisions", env=environment())
    assert authentication_lines(log) == [
        EVERY_ENDPOINT_BUT.removeprefix("authentication:") + "; /v1/decide is public (--public-decisions)"
    ]
    assert client.post("/v1/decide", json={"user_id": "u"}).status_code == 200
    assert client.post("/v1/explain", json={"user_id": "u"}).status_code == 401
    assert client.get("/v1/ruleset").status_code == 401


def test_without_a_key_the_log_says_so(rules: Path, start) -> None:
    client, log = start(rules, env=environment())
    assert authentication_lines(log) == [" none (no API key set)"]
    assert client.post("/v1/explain", json={"user_id": "u"}).status_code == 200
    features = (
        "--feature",
        "user.tier=gold",
        "--feature",
        'total( "purchase","any",720h)=500',
        "--feature",
        "user.age=3",
    )
    remote = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "explain", "--url", str(client.base_url), "--user", "u", *features],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert remote.returncode == 0, remote.stderr
    assert "hero: vip  (by rule vip_banner)" in remote.stdout
    assert remote.stderr == "tailor: --feature user.age: not used, the ruleset does not read it\n"


def test_the_old_protect_reads_flag_still_starts(rules: Path, start) -> None:
    client, log = start(rules, "--protect-reads", env=environment(TAILOR_API_KEY=KEY))
    assert "--protect-reads is the default now" in log.read_text()
    assert authentication_lines(log) == [EVERY_ENDPOINT_BUT.removeprefix("authentication:")]
    assert client.post("/v1/decide", json={"user_id": "u"}).status_code == 401


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"TAILOR_API_KEY": ""}, "TAILOR_API_KEY is set but empty"),
        ((), {"TAILOR_API_KEY": "  "}, "TAILOR_API_KEY is set but empty"),
        (("--api-key", ""), {}, "--api-key is set but empty"),
        (("--api-key", ""), {"TAILOR_API_KEY": KEY}, "--api-key is set but empty"),
    ],
)
def test_an_empty_key_stops_startup(rules: Path, args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    """A secret that failed to mount is empty: serving without authentication would be silent."""
    result = run_serve(rules, *args, env=environment(**env))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", "", "redis:/localhost"])
def test_a_redis_url_of_another_scheme_stops_startup(rules: Path, url: str) -> None:
    result = run_serve(rules, "--redis", url, env=environment())
    assert result.returncode == 2, result.stderr
    assert f"--redis {url!r} is not a Redis URL" in result.stderr
    assert "redis://, rediss:// or unix://" in result.stderr


def test_flags_that_need_a_key(rules: Path) -> None:
    for flag in ("--public-decisions", "--protect-reads"):
        result = run_serve(rules, flag, env=environment())
        assert result.returncode == 2
        assert f"{flag} needs an API key" in result.stderr
