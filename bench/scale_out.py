"""Two ``tailor serve`` processes over a Redis Cluster against one, in the same run.

Run: python -m bench.scale_out [--quick]

A local Redis Cluster (three masters, three replicas, ``bench.local_cluster``)
is seeded through ``RedisStore`` with the users of ``bench.serve`` (their
event history and profiles). Three servers serve the generated 1,000-rule
ruleset over it: one measured alone, then two measured together, the load
split evenly between them. Each round measures saturation (closed loop,
``bench.loadgen``) of the one, then of the pair, in alternating order; the
target is the median of the per-round ratios, pair over one.

The load generator, the servers and the six Redis nodes share the machine's
cores. On a machine of two cores the pair cannot reach twice one server: the
generator alone takes a good part of a core. The CPU count is printed beside
the figure, and the target says so when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from tailor.runtime.events import Event
from tailor.runtime.redis_store import RedisStore

from . import loadgen
from .local_cluster import local_cluster
from .ports import free_port
from .serve import (
    BATCH,
    PATIENT_TIMEOUT,
    SEED_CONCURRENCY,
    Process,
    encode,
    make_requests,
    start,
    user_id,
    wait_ready,
)
from .serve_workloads import RULES, SERVER_FLAGS
from .serve_workloads import bench_events as user_events
from .targets import Target
from .workload import COUNTRIES, TIERS, ruleset_text

SCALE_TARGET = 1.7  # two processes saturate at least this many times what one does


@dataclass(frozen=True, slots=True)
class Settings:
    users: int
    pool: int  # distinct requests, cycled
    rounds: int
    seconds: float  # measured per saturation phase
    warmup: float
    connections: int  # per server


FULL = Settings(users=3000, pool=20_000, rounds=5, seconds=5.0, warmup=1.0, connections=16)
QUICK = Settings(users=500, pool=5_000, rounds=2, seconds=2.0, warmup=0.5, connections=8)


async def _seed(url: str, users: int, seed: int = 5) -> int:
    """The users of ``bench.serve``, written through a cluster ``RedisStore``; the events written."""
    store = RedisStore(url, timeout=PATIENT_TIMEOUT, cluster=True)
    rng = random.Random(seed)
    now = time.time()
    events: list[Event] = []
    for index in range(users):
        events += user_events(rng, user_id(index), now)
    gate = asyncio.Semaphore(SEED_CONCURRENCY)

    async def record(batch: list[Event]) -> None:
        async with gate:
            await store.record(batch)

    async def profile(index: int) -> None:
        async with gate:
            await store.set_profile(user_id(index), {"tier": rng.choice(TIERS), "country": rng.choice(COUNTRIES)})

    try:
        await asyncio.gather(*(record(events[i : i + BATCH]) for i in range(0, len(events), BATCH)))
        await asyncio.gather(*(profile(index) for index in range(users)))
    finally:
        await store.close()
    return len(events)


def saturation(ports: Sequence[int], requests: dict[int, list[bytes]], settings: Settings) -> float:
    """Decisions per second of the servers on ``ports`` loaded at once, the connections split between them."""

    async def together() -> list[loadgen.ClosedLoopResult]:
        loops = [
            loadgen.closed_loop(
                port,
                requests[port],
                connections=settings.connections,
                duration=settings.seconds,
                warmup=settings.warmup,
            )
            for port in ports
        ]
        return await asyncio.gather(*loops)

    results = loadgen.run(together())
    for result in results:
        if result.errors or result.statuses[200] != result.completed:
            raise SystemExit(f"not every decision was answered: {result.errors} errors, {dict(result.statuses)}")
    return sum(result.throughput for result in results)


def run(settings: Settings, say: Any = lambda message: None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tailor-scale-"))
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "settings": asdict(settings),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    processes: list[Process] = []
    say("starting a Redis Cluster")
    with local_cluster(workdir / "cluster") as cluster:
        try:
            rules = workdir / "rules"
            rules.mkdir()
            (rules / "bench.rules").write_text(ruleset_text(RULES))
            args = ["tailor.cli", "serve", str(rules), "--redis", cluster.url, "--redis-cluster", *SERVER_FLAGS]
            ports = [free_port() for _ in range(3)]
            for n, port in enumerate(ports):
                processes.append(start(f"server-{n}", [*args, "--port", str(port)], port, workdir))
            say(f"seeding {settings.users:,} users")
            results["events"] = asyncio.run(_seed(cluster.url, settings.users))
            for process in processes:
                wait_ready(process, "/readyz")
            bodies = make_requests(settings.users, settings.pool)
            requests = {port: encode(bodies, port) for port in ports}
            say("warming up")
            for port in ports:
                loadgen.run(loadgen.open_loop(port, requests[port], 200.0, 1.0, connections=4))
            one, two, ratios = [], [], []
            for n in range(settings.rounds):
                say(f"round {n + 1} of {settings.rounds}")
                order = [False, True] if n % 2 == 0 else [True, False]
                measured = {}
                for pair in order:
                    measured[pair] = saturation(ports[1:] if pair else ports[:1], requests, settings)
                one.append(measured[False])
                two.append(measured[True])
                ratios.append(measured[True] / measured[False])
            results |= {"one": one, "two": two, "ratios": ratios, "ratio": statistics.median(ratios)}
        finally:
            for process in processes:
                process.stop()
    return results


def targets(results: dict[str, Any]) -> list[Target]:
    return [
        Target(
            "two servers over the cluster / one, saturation",
            results.get("ratio"),
            SCALE_TARGET,
            "x",
            lower_is_better=False,
            why=f"{results.get('cpus')} CPUs shared by the load generator, the servers and six Redis nodes",
        )
    ]


def report(results: dict[str, Any], command: str, out: TextIO = sys.stdout) -> None:
    print(f"$ {command}", file=out)
    print(f"CPUs: {results['cpus']} (shared by the load generator, the servers and the cluster)", file=out)
    print(f"seeded events: {results['events']:,}", file=out)
    print("decisions/s, one server: " + ", ".join(f"{v:,.0f}" for v in results["one"]), file=out)
    print("decisions/s, two servers: " + ", ".join(f"{v:,.0f}" for v in results["two"]), file=out)
    print("ratio per round: " + ", ".join(f"{v:.2f}" for v in results["ratios"]), file=out)
    print(f"targets (>= {SCALE_TARGET:g}x):", file=out)
    for target in targets(results):
        why = f" ({target.why})" if target.met is False and target.why else ""
        print(target.line() + why, file=out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer users, rounds and seconds")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    results = run(settings, say=lambda message: print(f"... {message}", file=sys.stderr))
    report(results, "python -m bench.scale_out" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
