"""The floor for the HTTP benchmark: the least a decision endpoint on this stack can cost.

Run: python -m bench.floor_app --port PORT --redis URL

``POST /v1/decide`` parses the same body as the server (the server's own
``DecideRequest`` model), makes one pipelined Redis call on the user's keys
(the profile's tier and country, and the last 8 day buckets of the 16
counter series the workload's rules read, laid out as ``RedisStore`` laid
them out before the user hash, ``store_migration.OldLayout``: the store
no longer writes those keys, so the floor keeps the earlier layout's
commands, on keys that are empty), and answers a body shaped like a
decision, written with orjson.
It is served as ``tailor serve`` is: uvicorn, uvloop, httptools, one worker,
no access log. No rules run: what the server costs beyond this is the
engine, the feature plan and the store script.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator
from importlib.util import find_spec
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from redis.asyncio import Redis

from tailor.compiler.features import COUNTER_EVENTS
from tailor.runtime.buckets import Scheme
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


def create_app(redis_url: str) -> FastAPI:
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
        fields = [str(bucket) for bucket in range(today - DAYS_READ + 1, today + 1)]
        pipe = redis["client"].pipeline(transaction=False)
        pipe.hmget(layout.profile_key(user), ["tier", "country"])
        for event, category in SERIES:
            pipe.hmget(layout.series_key(user, event, category, day), fields)
        replies = await pipe.execute()
        tier, country = replies[0]
        events = sum(int(value) for reply in replies[1:] for value in reply if value is not None)
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
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.redis),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if find_spec("uvloop") else "asyncio",
        http="httptools" if find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
