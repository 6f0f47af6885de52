"""Writes to the store off the response path: a bounded queue, drained in batches by one task.

A decision must never wait for a write it only reports (a first exposure, a
computed score to share). So a listener queues the item and returns; one task
per event loop drains the queue in batches after the responses have gone.

The task lets items gather for ``linger`` seconds before it writes (unless a
batch is full, or a flush waits): at a moderate rate one store call then
carries many items rather than one, and each call costs the server and the
store about as much as several items. The queue is bounded: when the store falls far behind, the newest items are
dropped and counted, never allowed to grow memory or hold up decisions. A
failed batch is tried again (``attempts``) only where the write is idempotent,
then dropped and counted; the failure is logged once until writes succeed
again, like the store's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        linger: float = 0.0,
    ):
        self._write = write
        self._user_of = user_of
        self.what = what
        self.batch = batch
        self.max_queued = max_queued
        self.attempts = attempts
        self.linger = linger
        self.written = 0  # items the store took as new
        self.dropped = 0  # items dropped: the queue was full, or the store failed
        self._queue: deque[T] = deque()
        self._task: asyncio.Task | None = None
        self._failing = False
        self._hurry = asyncio.Event()  # set by a flush: write now, without lingering

    def add(self, item: T) -> bool:
        """Queue one item; False when the queue was full and it was dropped. Never blocks; on the event loop."""
        queue = self._queue
        if len(queue) >= self.max_queued:
            self.dropped += 1
            return False
        queue.append(item)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        elif len(queue) >= self.batch:
            self._hurry.set()  # a full batch: no reason to linger
        return True

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
        """Write everything queued now (on shutdown, before an erasure or a report, and in tests)."""
        while self._task is not None:
            self._hurry.set()
            await asyncio.shield(self._task)
        if self._queue:  # queued while no task ran: written here
            self._hurry.set()
            await self._drain()

    async def _drain(self) -> None:
        queue = self._queue
        try:
            if self.linger and len(queue) < self.batch and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.linger)
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
            self._hurry.clear()
