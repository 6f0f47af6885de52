"""Ingest beside decide: decisions while one client posts event batches of the documented maximum.

Run: python -m bench.ingest [--quick] [--redis URL] [--db N]

A real ``tailor serve`` on the benchmark's 1,000-rule ruleset, on each store
(the memory store, then Redis), answers decisions for a pool of users at a
steady rate (open loop; the decisions read the store) while one client posts
batches of 1,000 view and purchase events (``POST /v1/events`` takes at most
that many) back to back, for the same users. A batch must not hold the
decisions beside it past their deadline (50 ms): a decision that misses it is
answered ``degraded``, with the store's features unknown. Measured per store:
the share of decisions degraded (from the server's metrics), the decision
p50 and p99, and the events the server took per second. The decisions alone,
with no batches, are measured first, for comparison.

Targets: at most 1% of decisions degraded, and a p99 within the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import loadgen
from .ports import free_port
from .serve import (
    DEFAULT_DB,
    RULES,
    empty_db,
    encode,
    make_requests,
    percentile,
    redis_url,
    scrape,
    shown,
    start,
    wait_ready,
)
from .targets import Target
from .workload import CATEGORIES, ruleset_text

BATCH = 1000  # events per POST /v1/events: the documented maximum
DEADLINE_MS = 50.0  # tailor serve's default decision deadline
DEGRADED_TARGET = 0.01  # share of decisions, at most
STORES = ("memory", "redis")


@dataclass(frozen=True, slots=True)
class Settings:
    users: int  # the pool decisions and events are for
    rate: float  # decisions per second, open loop
    seconds: float  # each phase: decisions alone, then beside the batches
    connections: int


FULL = Settings(users=2000, rate=200.0, seconds=15.0, connections=8)
QUICK = Settings(users=500, rate=100.0, seconds=4.0, connections=4)

DECISIONS = 'tailor_decision_seconds_count{stage="total"}'
DEGRADED = "tailor_degraded_decisions_total"
GC = "tailor_gc_pause_seconds"
LONG_PAUSE = "0.01"  # a bucket bound of tailor_gc_pause_seconds: pauses longer than this are counted apart


def batches(users: int, count: int, seed: int = 3) -> list[bytes]:
    """``count`` bodies of ``BATCH`` events each: views and some purchases, each event with its own id."""
    rng = random.Random(seed)
    now = time.time()
    bodies = []
    for number in range(count):
        events = []
        for index in range(BATCH):
            purchase = rng.random() < 0.05
            event: dict[str, Any] = {
                "user_id": f"u{rng.randrange(users):05d}",
                "type": "purchase" if purchase else "view",
                "key": rng.choice(CATEGORIES),
                "ts": now - rng.uniform(0, 86400),
                "id": f"bench-{seed}-{number}-{index}",
            }
            if purchase:
                event["value"] = round(rng.uniform(5, 200), 2)
            events.append(event)
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


async def _ingest(port: int, bodies: Sequence[bytes], stop: asyncio.Event) -> tuple[int, int]:
    """Post ``bodies`` back to back on one connection until ``stop``: (batches acknowledged, refused)."""
    conn = await loadgen.connect(port)
    acknowledged = refused = 0
    try:
        for index in range(len(bodies) * 1000):
            if stop.is_set():
                break
            status, _ = await conn.request(loadgen.post("/v1/events", bodies[index % len(bodies)], port))
            if status == 200:
                acknowledged += 1
            else:
                refused += 1
    finally:
        conn.close()
    return acknowledged, refused


async def _phase(
    port: int, decisions: list[bytes], batch_bodies: Sequence[bytes] | None, settings: Settings
) -> tuple[loadgen.OpenLoopResult, tuple[int, int], float]:
    """Decisions at the rate for the phase's length, with or without the batches beside them."""
    stop = asyncio.Event()
    ingest = asyncio.create_task(_ingest(port, batch_bodies, stop)) if batch_bodies else None
    started = time.perf_counter()
    try:
        result = await loadgen.open_loop(
            port, decisions, settings.rate, settings.seconds, connections=settings.connections
        )
    finally:
        stop.set()
    batches_done = await ingest if ingest is not None else (0, 0)
    return result, batches_done, time.perf_counter() - started


def measure_store(store: str, url: str | None, settings: Settings, say: Callable[[str], None]) -> dict[str, Any]:
    """Decisions alone, then beside the batches, on one store."""
    workdir = Path(tempfile.mkdtemp(prefix="tailor-ingest-"))
    if url is not None:
        empty_db(url)
    port = free_port()
    rules = workdir / "rules"
    rules.mkdir()
    (rules / "bench.rules").write_text(ruleset_text(RULES))
    args = ["tailor.cli", "serve", str(rules), "--port", str(port), "--stats-sample", "0"]
    if url is not None:
        args += ["--redis", url]
    server = start(f"server-{store}", args, port, workdir)
    try:
        wait_ready(server, "/readyz")
        decisions = encode(make_requests(settings.users, 2000), port)
        batch_bodies = batches(settings.users, 50)
        say(f"{store}: warming up")
        loadgen.run(loadgen.open_loop(port, decisions, settings.rate, 1.0, connections=settings.connections))
        loadgen.run(_phase(port, decisions, batch_bodies[:3], Settings(settings.users, settings.rate, 1.0, 2)))
        found: dict[str, Any] = {"store": store}
        for name, bodies in (("alone", None), ("beside", batch_bodies)):
            say(f"{store}: decisions {name.replace('beside', 'beside 1,000-event batches')}")
            before = scrape(port)
            result, (acknowledged, refused), seconds = loadgen.run(_phase(port, decisions, bodies, settings))
            after = scrape(port)
            decided = after[DECISIONS] - before[DECISIONS]
            degraded = sum(
                value - before.get(sample, 0.0) for sample, value in after.items() if sample.startswith(DEGRADED)
            )
            found[name] = {
                "decisions": int(decided),
                "degraded": int(degraded),
                "degraded_share": degraded / decided if decided else 0.0,
                "p50_ms": percentile(result.latencies, 0.5) * 1000,
                "p99_ms": percentile(result.latencies, 0.99) * 1000,
                "errors": result.errors,
                "not_ok": sum(count for status, count in result.statuses.items() if status != 200),
                "batches": acknowledged,
                "batches_refused": refused,
                "events_per_s": acknowledged * BATCH / seconds,
                "gc": gc_pauses(after, before),
            }
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if url is not None:
            empty_db(url)
    return found


def gc_pauses(after: dict[str, float], before: dict[str, float]) -> dict[str, dict[str, float]]:
    """The server's garbage-collector pauses between two scrapes, by generation: how many, their total
    seconds, and how many were longer than ``LONG_PAUSE`` seconds."""

    def grew(sample: str) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    found = {}
    for generation in "012":
        label = f'generation="{generation}"'
        count = grew(f"{GC}_count{{{label}}}")
        found[generation] = {
            "pauses": int(count),
            "seconds": grew(f"{GC}_sum{{{label}}}"),
            "long": int(count - grew(f'{GC}_bucket{{{label},le="{LONG_PAUSE}"}}')),
        }
    return found


def run(
    quick: bool = False,
    redis_base: str | None = None,
    db: int = DEFAULT_DB,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    say = progress or (lambda message: None)
    url = redis_url(redis_base, db)
    results: dict[str, Any] = {"settings": asdict(settings), "batch": BATCH, "rules": RULES, "redis_url": shown(url)}
    for store in STORES:
        results[store] = measure_store(store, url if store == "redis" else None, settings, say)
    return results


def targets(results: dict[str, Any]) -> list[Target]:
    found = []
    for store in STORES:
        beside = results[store]["beside"]
        found += [
            Target(
                f"{store} store: decisions degraded beside 1,000-event batches ≤ {DEGRADED_TARGET:.0%}",
                beside["degraded_share"] * 100,
                DEGRADED_TARGET * 100,
                "%",
            ),
            Target(
                f"{store} store: decision p99 beside 1,000-event batches ≤ {DEADLINE_MS:g} ms",
                beside["p99_ms"],
                DEADLINE_MS,
                " ms",
            ),
        ]
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", metavar="URL")
    parser.add_argument("--db", type=int, default=DEFAULT_DB)
    args = parser.parse_args(argv)
    results = run(args.quick, args.redis, args.db, progress=lambda message: print(message, file=sys.stderr))
    print(json.dumps(results, indent=1))
    for target in targets(results):
        print(target.line())


if __name__ == "__main__":
    main()
