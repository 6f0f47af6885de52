"""The floors for the HTTP benchmark: the least a decision endpoint on this stack can cost.

Run: python -m bench.floor_app --port PORT --redis URL [--layout keys|user]

``POST /v1/decide`` parses the same body as the server (the server's own
``DecideRequest`` model), makes one Redis call for the user, and answers a
body shaped like a decision, written with orjson. It is served as ``tailor
serve`` is: uvicorn, uvloop, httptools, one worker, no access log. No rules
run: what the server costs beyond this is the engine, the feature plan and
the store read.

The call reads the profile's tier and country and the last 8 day buckets of
the 16 counter series the workload's rules read, in one of two layouts:

- ``keys`` (the layout-copying floor): one pipeline of ``COMMANDS`` HMGETs,
  the profile hash and one hash per series, keyed as ``RedisStore`` keyed
  them before the user hash (``store_migration.OldLayout``). The store no
  longer writes those keys, so this floor sends the earlier layout's
  commands to keys that are empty: a floor of the earlier layout's cost;
- ``user`` (the layout-free floor): one HMGET of ``COMMANDS_FREE`` command on
  one hash per user (``user_key``), every bucket a field, the way a feature
  store such as Feast lays out an entity. The benchmark writes these hashes
  (``user_fields``) from the same events it records through the store.
  The serving targets are against this floor: the layout is part of the
  cost, so the floor must not inherit the store's.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from importlib.util import find_spec
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from redis.asyncio import Redis

from tailor.compiler.features import COUNTER_EVENTS
from tailor.runtime.buckets import Resolution, Scheme
from tailor.runtime.events import Event
from tailor.runtime.http.responses import OrjsonResponse
from tailor.runtime.http.schemas import DecideRequest
from tailor.runtime.redis_store import TIMEOUT
from tailor.runtime.store_migration import OldLayout

from .workload import CATEGORIES, EVENTS, SLOTS

DAYS_READ = 8  # the buckets of a 7-day window at day resolution
CONTENTS = 50
# The counter series the workload's rules read: (event type, category).
SERIES = [(COUNTER_EVENTS[event], category) for event in EVENTS for category in CATEGORIES[:4]]
COMMANDS = 1 + len(SERIES)  # in the one pipeline: the profile, then each series
COMMANDS_FREE = 1  # the layout-free floor: one HMGET
LAYOUTS = ("keys", "user")
PROFILE_FIELDS = ("tier", "country")


def user_key(user_id: str) -> str:
    """The layout-free floor's one hash for a user, under a hash tag (a cluster keeps it whole)."""
    return f"tailor:floor:{{{user_id}}}"


def bucket_field(event: str, category: str, bucket: int) -> str:
    """A day bucket's count in the user's hash: ``view:Books:20500``."""
    return f"{event}:{category}:{bucket}"


def user_fields(events: Iterable[Event], day: Resolution) -> dict[str, int]:
    """Day-bucket counts of ``events`` of the series the floor reads, as fields of the user's hash."""
    read = set(SERIES)
    counts: Counter[str] = Counter()
    for event in events:
        if (event.type, event.key) in read:
            counts[bucket_field(event.type, event.key, day.bucket(event.ts))] += 1
    return dict(counts)


def create_app(redis_url: str, layout_name: str = "keys") -> FastAPI:
    """The floor app reading ``layout_name``'s keys (``LAYOUTS``)."""
    if layout_name not in LAYOUTS:
        raise ValueError(f"no layout {layout_name!r}: one of {', '.join(LAYOUTS)}")
    layout = OldLayout()
    day = Scheme.for_retention().day
    ref = {"name": "floor", "version": "0"}
    id_prefix = secrets.token_hex(8)
    ids = itertools.count()
    redis: dict[str, Redis] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis["client"] = Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        try:
            yield
        finally:
            await redis["client"].aclose()

    app = FastAPI(title="floor", default_response_class=OrjsonResponse, lifespan=lifespan)

    @app.post("/v1/decide")
    async def decide(body: DecideRequest) -> Response:
        user = body.user_id
        today = day.bucket(time.time() if body.at is None else body.at)
        buckets = range(today - DAYS_READ + 1, today + 1)
        if layout_name == "user":
            fields = [bucket_field(e, c, b) for e, c in SERIES for b in buckets]
            reply = await redis["client"].hmget(user_key(user), [*PROFILE_FIELDS, *fields])
            tier, country = reply[:2]
            counts = reply[2:]
        else:
            named = [str(bucket) for bucket in buckets]
            pipe = redis["client"].pipeline(transaction=False)
            pipe.hmget(layout.profile_key(user), list(PROFILE_FIELDS))
            for event, category in SERIES:
                pipe.hmget(layout.series_key(user, event, category, day), named)
            replies = await pipe.execute()
            tier, country = replies[0]
            counts = [value for reply in replies[1:] for value in reply]
        events = sum(int(value) for value in counts if value is not None)
        pick = (events + len(tier or b"") + len(country or b"")) % (CONTENTS - 1) + 1
        slots: dict[str, Any] = {
            slot: {"content": f"c{pick}", "payload": {"kind": "banner", "id": f"c-{pick}"}, "rule": f"r{pick}"}
            for slot in (body.slots if body.slots is not None else SLOTS)
        }
        decision = {"decision_id": f"{id_prefix}{next(ids):016x}", "ruleset": ref, "slots": slots, "degraded": False}
        return OrjsonResponse(decision)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, metavar="URL")
    parser.add_argument("--layout", choices=LAYOUTS, default="keys", help="the keys read (default: keys)")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.redis, args.layout),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if find_spec("uvloop") else "asyncio",
        http="httptools" if find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
