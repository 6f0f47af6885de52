"""``MemoryStore``'s cached model predictions: the same entries as Redis keeps, in this process.

At most ``capacity`` (user, model version) entries are kept, the least
recently written dropped first; an entry also lapses after its TTL, like the
Redis hash's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from .prediction_cache import StoredPrediction


class MemoryPredictions:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()  # -> (deadline, entry)

    def keep(self, predictions: Sequence[StoredPrediction], ttl: float) -> None:
        deadline = time.monotonic() + ttl
        entries = self._entries
        for user_id, version, text in predictions:
            key = (user_id, version)
            entries[key] = (deadline, text)
            entries.move_to_end(key)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def read(self, user_id: str, versions: Sequence[str]) -> dict[str, str]:
        now = time.monotonic()
        found = {}
        for version in versions:
            kept = self._entries.get((user_id, version))
            if kept is not None and kept[0] > now:
                found[version] = kept[1]
        return found

    def erase(self, user_id: str) -> int:
        doomed = [key for key in self._entries if key[0] == user_id]
        for key in doomed:
            del self._entries[key]
        return len(doomed)
