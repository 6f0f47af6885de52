"""``tailor serve`` in a subprocess, and waiting on what it answers.

Waiting is always a bounded polling loop on what the API says, never a sleep
of a guessed length and never an assertion on how long something took.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.ports import free_port

KEY = "reload-test-key"
WAIT = 60.0  # seconds: the bound of every polling loop (reached only when something is broken)

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll until ``probe`` returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has, whoever reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children(pid: int) -> list[tuple[int, str]]:
    """The running child processes of ``pid``, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry.name), command))
    return found


class Server:
    """``tailor serve`` in a subprocess on a free port, its output in a file."""

    def __init__(self, path: Path, *args: str, log: Path, key: str | None = KEY):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {name: value for name, value in os.environ.items() if name != "TAILOR_API_KEY"}
        if key is not None:
            env["TAILOR_API_KEY"] = key
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tailor.cli", "serve", str(path), "--port", str(self.port), *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.auth = {"Authorization": f"Bearer {key}"} if key is not None else {}  # every endpoint but the probes

    def wait_ready(self) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"tailor serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        eventually(up, "the server to start")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ruleset(self) -> dict[str, Any]:
        response = self.http.get("/v1/ruleset", headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def decide(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/v1/decide", json={"user_id": "u", **body}, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric, None when it has no sample."""
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 30) -> int | None:
        """Send ``sig`` and wait; the exit code, or None when the process ignored it (it is then killed)."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode


@contextlib.contextmanager
def servers(logs: Path) -> Iterator[Callable[..., Server]]:
    """A ``start(path, *args)`` that starts a ready server; every one is stopped on exit."""
    started: list[Server] = []

    def start(path: Path, *args: str, key: str | None = KEY) -> Server:
        server = Server(path, *args, log=logs / f"server-{len(started)}.log", key=key)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
