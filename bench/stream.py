"""Stream ingestion: events per second one ingester process stores from a Redis Stream, 100 per read.

Run: python -m bench.stream [--quick] [--redis URL] [--db N] [--in-flight N]

A stream is filled with view events (each with its id, for 1,000 users),
then one ``Ingester`` runs the loop ``tailor ingest`` runs: it reads the
stream with a consumer group, 100 entries per read, stores each batch in
Redis and acknowledges it, with two batches under way (the next read and
checked while one is stored), until the stream is drained. The rate is
events over the wall time of the drain, in one process; its CPU time is
given too, since on a shared machine the wall time also holds other
processes' turns, and so is the Redis server's CPU time per event. The
floor, measured in the same run on the same stream, reads and acknowledges
the entries one batch after the other without storing them: what the
stream alone costs.

Target: at least 20,000 events per second per ingester process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from tailor.runtime.redis_store import RedisStore
from tailor.runtime.redis_stream_source import RedisStreamSource
from tailor.runtime.stream_ingest import DEFAULT_BATCH, DEFAULT_IN_FLIGHT, Ingester
from tailor.runtime.stream_records import Entry

from .serve import DEFAULT_DB, empty_db, redis_cpu, redis_url, shown
from .targets import Target

STREAM = "tailor:bench:stream"  # under the store's prefix, so that empty_db knows it for the benchmark's
USERS = 1000
FULL_EVENTS = 100_000
QUICK_EVENTS = 10_000
TARGET = 20_000.0  # events per second per ingester process


def fill(url: str, events: int) -> None:
    """``events`` view events in the stream, added 1,000 per pipeline (not timed)."""
    client = redis.Redis.from_url(url)
    now = time.time()
    for start in range(0, events, 1000):
        with client.pipeline(transaction=False) as pipe:
            for number in range(start, min(start + 1000, events)):
                body = {"user_id": f"u{number % USERS}", "type": "view", "key": f"c{number % 20}"}
                body |= {"ts": now - (number % 3600), "id": f"e{number}"}
                pipe.xadd(STREAM, {"event": json.dumps(body)})
            pipe.execute()
    client.close()


class _Drained(RedisStreamSource):
    """The benchmark's stream, which sets ``stop`` at the first read that finds nothing new: the loop then
    finishes the batches under way and returns, every entry stored and acknowledged."""

    def __init__(self, url: str, group: str, stop: asyncio.Event):
        super().__init__(url, STREAM, group, "bench", dead_letters=f"{STREAM}:dead", block=0.01)
        self.stop = stop

    async def read(self, count: int) -> list[Entry]:
        entries = await super().read(count)
        if not entries:
            self.stop.set()
        return entries


async def _drain(url: str, group: str, store: bool, in_flight: int = DEFAULT_IN_FLIGHT) -> dict[str, float]:
    """Read the whole stream as one consumer of a new group, storing it (``Ingester.run``) or only
    acknowledging each batch; the time it took."""
    stop = asyncio.Event()
    source = _Drained(url, group, stop)
    redis_store = RedisStore(url)
    ingester = Ingester(source, redis_store, in_flight=in_flight)
    client = redis.Redis.from_url(url)
    count = 0
    server = redis_cpu(client)
    wall, cpu = time.perf_counter(), time.process_time()
    if store:
        await ingester.run(stop)
        count = int(ingester.metrics.acknowledged._value.get())
    else:
        while entries := await source.read(DEFAULT_BATCH):
            await source.ack(entries)
            count += len(entries)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = redis_cpu(client) - server
    client.close()
    accepted = ingester.metrics.events["accepted"]._value.get()
    await source.close()
    await redis_store.close()
    return {"events": count, "accepted": accepted, "wall_s": wall, "cpu_s": cpu, "redis_cpu_s": server}


def run(
    quick: bool = False,
    redis_base: str | None = None,
    db: int = DEFAULT_DB,
    progress: Callable[[str], None] | None = None,
    events: int | None = None,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> dict[str, Any]:
    say = progress or (lambda message: None)
    url = redis_url(redis_base, db)
    events = events or (QUICK_EVENTS if quick else FULL_EVENTS)
    load = os.getloadavg()[0]
    empty_db(url)
    say(f"filling the stream with {events:,} events")
    fill(url, events)
    say("the floor: read and acknowledge only")
    floor = asyncio.run(_drain(url, "floor", store=False))
    say(f"one ingester: read, store, acknowledge, {in_flight} batches under way")
    ingest = asyncio.run(_drain(url, "ingest", store=True, in_flight=in_flight))
    empty_db(url)
    if ingest["accepted"] != events:
        raise SystemExit(f"the ingester stored {ingest['accepted']:,} of {events:,} events")
    results: dict[str, Any] = {"events": events, "batch": DEFAULT_BATCH, "in_flight": in_flight}
    results["redis_url"] = shown(url)
    results |= {"load_average": load, "cpus": os.cpu_count()}
    for name, drained in (("floor", floor), ("ingest", ingest)):
        results[name] = {
            **drained,
            "events_per_s": drained["events"] / drained["wall_s"],
            "events_per_cpu_s": drained["events"] / drained["cpu_s"],
            "redis_us_per_event": drained["redis_cpu_s"] / drained["events"] * 1e6,
        }
    results["share_of_floor"] = results["ingest"]["events_per_s"] / results["floor"]["events_per_s"]
    return results


def targets(results: dict[str, Any]) -> list[Target]:
    ingest = results["ingest"]
    own, server = ingest["events_per_cpu_s"], 1e6 / ingest["redis_us_per_event"]
    in_flight = results.get("in_flight", 1)  # runs before the loop kept batches under way took turns
    if in_flight > 1:
        bound = (
            f"With {in_flight} batches under way the ingester reads and checks the next batch while Redis stores "
            f"the one before, so the slower of the two bounds the rate: about {min(own, server):,.0f} events/s "
            "with a core each"
        )
    else:
        bound = f"With one batch at a time the two take turns: about {1 / (1 / own + 1 / server):,.0f} events/s at most"
    why = (
        f"The ingester spent {1e6 / own:.0f} µs of its CPU per event (reading and checking the record, building "
        f"and sending the record script's arguments) and Redis {ingest['redis_us_per_event']:.0f} µs (most of it "
        "the script's Lua rewriting the text of the event's six series, each up to a few dozen buckets): on "
        f"cores of their own they would reach about {own:,.0f} and {server:,.0f} events/s. {bound}; the wall "
        f"rate is lower still when they share {results['cpus']} CPUs with other work (load average "
        f"{results['load_average']:.1f})."
    )
    return [
        Target(
            f"stream ingestion ≥ {TARGET:,.0f} events/s per ingester process, {results['batch']} per read",
            results["ingest"]["events_per_s"],
            TARGET,
            " events/s",
            lower_is_better=False,
            why=why,
        )
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", metavar="URL")
    parser.add_argument("--db", type=int, default=DEFAULT_DB)
    parser.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT, metavar="N", help="batches under way")
    args = parser.parse_args(argv)
    results = run(
        args.quick,
        args.redis,
        args.db,
        progress=lambda message: print(message, file=sys.stderr),
        in_flight=args.in_flight,
    )
    print(json.dumps(results, indent=1))
    for target in targets(results):
        print(target.line())


if __name__ == "__main__":
    main()
