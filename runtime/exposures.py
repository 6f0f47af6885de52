"""First exposures to experiments, written to the store off the response path.

``ExposureLog`` listens to served decisions (``DecisionService.listen``). A
record's experiments marked ``exposed`` are queued, and one task per event
loop drains the queue to ``FeatureStore.expose`` in batches, after the
responses have gone. The store keeps each (user, experiment, phase) once, so
an exposure queued twice, or retried, is counted once; the per-arm counts
are what a results report reads (``FeatureStore.exposures``).

The queue is the one of ``BackgroundWrites``: bounded, and a failed batch is
retried (``ATTEMPTS``: the store remembers exposures, so a retry never counts
one twice), then dropped and counted.
"""

from __future__ import annotations

from .background_writes import BackgroundWrites
from .decision_record import DecisionRecord
from .store import Exposure, FeatureStore

MAX_QUEUED = 100_000  # exposures waiting for the store
BATCH = 256  # exposures per store call
ATTEMPTS = 3  # per batch: the store remembers exposures, so a retry never counts one twice
LINGER = 0.02  # seconds exposures gather before a write, as served decisions' join records do


class ExposureLog(BackgroundWrites[Exposure]):
    """Queues the exposures of served decisions and writes them to the store in the background."""

    def __init__(self, store: FeatureStore, max_queued: int = MAX_QUEUED):
        super().__init__(
            store.expose,
            _user_of,
            what="exposures",
            batch=BATCH,
            max_queued=max_queued,
            attempts=ATTEMPTS,
            linger=LINGER,
        )
        self.store = store

    def note(self, record: DecisionRecord) -> None:
        """A ``DecisionService.listen`` listener: queue the record's exposures; never blocks."""
        for entry in record.experiments:
            if entry.exposed:
                self.add(Exposure(record.user_id, entry.experiment, entry.phase, entry.arm))


def _user_of(exposure: Exposure) -> str:
    return exposure.user_id
