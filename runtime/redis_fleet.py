"""``RedisStore``'s fleet heartbeats: one hash, ``tailor:fleet``, one field per server process.

A field holds the process's ``Member`` as JSON, its ``seen_at`` inside: Redis
7.0 has no per-field expiry, so a reader skips (and deletes) the fields older
than ``STALE_BEATS`` of their own process's intervals, and each beat extends
the whole hash's TTL to ``FLEET_TTL``, so a fleet that is gone leaves nothing
behind. One small key written every few
seconds per process is never hot, in a cluster as on one node.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import orjson

from .fleet import FLEET_TTL, Member

if TYPE_CHECKING:
    from .redis_store import RedisStore


class RedisFleet:
    """Heartbeats of the server processes sharing one Redis."""

    def __init__(self, store: RedisStore):
        self.store = store

    @property
    def key(self) -> str:
        return f"{self.store.prefix}fleet"

    async def beat(self, member: Member) -> None:
        async with self.store._writes().pipeline(transaction=False) as pipe:
            pipe.hset(self.key, member.process, orjson.dumps(member.to_dict()))
            pipe.pexpire(self.key, math.ceil(FLEET_TTL * 1000))
            await pipe.execute()

    async def leave(self, process: str) -> None:
        await self.store._writes().hdel(self.key, process)

    async def fleet(self, now: float) -> list[Member]:
        """The heartbeats of the processes not gone by ``now`` (epoch seconds); the others' are deleted."""
        stored = await self.store._reads().hgetall(self.key)
        members, stale = [], []
        for name, text in stored.items():
            try:
                member = Member.from_dict(orjson.loads(text))
            except (ValueError, KeyError, TypeError):  # not a heartbeat this version can read: skip it
                stale.append(name)
                continue
            if member.gone(now):
                stale.append(name)
            else:
                members.append(member)
        if stale:
            await self.store._writes().hdel(self.key, *stale)
        return members
