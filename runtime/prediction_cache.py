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

import hashlib
import math
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from .background_writes import BackgroundWrites

if TYPE_CHECKING:
    from .store import FeatureStore

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


class SharedPredictions(BackgroundWrites[StoredPrediction]):
    """Queues the predictions this process computed and writes them to the store in the background.

    When the store falls behind, the newest are dropped and counted, and will be computed again. A
    failed write is not retried: nothing else depends on it, and it costs a recomputation.
    """

    def __init__(self, store: FeatureStore, ttl: float, max_queued: int = MAX_QUEUED):
        super().__init__(self._keep, _user_of, what="cached predictions", batch=BATCH, max_queued=max_queued)
        self.store = store
        self.ttl = ttl

    def note(self, user_id: str, version: str, row_digest: str, score: float, now: float) -> None:
        """Queue one computed score; never blocks. Called by the decision, on the event loop."""
        self.add(StoredPrediction(user_id, version, entry(now + self.ttl, row_digest, score)))

    async def _keep(self, batch: Sequence[StoredPrediction]) -> int:
        await self.store.keep_predictions(batch, self.ttl)
        return len(batch)


def _user_of(prediction: StoredPrediction) -> str:
    return prediction.user_id
