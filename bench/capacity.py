"""What one decision and one event cost Redis, for capacity planning (docs/deploy.md).

Run: python -m bench.capacity [--quick] [--redis URL] [--db N]

The serving path's share of a core is measured by ``bench.serve`` (decisions per
second of one server process at saturation). What it leaves out is Redis's side:
how much of a Redis core (one shard) a decision's fetch script and an event's
record script take. Both are read from Redis itself, ``INFO commandstats``
(``usec`` of ``EVALSHA``: the time Redis spent running the scripts, not waiting
on the network), over the 1,000-rule workload of ``bench.serve`` on its seeded
users: decisions through ``DecisionService`` over ``RedisStore``, events through
``RedisStore.record`` in batches of 100, as an ingester writes them. Then the
retail example (one model) on the same requests, with the prediction cache in
each process and in the store: what the store's cache costs Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from tailor.runtime.events import Event
from tailor.runtime.prediction_cache import PredictionCache
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService

from . import serve
from .workload import ruleset_text

EVENT_BATCH = 100
RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"


SCRIPTS = ("cmdstat_evalsha", "cmdstat_eval")
NOT_OURS = ("cmdstat_info",)  # the benchmark's own questions


def script_usec(client: redis.Redis, commands: tuple[str, ...] | None = SCRIPTS) -> tuple[float, int]:
    """Microseconds Redis spent in ``commands`` (every command but INFO when None), and how many calls, so far."""
    stats = client.info("commandstats")
    usec = calls = 0
    for name, found in stats.items():
        if (name in commands) if commands is not None else (name not in NOT_OURS):
            usec += float(found["usec"])
            calls += int(found["calls"])
    return usec, calls


async def _decisions(path: Path, url: str, requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    store = RedisStore(url, timeout=serve.PATIENT_TIMEOUT)
    service = DecisionService(path, store, sample_every=0, deadline_ms=serve.PATIENT_TIMEOUT * 1000)
    client = redis.Redis.from_url(url)
    try:
        service.open()
        for request in requests[:50]:  # the script is loaded, connections are open
            await service.decide(request["user_id"], request["context"])
        usec, calls = script_usec(client)
        trips = store.round_trips
        cpu = time.process_time()
        for request in requests:
            await service.decide(request["user_id"], request["context"])
        cpu = time.process_time() - cpu
        usec_after, calls_after = script_usec(client)
    finally:
        await service.close()
        client.close()
    return {
        "decisions": len(requests),
        "redis_usec_per_decision": (usec_after - usec) / len(requests),
        "scripts": calls_after - calls,
        "round_trips": store.round_trips - trips,
        "engine_cpu_usec_per_decision": cpu / len(requests) * 1e6,
    }


async def _cached(url: str, requests: Sequence[dict[str, Any]], cache: PredictionCache) -> dict[str, Any]:
    """The retail example (one model) with the prediction cache ``cache``: Redis's time per decision, every
    command counted (the cached scores' reads ride in the fetch; their writes are pipelines of their own)."""
    store = RedisStore(url, timeout=serve.PATIENT_TIMEOUT)
    service = DecisionService(
        RETAIL, store, sample_every=0, deadline_ms=serve.PATIENT_TIMEOUT * 1000, prediction_cache=cache
    )
    client = redis.Redis.from_url(url)
    try:
        service.open()
        for request in requests[:50]:
            await service.decide(request["user_id"], request["context"])
        if service.shared_predictions is not None:
            await service.shared_predictions.flush()
        usec, _ = script_usec(client, None)
        for request in requests:
            await service.decide(request["user_id"], request["context"])
        if service.shared_predictions is not None:
            await service.shared_predictions.flush()
        usec_after, _ = script_usec(client, None)
        assert service.current is not None
        models = service.current.models
    finally:
        await service.close()
        client.close()
    return {"redis_usec": (usec_after - usec) / len(requests), "computed": models.runs, "cached": models.cache_hits}


async def _events(url: str, users: int, count: int) -> dict[str, Any]:
    store = RedisStore(url, timeout=serve.PATIENT_TIMEOUT)
    client = redis.Redis.from_url(url)
    rng = random.Random(3)
    now = time.time()
    events = [
        Event(
            serve.user_id(rng.randrange(users)),
            "view",
            rng.choice(("Electronics", "Books", "Garden")),
            None,
            now,
            f"cap-{i}",
        )
        for i in range(count)
    ]
    try:
        usec, _ = script_usec(client)
        for start in range(0, count, EVENT_BATCH):
            await store.record(events[start : start + EVENT_BATCH], now=now)
        usec_after, _ = script_usec(client)
    finally:
        await store.close()
        client.close()
    return {"events": count, "redis_usec_per_event": (usec_after - usec) / count}


def run(quick: bool = False, redis_base: str | None = None, db: int = serve.DEFAULT_DB) -> dict[str, Any]:
    users, n, events = (300, 500, 2_000) if quick else (3_000, 5_000, 20_000)
    url = serve.redis_url(redis_base, db)
    serve.empty_db(url)
    workdir = Path(tempfile.mkdtemp(prefix="tailor-capacity-"))
    try:
        seeded = serve.seed(url, users)
        rules = workdir / "rules"
        rules.mkdir()
        (rules / "bench.rules").write_text(ruleset_text(serve.RULES))
        requests = serve.make_requests(users, n)
        decided = asyncio.run(_decisions(rules, url, requests))
        cached = {cache.value: asyncio.run(_cached(url, requests, cache)) for cache in PredictionCache}
        written = asyncio.run(_events(url, users, events))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        serve.empty_db(url)
    return {"users": users, "stored_events": seeded["events"], **decided, **written, "prediction_cache": cached}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", metavar="URL", help="the Redis to use (default: $TAILOR_TEST_REDIS_URL or local)")
    parser.add_argument("--db", type=int, default=serve.DEFAULT_DB, help="the database to seed and empty (not 0)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.redis, args.db)
    per_decision = result["redis_usec_per_decision"]
    per_event = result["redis_usec_per_event"]
    print(f"{result['users']:,} users, {result['stored_events']:,} events stored; 1,000-rule workload")
    print(
        f"decisions: {result['decisions']:,}, store round trips {result['round_trips']:,}, "
        f"fetch scripts {result['scripts']:,}"
    )
    print(f"  Redis time per decision (EVALSHA usec): {per_decision:.1f} µs -> {1e6 / per_decision:,.0f} decisions/s")
    print("    per Redis core (one shard), if Redis did nothing else")
    print(f"  engine CPU per decision, in process, without HTTP: {result['engine_cpu_usec_per_decision']:.0f} µs")
    print(f"events: {result['events']:,} in batches of {EVENT_BATCH}")
    print(f"  Redis time per event (EVALSHA usec): {per_event:.1f} µs -> {1e6 / per_event:,.0f} events/s per shard")
    print("retail example, the same requests, Redis time per decision (every command):")
    for name, figures in result["prediction_cache"].items():
        print(
            f"  --prediction-cache {name}: {figures['redis_usec']:.1f} µs; "
            f"scores computed {figures['computed']:,}, from a cache {figures['cached']:,}"
        )


if __name__ == "__main__":
    main()
