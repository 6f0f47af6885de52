"""Where model predictions are cached: in each process (the default), or in the store, shared by the fleet.

A page view often asks for the same user's scores several times in a row
with nothing changed, so a prediction is kept for ``DEFAULT_CACHE_TTL``
seconds. With ``PredictionCache.PROCESS`` each server process keeps its own
(``ModelRunner``); behind a load balancer the next request of the user often
lands on another process, which computes the score again. With
``PredictionCache.STORE`` the store keeps them, shared by every process:

- one entry per (user, model version): a field of the user's predictions
  hash (``tailor:{USER}:m``), named by the model's version (the content hash
  of its file), holding the digest of the exact input row, the score and
  when it expires. A score is used only for the same model file and the same
  inputs, so a reload in one process never makes another serve a score of a
  model it does not serve.
- it is read in the decision's one round trip, with the features (the
  user's hash tag puts it on the same cluster node), so a cached score costs
  no round trip of its own; a decision that reads nothing from the store
  computes its scores.
- a score computed here is written back off the response path, in batches
  (``SharedPredictions``): a miss costs the decision one inference, as
  before, and the store one background write.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import deque
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .store import FeatureStore

log = logging.getLogger("tailor.runtime")

#: The key under which ``FeatureStore.fetch`` answers the stored predictions it was asked for
#: (model version -> entry). No feature text starts with ``@``.
CACHED_PREDICTIONS = "@predictions"
MAX_QUEUED = 100_000  # predictions waiting to be written; beyond it they are dropped (and computed again)
BATCH = 512  # predictions per store call


class PredictionCache(StrEnum):
    """Where ``tailor serve --prediction-cache`` keeps model predictions."""

    PROCESS = "process"  # each process its own: no store traffic
    STORE = "store"  # in the store: every process shares them


DEFAULT_PREDICTION_CACHE = PredictionCache.PROCESS


class StoredPrediction(NamedTuple):
    """One cache entry as the store keeps it: the user's field for one model version."""

    user_id: str
    version: str  # the model's version: the field's name
    entry: str  # ``entry()``'s text


def digest(row: Sequence[float]) -> str:
    """The exact input row, as a short digest (unknown inputs are NaN, which never equals itself: spelt None)."""
    text = repr(tuple(None if math.isnan(v) else v for v in row))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def entry(expires: float, row_digest: str, score: float) -> str:
    return f"{expires!r} {row_digest} {score!r}"


def score_of(stored: str | bytes | None, row_digest: str, now: float) -> float | None:
    """The stored score when it is for this input row and has not expired; None otherwise."""
    if stored is None:
        return None
    if isinstance(stored, bytes):
        stored = stored.decode()
    try:
        expires, found, score = stored.split(" ")
        if found != row_digest or float(expires) <= now:
            return None
        return float(score)
    except ValueError:  # not an entry this version wrote: a miss
        return None


class SharedPredictions:
    """Queues the predictions this process computed and writes them to the store in the background.

    The queue is bounded: when the store falls behind, the newest are dropped
    and counted, and will be computed again. A failed write is dropped and
    logged once until writes succeed again; nothing else depends on it.
    """

    def __init__(self, store: FeatureStore, ttl: float, max_queued: int = MAX_QUEUED):
        self.store = store
        self.ttl = ttl
        self.max_queued = max_queued
        self.written = 0
        self.dropped = 0
        self._queue: deque[StoredPrediction] = deque()
        self._task: asyncio.Task | None = None
        self._failing = False

    def note(self, user_id: str, version: str, row_digest: str, score: float, now: float) -> None:
        """Queue one computed score; never blocks. Called by the decision, on the event loop."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append(StoredPrediction(user_id, version, entry(now + self.ttl, row_digest, score)))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def forget(self, user_id: str) -> int:
        """Drop the user's queued predictions (an erasure); how many there were."""
        queue = self._queue
        kept = [p for p in queue if p.user_id != user_id]
        dropped = len(queue) - len(kept)
        if dropped:
            queue.clear()
            queue.extend(kept)
        return dropped

    async def flush(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._queue:
            await self._drain()

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
                try:
                    await self.store.keep_predictions(batch, self.ttl)
                except Exception as exc:  # a cache write that fails costs a recomputation, nothing else
                    self.dropped += len(batch)
                    if not self._failing:
                        self._failing = True
                        log.warning("cached predictions could not be written (%s: %s)", type(exc).__name__, exc)
                    continue
                self.written += len(batch)
                if self._failing:
                    self._failing = False
                    log.info("cached predictions are written again")
        finally:
            self._task = None
