"""Erasure notices: every server process on one Redis hears that a user was erased.

A process keeps some of a user's data in memory for a short while: cached
model predictions, and decisions, exposures and log records queued for
writing. The process that erases the user drops its own; the others learn
of it from a Redis pub/sub channel (``tailor:erasures``) every process
subscribes to, and drop theirs. Pub/sub keeps nothing: a process that is
not subscribed at that moment (starting, or cut off from Redis) misses the
notice, and its cached predictions expire on their own within the cache's
TTL (60 s). The publisher learns how many processes were subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger("tailor.runtime")

RETRY_SECONDS = 1.0  # between attempts to subscribe again after Redis went away
HEALTH_CHECK_SECONDS = 10  # a silent subscription is checked this often, so a dead connection is noticed


def channel(prefix: str) -> str:
    return f"{prefix}erasures"


class ErasureNotices:
    """Publishes erasures, and calls ``heard(user_id)`` for each one another process published.

    A notice is ``SENDER USER``: the sender a random token per process, so a
    process does not act twice on its own erasure.
    """

    def __init__(self, url: str, prefix: str, heard: Callable[[str], None]):
        self.url = url
        self.channel = channel(prefix)
        self.heard = heard
        self.sender = secrets.token_hex(8)
        self.subscribed = asyncio.Event()
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def _connected(self) -> Redis:
        if self._client is None:
            self._client = Redis.from_url(
                self.url, client_name="tailor-erasures", health_check_interval=HEALTH_CHECK_SECONDS
            )
        return self._client

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="erasure-notices")

    async def publish(self, user_id: str) -> int:
        """Tell every subscribed process (this one too); how many were subscribed."""
        return int(await self._connected().publish(self.channel, f"{self.sender} {user_id}"))

    async def _listen(self) -> None:
        failing = False
        while True:
            try:
                async with self._connected().pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.subscribed.set()
                    if failing:
                        failing = False
                        log.info("erasure notices: subscribed again")
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            text = data.decode() if isinstance(data, bytes) else str(data)
                            sender, _, user_id = text.partition(" ")
                            if sender != self.sender:
                                self.heard(user_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: notices are missed until it is back (see the docstring)
                self.subscribed.clear()
                if not failing:
                    failing = True
                    log.warning("erasure notices: not subscribed (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
