"""A ``redis-server`` of one test's own, on a free loopback port, to shut down, restart and pause.

The shared Redis of the tests must not be stopped, so a fault test starts its
own. It takes no snapshots on a timer (``--save ""``), but a restart shuts it
down with ``SHUTDOWN SAVE`` and starts it again on the same directory, so the
data survives as it does for a Redis with persistence: the test is about what
tailor loses, not about what a Redis without persistence forgets.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from bench.ports import free_port

WAIT = 60.0  # seconds: the bound of every wait on the process (reached only when something is broken)


class RedisProcess:
    """One ``redis-server`` subprocess; ``kill`` (or the ``private_redis`` context) always ends it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=5)

    def start(self) -> None:
        """Start it (loading the snapshot a ``shutdown`` left) and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--daemonize", "no", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if self.client.ping():
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    def shutdown(self) -> None:
        """``SHUTDOWN SAVE``: clients are cut off, and what was stored is kept for ``start``."""
        self.client.shutdown(save=True)
        assert self.process is not None
        self.process.wait(timeout=WAIT)

    def pause(self, seconds: float) -> None:
        """``CLIENT PAUSE``: Redis holds every client's commands (and runs them) once ``seconds`` pass."""
        self.client.client_pause(round(seconds * 1000))

    def freeze(self) -> None:
        """SIGSTOP: the process stops answering, though the kernel still accepts connections."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        process, self.process = self.process, None
        self.client.close()
        if process is not None and process.poll() is None:
            process.kill()  # SIGKILL ends a frozen (SIGSTOPped) process too
            process.wait(timeout=WAIT)


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[RedisProcess]:
    """A started ``RedisProcess`` that is killed on exit, whatever state the test left it in."""
    server = RedisProcess(directory)
    try:
        server.start()
        yield server
    finally:
        server.kill()
