"""Batched writes to the HTTP server: POST /v1/feedback against POST /v1/events, 100 items a batch.

Part of ``bench.serve``'s run, on its server and Redis once the decision
rounds are done. The server first serves decisions (their join records are
what feedback joins to); then, in rounds that alternate which goes first,
each endpoint takes batches back to back from several connections (closed
loop) and the completed batches per second are compared: the target is the
median over the rounds of feedback's rate over events'.

Every item and event has an id, as a client that retries sends them. The
batches are cycled, so later passes are retries (answered as duplicates,
which costs both endpoints a de-duplication instead of a count).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

import orjson

from tailor.compiler.features import COUNTER_EVENTS

from . import loadgen
from .targets import Target
from .workload import CATEGORIES, EVENTS

BATCH = 100  # items or events per request
FEEDBACK_RATIO = 0.8  # /v1/feedback batches per second, at least this times /v1/events'
TYPES = ("impression", "impression", "impression", "click", "conversion")


def decisions(port: int, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Serve ``bodies`` and keep what feedback needs: each decision's id and the slots it filled."""

    async def ask() -> list[tuple[int, bytes]]:
        conn = await loadgen.connect(port)
        try:
            return [await conn.request(loadgen.post("/v1/decide", orjson.dumps(body), port)) for body in bodies]
        finally:
            conn.close()

    served = []
    for status, answer in loadgen.run(ask()):
        if status == 200:
            decision = orjson.loads(answer)
            slots = [slot for slot, shown in decision["slots"].items() if shown is not None]
            if slots:
                served.append({"decision_id": decision["decision_id"], "slots": slots})
    return served


def feedback_batches(served: Sequence[dict[str, Any]], batches: int, port: int, seed: int = 17) -> list[bytes]:
    rng = random.Random(seed)
    requests = []
    for b in range(batches):
        items = []
        for i in range(BATCH):
            decision = rng.choice(served)
            kind = rng.choice(TYPES)
            item = {"decision_id": decision["decision_id"], "slot": rng.choice(decision["slots"]), "type": kind}
            if kind == "conversion":
                item["value"] = round(rng.uniform(5, 200), 2)
            item["id"] = f"fb-{b}-{i}"
            items.append(item)
        requests.append(loadgen.post("/v1/feedback", orjson.dumps({"items": items}), port))
    return requests


def event_batches(users: Sequence[str], batches: int, port: int, seed: int = 19) -> list[bytes]:
    rng = random.Random(seed)
    requests = []
    for b in range(batches):
        events = [
            {
                "user_id": rng.choice(users),
                "type": COUNTER_EVENTS[rng.choice(EVENTS)],
                "key": rng.choice(CATEGORIES),
                "id": f"ev-{b}-{i}",
            }
            for i in range(BATCH)
        ]
        requests.append(loadgen.post("/v1/events", orjson.dumps({"events": events}), port))
    return requests


def measure(
    port: int,
    decide_bodies: Sequence[dict[str, Any]],
    users: Sequence[str],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    connections: int,
    batches: int,
) -> dict[str, Any]:
    """Both endpoints at saturation, round by round; batches per second and their ratio."""
    served = decisions(port, decide_bodies)
    sides = {
        "events": event_batches(users, batches, port),
        "feedback": feedback_batches(served, batches, port),
    }
    throughputs: dict[str, list[float]] = {name: [] for name in sides}
    not_ok = dict.fromkeys(sides, 0)
    for round_ in range(rounds):
        order = ("events", "feedback") if round_ % 2 == 0 else ("feedback", "events")
        for name in order:
            result = loadgen.run(
                loadgen.closed_loop(port, sides[name], connections=connections, duration=seconds, warmup=warmup)
            )
            throughputs[name].append(result.throughput)
            not_ok[name] += result.errors + result.completed - result.statuses[200]
    ratios = [f / e for f, e in zip(throughputs["feedback"], throughputs["events"], strict=True) if e > 0]
    return {
        "batch": BATCH,
        "decisions": len(served),
        "events_batches_per_s": throughputs["events"],
        "feedback_batches_per_s": throughputs["feedback"],
        "not_ok": not_ok,
        "ratio": statistics.median(ratios) if ratios else float("nan"),
    }


def targets(results: dict[str, Any]) -> list[Target]:
    """The feedback issue's write target, from a ``bench.serve`` run that measured it (older runs did not)."""
    if "writes" not in results:
        return []
    return [
        Target(
            f"/v1/feedback batches/s ≥ {FEEDBACK_RATIO:g}x /v1/events' ({BATCH} a batch)",
            results["writes"]["ratio"],
            FEEDBACK_RATIO,
            "x",
            lower_is_better=False,
            why="A feedback item does what an event does and more: its event is recorded as POST /v1/events "
            "records one, and it is also joined to its decision's record (read first, one call a batch), "
            "judged, de-duplicated by its id, counted in the KPI and experiment counters, and marked on the "
            "join record, in the same script call. Measured apart, a first pass of 100 items cost the server "
            "about twice the CPU of 100 events and Redis about 1.4 times; repeats (answered as duplicates) "
            "cost about as much as events'.",
        )
    ]
