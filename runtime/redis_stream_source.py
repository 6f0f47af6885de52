"""Records from a Redis Stream, read by a consumer group that several ingesters share.

Each ingester is one consumer of the group (``XREADGROUP``). What it reads
stays pending until it acknowledges it (``XACK``), which the loop does only
once the records are stored: an ingester that dies leaves its entries
pending, and another claims them once they have been idle ``min_idle``
seconds (``XAUTOCLAIM``), so every entry is delivered at least once. An
ingester restarted under the same consumer name first reads its own pending
entries again, each once: the scan goes on from the last entry it read, since
the batches the loop has read ahead and not yet acknowledged are pending too.
Refused records are copied to a dead-letter stream (``XADD``) with their
reason, before they are acknowledged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from .redis_clients import cluster_url
from .redis_packing import packed_connections
from .stream_records import Entry
from .stream_source import Backlog, dead_letter

DEFAULT_BLOCK = 1.0  # seconds a read waits for new entries: also how soon a stop is noticed
DEFAULT_MIN_IDLE = 60.0  # seconds an entry stays pending at a consumer before another may claim it
DEFAULT_DEAD_LETTER_MAX_LEN = 1_000_000  # the dead-letter stream keeps about this many newest letters
CLAIM_EVERY = 5.0  # seconds between scans for entries left by dead consumers, once a scan found none


class RedisStreamSource:
    """One consumer of ``group`` on ``stream``; the group is made (from the stream's start) when missing."""

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        *,
        dead_letters: str,
        min_idle: float = DEFAULT_MIN_IDLE,
        block: float = DEFAULT_BLOCK,
        dead_letter_max_len: int = DEFAULT_DEAD_LETTER_MAX_LEN,
        cluster: bool = False,
    ):
        self.name = stream
        self.group = group
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.min_idle = min_idle
        self.block = block
        self.dead_letter_max_len = dead_letter_max_len
        name = "tailor-ingest-" + "".join(c if c.isalnum() or c in "-_.:" else "_" for c in consumer)[:80]
        self.client: Redis | RedisCluster
        if cluster:  # the stream and the dead letters are a key each, on the nodes of their slots
            self.client = RedisCluster.from_url(
                cluster_url(url), decode_responses=True, encoding_errors="replace", client_name=name
            )
        else:
            self.client = Redis.from_url(
                url, decode_responses=True, encoding_errors="replace", client_name=name, **packed_connections(url)
            )
        self._group_made = False
        # This consumer's own pending entries are read first (a restart under the same name), from the start
        # of its pending list and then after the last one read; None once the scan has found the end.
        self._own: str | None = "0"
        self._claim_cursor = "0-0"
        self._claim_at = 0.0  # monotonic time of the next scan for entries of dead consumers

    async def _make_group(self) -> None:
        if self._group_made:
            return
        try:
            await self.client.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_made = True

    async def read(self, count: int) -> list[Entry]:
        await self._make_group()
        try:
            return await self._read(count)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted under the group: make both again next time
                self._group_made = False
            raise

    async def _read(self, count: int) -> list[Entry]:
        if self._own is not None:
            own = await self.client.xreadgroup(self.group, self.consumer, {self.name: self._own}, count=count)
            if entries := _entries(own):
                self._own = entries[-1].id
                return entries
            self._own = None
        if time.monotonic() >= self._claim_at:
            claimed = await self._claim(count)
            if claimed:
                return claimed
        reply = await self.client.xreadgroup(
            self.group, self.consumer, {self.name: ">"}, count=count, block=max(1, math.ceil(self.block * 1000))
        )
        return _entries(reply)

    async def _claim(self, count: int) -> list[Entry]:
        """Entries idle at any consumer for ``min_idle``, now this one's; the scan resumes where it stopped."""
        reply = await self.client.xautoclaim(
            self.name, self.group, self.consumer, math.ceil(self.min_idle * 1000), self._claim_cursor, count=count
        )
        self._claim_cursor = reply[0]
        if self._claim_cursor == "0-0":  # the scan went round the whole pending list: rest a while
            self._claim_at = time.monotonic() + CLAIM_EVERY
        return [Entry(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None and fields]

    async def ack(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self.client.xack(self.name, self.group, *(entry.id for entry in entries))

    async def dead_letter(self, letters: Sequence[tuple[Entry, str]]) -> None:
        if not letters:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for entry, reason in letters:
                pipe.xadd(
                    self.dead_letters,
                    dead_letter(entry, reason, f"{self.name}/{entry.id}"),  # type: ignore[arg-type]
                    maxlen=self.dead_letter_max_len,
                    approximate=True,
                )
            await pipe.execute()

    async def backlog(self) -> Backlog | None:
        for group in await self.client.xinfo_groups(self.name):
            if group.get("name") == self.group:
                lag = group.get("lag")
                return Backlog(None if lag is None else int(lag), int(group.get("pending", 0)))
        return None

    async def close(self) -> None:
        await self.client.aclose()


def _entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply on one stream (an entry deleted while pending has no fields)."""
    if not reply:
        return []
    messages = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]  # RESP3, RESP2
    return [Entry(entry_id, fields or {}) for entry_id, fields in messages]
