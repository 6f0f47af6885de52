"""The most recent logged decisions, kept in memory for the console's rule counts and its diff against live.

It listens beside the decision log, so it holds what the log is given: only
served ``/v1/decide`` decisions (explanations, the console's own tries and
scratch decisions are never logged). Bounded: the oldest go first.
"""

from __future__ import annotations

from collections import deque

from .decision_record import DecisionRecord

DEFAULT_RECENT = 2000  # decisions kept: enough for counts worth reading, small enough to replay on a page load


class RecentDecisions:
    """A listener for ``DecisionService.listen`` keeping the newest ``capacity`` records."""

    def __init__(self, capacity: int = DEFAULT_RECENT):
        self._records: deque[DecisionRecord] = deque(maxlen=capacity)

    def __call__(self, record: DecisionRecord) -> None:
        self._records.append(record)

    def records(self) -> list[DecisionRecord]:
        """The records kept, oldest first (a copy: decisions served meanwhile do not disturb a replay)."""
        return list(self._records)

    def forget(self, user_id: str) -> int:
        """Drop a user's records (erasure); how many went."""
        kept = [record for record in self._records if record.user_id != user_id]
        gone = len(self._records) - len(kept)
        if gone:
            self._records.clear()
            self._records.extend(kept)
        return gone
