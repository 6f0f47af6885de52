"""Where ``tailor ingest`` reads records from: the interface a stream implements.

The consumer loop (``stream_ingest.py``) is written against ``Source`` alone:
read a batch, acknowledge entries once their records are stored, and send
bad records to dead letters. Redis Streams (``redis_stream_source.py``) and
Kafka (``kafka_source.py``) are its two implementations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .stream_records import Entry

REASON_FIELD = "reason"  # a dead letter's field saying why its record was refused
ORIGIN_FIELD = "origin"  # and which stream and entry it came from: "NAME/ID"


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far the group is behind: entries not yet delivered to any consumer, and delivered but not acknowledged."""

    lag: int | None  # None: the stream cannot say (entries were deleted or trimmed past the group's position)
    pending: int


def dead_letter(entry: Entry, reason: str, origin: str) -> dict[str, str]:
    """A dead letter's fields: the entry's own, with why it was refused and where it came from."""
    return {**entry.fields, REASON_FIELD: reason, ORIGIN_FIELD: origin}


class Source(Protocol):
    """A partitioned or grouped stream that several ingesters share, delivering each entry at least once."""

    #: names the source in event ids and dead letters: the stream or topic
    name: str

    async def read(self, count: int) -> list[Entry]:
        """Up to ``count`` entries for this consumer, waiting a little when there are none: its own
        unacknowledged ones first, then those idle too long at dead consumers, then new ones. The loop reads
        the next batch before the last is acknowledged: an entry it already holds may come again, and is skipped.
        """
        ...

    async def ack(self, entries: Sequence[Entry]) -> None:
        """The entries are stored: never deliver them again. Batches are acknowledged in the order read."""
        ...

    async def dead_letter(self, letters: Sequence[tuple[Entry, str]]) -> None:
        """Keep each refused entry with its reason where an operator can read it (it is acknowledged after)."""
        ...

    async def backlog(self) -> Backlog | None:
        """How far behind the group is, when the source can say."""
        ...

    async def close(self) -> None: ...


def fields_text(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """An entry's fields as text (clients hand back bytes); bytes that are not UTF-8 are replaced, not fatal."""
    return {
        (k.decode(errors="replace") if isinstance(k, bytes) else k): (
            v.decode(errors="replace") if isinstance(v, bytes) else v
        )
        for k, v in fields.items()
    }
