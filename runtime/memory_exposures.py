"""The memory store's first exposures to experiments, as ``RedisStore`` keeps them in Redis.

Per (experiment, phase): each exposed user with when the exposure is
forgotten and the arm it was counted under, oldest first, at most
``max_users`` (the oldest is forgotten first); and how many users each arm
exposed. The arm is kept so that erasing a user takes them off its count.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from .store import EXPOSURE_TTL, Exposure
from .user_data import ExposureData

Phase = tuple[str, str]  # experiment, phase


class MemoryExposures:
    """First exposures and per-arm counts in dicts; thread-safe."""

    def __init__(self, max_users: int):
        self.max_users = max_users
        self._lock = threading.Lock()
        self._exposed: dict[Phase, OrderedDict[str, tuple[float, str]]] = {}  # user -> (forgotten at, arm)
        self._counts: dict[Phase, dict[str, int]] = {}

    def expose(self, exposures: Sequence[Exposure]) -> int:
        now = time.time()
        new = 0
        with self._lock:
            for user_id, experiment, phase, arm in exposures:
                phase_key = (experiment, phase)
                seen = self._exposed.get(phase_key)
                if seen is None:
                    seen = self._exposed[phase_key] = OrderedDict()
                remembered = seen.get(user_id)
                if remembered is not None and remembered[0] > now:
                    continue
                seen.pop(user_id, None)
                seen[user_id] = (now + EXPOSURE_TTL, arm)
                if len(seen) > self.max_users:
                    seen.popitem(last=False)  # bounded, as users are: the oldest exposure is forgotten
                counts = self._counts.setdefault(phase_key, {})
                counts[arm] = counts.get(arm, 0) + 1
                new += 1
        return new

    def counts(self, experiment: str, phase: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get((experiment, phase), {}))

    def of(self, user_id: str) -> list[ExposureData]:
        """The user's remembered exposures."""
        now = time.time()
        with self._lock:
            return [
                ExposureData(experiment, phase, remembered[1])
                for (experiment, phase), seen in self._exposed.items()
                if (remembered := seen.get(user_id)) is not None and remembered[0] > now
            ]

    def erase(self, user_id: str) -> int:
        """Forget the user's exposures and take each off its arm's count; how many there were."""
        now = time.time()
        erased = 0
        with self._lock:
            for phase_key, seen in self._exposed.items():
                remembered = seen.pop(user_id, None)
                if remembered is None or remembered[0] <= now:
                    continue
                erased += 1
                counts = self._counts.get(phase_key, {})
                arm = remembered[1]
                if counts.get(arm, 0) > 1:
                    counts[arm] -= 1
                else:
                    counts.pop(arm, None)  # arms nobody saw are absent, as in Redis
        return erased
