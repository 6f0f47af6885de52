"""Writes to the store off the response path: a bounded queue, drained in batches by one task.

A decision must never wait for a write it only reports (a first exposure, a
computed score to share). So a listener queues the item and returns; one task
per event loop drains the queue in batches after the responses have gone.

The queue is bounded: when the store falls far behind, the newest items are
dropped and counted, never allowed to grow memory or hold up decisions. A
failed batch is tried again (``attempts``) only where the write is idempotent,
then dropped and counted; the failure is logged once until writes succeed
again, like the store's reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("tailor.runtime")

T = TypeVar("T")

RETRY_SECONDS = 0.5  # the wait before a batch's second attempt; it grows by this much each attempt


class BackgroundWrites(Generic[T]):
    """Queues items and writes them with ``write`` in batches of ``batch``, in a task of their own.

    ``write`` answers how many items the store took as new; ``user_of`` names an item's user, for
    erasure; ``what`` says what the items are in the log ("exposures").
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[int]],
        user_of: Callable[[T], str],
        *,
        what: str,
        batch: int,
        max_queued: int,
        attempts: int = 1,
    ):
        self._write = write
        self._user_of = user_of
        self.what = what
        self.batch = batch
        self.max_queued = max_queued
        self.attempts = attempts
        self.written = 0  # items the store took as new
        self.dropped = 0  # items dropped: the queue was full, or the store failed
        self._queue: deque[T] = deque()
        self._task: asyncio.Task | None = None
        self._failing = False

    def add(self, item: T) -> None:
        """Queue one item; never blocks. Called on the event loop."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append(item)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def forget(self, user_id: str) -> int:
        """Drop the user's queued items (an erasure); how many there were."""
        queue = self._queue  # changed in place: the writing task holds it
        kept = [item for item in queue if self._user_of(item) != user_id]
        dropped = len(queue) - len(kept)
        if dropped:
            queue.clear()
            queue.extend(kept)
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Write everything queued (on shutdown, and in tests)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._queue:
            await self._drain()

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
                for attempt in range(self.attempts):
                    try:
                        self.written += await self._write(batch)
                        break
                    except Exception as exc:  # a failing store must not end the task
                        if not self._failing:
                            self._failing = True
                            log.warning("%s could not be written (%s: %s)", self.what, type(exc).__name__, exc)
                        if attempt + 1 < self.attempts:
                            await asyncio.sleep(RETRY_SECONDS * (attempt + 1))
                else:
                    self.dropped += len(batch)
                    continue
                if self._failing:
                    self._failing = False
                    log.info("%s are written again", self.what)
        finally:
            self._task = None
