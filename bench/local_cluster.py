"""A local Redis Cluster of a test's own: three masters and three replicas on free loopback ports.

Six ``redis-server --cluster-enabled yes`` processes in a temporary directory,
joined by ``redis-cli --cluster create ... --cluster-replicas 1``. The context
manager stops every process on the way out, failure included, so no test
leaves a server behind. Waits are bounded polling loops on what the nodes say.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

WAIT = 60.0  # seconds: the bound of every wait (reached only when something is broken)
MASTERS = 3
BUS_OFFSET = 10000  # a node's cluster bus listens on its port plus this


def cluster_port() -> int:
    """A free port whose bus port is free too; below 55536, so the bus port exists."""
    while True:
        port = random.randrange(20000, 45000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + BUS_OFFSET):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port


@dataclass
class Node:
    """One ``redis-server`` of the cluster."""

    port: int
    process: subprocess.Popen[bytes]
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=5)

    def alive(self) -> bool:
        return self.process.poll() is None

    def role(self) -> str:
        return self.client.info("replication")["role"]

    def kill(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)


class LocalCluster:
    """The six nodes; ``url`` names one master, which is all a cluster client needs to find the rest."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.alive()]

    def masters(self) -> list[Node]:
        return [node for node in self.live() if node.role() == "master"]

    def commands(self) -> dict[str, int]:
        """Calls per command summed over the live masters (``INFO commandstats``), e.g. ``{"evalsha": 12}``."""
        total: dict[str, int] = {}
        for node in self.masters():
            for name, stats in node.client.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                total[command] = total.get(command, 0) + int(stats["calls"])
        return total

    def reset_stats(self) -> None:
        for node in self.live():
            node.client.config_resetstat()

    def wait_ok(self) -> None:
        """Until every live node says ``cluster_state:ok`` and sees three masters with slots."""
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(redis.RedisError):
                infos = [node.client.cluster("info") for node in self.live()]
                if all(_field(info, "cluster_state") == "ok" for info in infos) and all(
                    int(_field(info, "cluster_size")) == MASTERS for info in infos
                ):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def fail_over(self, master_port: int | None = None) -> Node:
        """``CLUSTER FAILOVER`` on a replica (of the master on ``master_port``, when given): it becomes a
        master; returns it once the cluster agrees."""
        replica = next(
            node
            for node in self.live()
            if node.role() == "slave" and master_port in (None, int(node.client.info("replication")["master_port"]))
        )
        replica.client.execute_command("CLUSTER", "FAILOVER")
        deadline = time.monotonic() + WAIT
        while replica.role() != "master":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not take over")
            time.sleep(0.05)
        self.wait_ok()
        return replica

    def flush(self) -> None:
        for node in self.masters():
            node.client.flushall()


def _field(info: object, name: str) -> str:
    """A field of ``CLUSTER INFO``, whichever shape the client gave it (text or parsed)."""
    if isinstance(info, dict):
        value = info[name]
        return value.decode() if isinstance(value, bytes) else str(value)
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise KeyError(name)


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    """Start six nodes, join them, wait for ``cluster_state:ok``; stop them all on exit."""
    nodes: list[Node] = []
    try:
        for _ in range(2 * MASTERS):
            port = cluster_port()
            home = directory / str(port)
            home.mkdir(parents=True)
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", str(home / "nodes.conf"), "--cluster-node-timeout", "2000"]
            args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(home)]
            with (home / "redis.log").open("wb") as log:
                nodes.append(Node(port, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)))
        for node in nodes:
            deadline = time.monotonic() + WAIT
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if node.client.ping():
                        break
                if not node.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {node.port} did not start")
                time.sleep(0.02)
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes)]
        subprocess.run(
            [*create, "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=WAIT
        )
        cluster = LocalCluster(nodes)
        cluster.wait_ok()
        # Every replica has synced, so a fail-over loses nothing written before it.
        deadline = time.monotonic() + WAIT
        while sum(node.role() == "slave" for node in nodes) < MASTERS:
            if time.monotonic() > deadline:
                raise RuntimeError("the replicas did not attach")
            time.sleep(0.05)
        yield cluster
    finally:
        for node in nodes:
            node.kill()
