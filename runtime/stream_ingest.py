"""The consumer loop of ``tailor ingest``: records from a stream into the store, each counted once.

Delivery is at least once: a batch is acknowledged only after the store
took it (and its bad records went to dead letters), so a crash, a kill or a
store outage between the read and the acknowledgement leaves it pending, to
be read again. Counting is exactly once in effect: events carry ids (a
record without one gets its entry's) and feedback items are judged by the
store once per id, or per (decision, slot, type), so a redelivered record
answers as a duplicate. While the store fails, the batch is retried after a
pause that doubles up to ``MAX_PAUSE``; nothing is acknowledged meanwhile.

Up to ``in_flight`` batches are under way at once: the next batch is read
and checked while the one before is being stored, so the ingester's work
and the store's overlap instead of taking turns. Batches are still
acknowledged one at a time in the order they were read (a Kafka commit
covers every offset before it), so a batch that fails holds back the
acknowledgements after it until it is stored. Two batches stored at once
count nothing twice: whether an event id or a feedback item is new is
decided by one atomic script call in the store, so of two copies of a record
in two batches under way one is counted and the other answers as a
duplicate, and the series they add to only add up.

The loop sees the stream only through ``Source`` (``stream_source.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from .attribution import Attribution
from .buckets import MAX_BATCH
from .events import Event, EventRejected, RecordResult
from .feedback import DEFAULT_ATTRIBUTION, MAX_FEEDBACK, FeedbackItem, FeedbackResult, Impressions, Outcome
from .ingest_metrics import IngestMetrics
from .metrics import Metrics
from .service import WRITE_TIMEOUT
from .store import FeatureStore
from .stream_records import BadRecord, Entry, EventRecord, read_record
from .stream_source import Source

log = logging.getLogger("tailor.runtime")

DEFAULT_BATCH = 100  # entries per read
#: Batches read and not yet acknowledged, at most: with two, the next batch is read and checked while one is
#: being stored, which is all the overlap one process and one store have to offer (more only queue up).
DEFAULT_IN_FLIGHT = 2
MIN_PAUSE = 0.1  # seconds before the first retry of a batch the store failed
MAX_PAUSE = 5.0
BACKLOG_EVERY = 1.0  # seconds between reads of the group's lag
#: Feedback outcomes that are not counted and say something is wrong with the item: kept as dead letters.
REFUSED = frozenset(
    (Outcome.UNKNOWN_DECISION, Outcome.UNKNOWN_SLOT, Outcome.EXPIRED, Outcome.WRONG_USER, Outcome.CONFLICT)
)


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of one batch."""

    events: RecordResult
    feedback: FeedbackResult
    dead_letters: int


Stored = tuple[Taken, list[tuple[Entry, str]]]  # a batch written: what became of it, and its refused entries


@dataclass(frozen=True, slots=True)
class UnderWay:
    """A batch read and not yet acknowledged: its entries, when it was read, and its first store write."""

    entries: list[Entry]
    read_at: float
    storing: asyncio.Task[Stored]


class Ingester:
    """Reads batches from ``source`` and stores them, acknowledging each batch once stored."""

    def __init__(
        self,
        source: Source,
        store: FeatureStore,
        metrics: IngestMetrics | None = None,
        *,
        batch: int = DEFAULT_BATCH,
        in_flight: int = DEFAULT_IN_FLIGHT,
        attribution: float = DEFAULT_ATTRIBUTION,
        impressions: Impressions = Impressions.FEEDBACK,
        consent_attribute: str | None = None,
    ):
        self.source = source
        self.store = store
        self.metrics = metrics or IngestMetrics()
        self.batch = batch
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.in_flight = in_flight
        self.consent_attribute = consent_attribute
        # The servers' own feedback path, so an item is judged here exactly as POST /v1/feedback judges it.
        self.feedback = Attribution(
            store, Metrics(), attribution=attribution, impressions=impressions, consent_attribute=consent_attribute
        )
        self._backlog_at = 0.0
        self._under_way: set[str] = set()  # the ids of the entries of the batches under way

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: read, store, acknowledge, with up to ``in_flight`` batches under way.

        On a stop no batch is read any more, and those under way are stored and acknowledged first; when
        one of them cannot be (the store fails), it and the ones after it are left pending, to be read again.
        """
        window: asyncio.Queue[UnderWay | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self.in_flight)
        reader = asyncio.create_task(self._read_ahead(stop, window, slots))
        acknowledging = True
        try:
            while (batch := await window.get()) is not None:
                if acknowledging:
                    acknowledging = await self._settle(batch, stop)
                else:  # an earlier batch was left pending at the stop: the later ones stay pending too
                    await asyncio.gather(batch.storing, return_exceptions=True)
                self._under_way.difference_update(entry.id for entry in batch.entries)
                slots.release()
            await reader
        finally:  # cancelled, or a bug: nothing more is read, and no write is left running
            left: list[asyncio.Task[Any]] = [reader]
            while not window.empty():
                if (under_way := window.get_nowait()) is not None:
                    left.append(under_way.storing)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            self._under_way.clear()

    async def _read_ahead(
        self, stop: asyncio.Event, window: asyncio.Queue[UnderWay | None], slots: asyncio.Semaphore
    ) -> None:
        """Read a batch whenever fewer than ``in_flight`` are under way, start storing it and hand it on."""
        pause = MIN_PAUSE
        try:
            while not stop.is_set():
                await slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                try:
                    # An entry read again while its batch is under way (this consumer's own, claimed back from
                    # itself) is left to that batch.
                    entries = [entry for entry in await self.source.read(self.batch) if entry.id not in self._under_way]
                except Exception as exc:  # the stream failed: nothing was read, read again after a pause
                    slots.release()
                    pause = await self._failed(f"could not read from {self.source.name}", exc, pause, stop)
                    continue
                if entries:
                    self._under_way.update(entry.id for entry in entries)
                    storing = asyncio.create_task(self.store_batch(entries))
                    window.put_nowait(UnderWay(entries, time.perf_counter(), storing))
                else:
                    slots.release()
                try:
                    await self._watch_backlog()
                    pause = MIN_PAUSE
                except Exception as exc:
                    pause = await self._failed(f"could not read the backlog of {self.source.name}", exc, pause, stop)
        finally:
            window.put_nowait(None)

    async def _settle(self, batch: UnderWay, stop: asyncio.Event) -> bool:
        """Wait for the batch's store write, then dead-letter its refused records and acknowledge it.

        A failure is retried, the whole batch (what was stored already answers as duplicates), after a pause
        that doubles; False when a stop came first, the batch left unacknowledged.
        """
        pause = MIN_PAUSE
        attempt: Awaitable[Stored] = batch.storing
        while True:
            try:
                _, letters = await attempt
                await self._acknowledge(batch.entries, letters, batch.read_at)
                return True
            except Exception as exc:  # the store or the stream failed: keep the batch unacknowledged, retry
                pause = await self._failed(f"could not store a batch of {len(batch.entries)} records", exc, pause, stop)
                if stop.is_set():
                    return False
                attempt = self.store_batch(batch.entries)

    async def _failed(self, what: str, exc: Exception, pause: float, stop: asyncio.Event) -> float:
        """Count and log a failure, pause (unless a stop comes first); the next pause, doubled."""
        self.metrics.store_failures.inc()
        log.warning("%s (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, pause)
        await _sleep(pause, stop)
        return min(pause * 2, MAX_PAUSE)

    async def take(self, entries: Sequence[Entry]) -> Taken:
        """Store a batch, dead-letter its bad records, then acknowledge it all; raises when the store fails."""
        started = time.perf_counter()
        taken, letters = await self.store_batch(entries)
        await self._acknowledge(entries, letters, started)
        return taken

    async def _acknowledge(self, entries: Sequence[Entry], letters: list[tuple[Entry, str]], read_at: float) -> None:
        """The stored batch's refused records to dead letters, then the whole batch acknowledged."""
        await self.source.dead_letter(letters)
        await self.source.ack(entries)
        metrics = self.metrics
        metrics.acknowledged.inc(len(entries))
        metrics.dead_letters.inc(len(letters))
        metrics.batch_seconds.observe(time.perf_counter() - read_at)

    async def store_batch(self, entries: Sequence[Entry]) -> Stored:
        """Write a batch's records to the store; the result and the refused entries with their reasons.

        Nothing is acknowledged here: a test (or a crash) stopping after it sees the records stored and
        still pending.
        """
        now = time.time()
        letters: list[tuple[Entry, str]] = []
        events: list[tuple[Entry, EventRecord]] = []
        items: list[tuple[Entry, FeedbackItem]] = []
        for entry in entries:
            try:
                record = read_record(entry.fields, f"{self.source.name}/{entry.id}", now)
            except BadRecord as exc:
                letters.append((entry, str(exc)))
                continue
            if isinstance(record, EventRecord):
                events.append((entry, record))
            else:
                items.append((entry, record))
        recorded = await self._record(events, letters, now)
        feedback = await self._feedback(items, letters, now)
        return Taken(recorded, feedback, len(letters)), letters

    async def _record(
        self, events: Sequence[tuple[Entry, EventRecord]], letters: list[tuple[Entry, str]], now: float
    ) -> RecordResult:
        """The events into the store, as ``POST /v1/events`` records them; those without consent dropped."""
        refused: set[str] = set()
        if self.consent_attribute is not None and events:
            users = [record.event.user_id for _, record in events]
            async with asyncio.timeout(WRITE_TIMEOUT):
                refused = await self.store.declined(users, self.consent_attribute)
        kept = [(entry, r.event) for entry, r in events if not r.declined and r.event.user_id not in refused]
        result = RecordResult(dropped_no_consent=len(events) - len(kept))
        for start in range(0, len(kept), MAX_BATCH):
            chunk = kept[start : start + MAX_BATCH]
            result += await self._record_chunk(chunk, letters, now)
        counts = self.metrics.events
        for outcome, count in (
            ("accepted", result.accepted),
            ("duplicate", result.duplicates),
            ("conflict", result.conflicts),
            ("expired", result.expired),
            ("no_consent", result.dropped_no_consent),
        ):
            if count:
                counts[outcome].inc(count)
        return result

    async def _record_chunk(
        self, chunk: Sequence[tuple[Entry, Event]], letters: list[tuple[Entry, str]], now: float
    ) -> RecordResult:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                return await self.store.record([event for _, event in chunk], now)
        except EventRejected:  # the records were checked one by one; the store's own check is the last word
            result = RecordResult()
            for entry, event in chunk:
                try:
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        result += await self.store.record([event], now)
                except EventRejected as exc:
                    letters.append((entry, f"event: {exc}"))
            return result

    async def _feedback(
        self, items: Sequence[tuple[Entry, FeedbackItem]], letters: list[tuple[Entry, str]], now: float
    ) -> FeedbackResult:
        """The items judged and counted as ``POST /v1/feedback`` does; those it refuses become dead letters."""
        totals = FeedbackResult(0, 0, 0, ())
        counts = self.metrics.feedback
        for start in range(0, len(items), MAX_FEEDBACK):
            chunk = items[start : start + MAX_FEEDBACK]
            result = await self.feedback.receive([item for _, item in chunk], now)
            counts[Outcome.ACCEPTED.value].inc(result.accepted)
            counts[Outcome.DUPLICATE.value].inc(result.duplicates)
            counts[Outcome.IGNORED.value].inc(result.ignored)
            for problem in result.results:
                counts[problem.status.value].inc()
                if problem.status in REFUSED:
                    letters.append((chunk[problem.index][0], f"feedback: {problem.status.value}"))
            totals = FeedbackResult(
                totals.accepted + result.accepted,
                totals.duplicates + result.duplicates,
                totals.ignored + result.ignored,
                (*totals.results, *result.results),
                totals.dropped_no_consent + result.dropped_no_consent,
            )
        return totals

    async def _watch_backlog(self) -> None:
        if time.monotonic() < self._backlog_at:
            return
        self._backlog_at = time.monotonic() + BACKLOG_EVERY
        backlog = await self.source.backlog()
        if backlog is not None:
            self.metrics.lag.set(float("nan") if backlog.lag is None else backlog.lag)
            self.metrics.pending.set(backlog.pending)


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    """Pause, unless a stop comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
