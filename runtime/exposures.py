"""First exposures to experiments, written to the store off the response path.

``ExposureLog`` listens to served decisions (``DecisionService.listen``). A
record's experiments marked ``exposed`` are queued, and one task per event
loop drains the queue to ``FeatureStore.expose`` in batches, after the
responses have gone. The store keeps each (user, experiment, phase) once, so
an exposure queued twice, or retried, is counted once; the per-arm counts
are what a results report reads (``FeatureStore.exposures``).

The queue is bounded: when the store falls far behind, the newest exposures
are dropped and counted, never allowed to grow memory or hold up decisions.
A failed write is retried (``ATTEMPTS``), then dropped and counted; the
failure is logged once until writes succeed again, like the store's reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from .decision_record import DecisionRecord
from .store import Exposure, FeatureStore

log = logging.getLogger("tailor.runtime")

MAX_QUEUED = 100_000  # exposures waiting for the store
BATCH = 256  # exposures per store call
ATTEMPTS = 3  # per batch: the store remembers exposures, so a retry never counts one twice
RETRY_SECONDS = 0.5


class ExposureLog:
    """Queues the exposures of served decisions and writes them to the store in the background."""

    def __init__(self, store: FeatureStore, max_queued: int = MAX_QUEUED):
        self.store = store
        self.max_queued = max_queued
        self.written = 0  # exposures the store took as new
        self.dropped = 0  # exposures dropped: the queue was full, or the store failed
        self._queue: deque[Exposure] = deque()
        self._task: asyncio.Task | None = None
        self._failing = False

    def note(self, record: DecisionRecord) -> None:
        """A ``DecisionService.listen`` listener: queue the record's exposures; never blocks."""
        for entry in record.experiments:
            if not entry.exposed:
                continue
            if len(self._queue) >= self.max_queued:
                self.dropped += 1
                continue
            self._queue.append(Exposure(record.user_id, entry.experiment, entry.phase, entry.arm))
        if self._queue and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def forget(self, user_id: str) -> int:
        """Drop the user's queued exposures (an erasure); how many there were."""
        queue = self._queue  # changed in place: the writing task holds it
        kept = [exposure for exposure in queue if exposure.user_id != user_id]
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
                batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
                for attempt in range(ATTEMPTS):
                    try:
                        self.written += await self.store.expose(batch)
                        break
                    except Exception as exc:  # a failing store must not end the task: retrying is safe
                        if not self._failing:
                            self._failing = True
                            log.warning("exposures could not be written (%s: %s)", type(exc).__name__, exc)
                        if attempt + 1 < ATTEMPTS:
                            await asyncio.sleep(RETRY_SECONDS * (attempt + 1))
                else:
                    self.dropped += len(batch)
                    continue
                if self._failing:
                    self._failing = False
                    log.info("exposures are written again")
        finally:
            self._task = None
