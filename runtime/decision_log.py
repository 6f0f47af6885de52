"""The decision log: every served decision's record, written off the response path.

``DecisionLog`` listens to the service (``DecisionService.listen``). On the
event loop, as ``/v1/decide`` answers, it only decides whether the decision
is sampled and appends the record to a bounded queue; when the queue is full
the record is dropped and counted, so a decision never waits to be logged. A
writer task takes the queue in batches (at most ``BATCH`` records, gathered
for up to ``LINGER`` seconds, or until
half the queue is taken), serializes them with orjson, and hands each
batch to the sink in one call: one ``XADD`` pipeline, or one file write.

A batch the sink cannot write (Redis down, a full disk) is lost and counted;
the server says so once, and once more when the sink recovers. A clean stop
writes what is queued before the sink closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from .decision_record import DecisionRecord
from .metrics import LogCounts
from .redis_urls import is_redis_url

log = logging.getLogger("tailor.runtime")

OFF = "off"
DEFAULT_SAMPLE = 1.0  # every served decision is logged
DEFAULT_QUEUE = 10_000  # records waiting to be written, at most; beyond it they are dropped
DEFAULT_MAX_LEN = 100_000  # the Redis Stream keeps about this many records (XADD MAXLEN ~)
DEFAULT_MAX_BYTES = 64 * 2**20  # a log file is rotated (and compressed) once it is this large
BATCH = 512  # records per sink call, at most
LINGER = 0.05  # seconds the writer lets records gather before a batch: fewer, larger writes
CLOSE_TIMEOUT = 5.0  # seconds a clean stop waits for the queue to be written


@dataclass(frozen=True, slots=True)
class LogErasure:
    """What erasing a user did to the decision log: deleted now (the Stream), or to be (files)."""

    sink: str = field(metadata={"doc": 'where the log goes: "stream", "files", or "off"'})
    deleted: int = field(metadata={"doc": "the user's records deleted from the Stream now"})
    pending_files: int = field(
        metadata={"doc": "log files to be rewritten without the user at the next rotation of a server's log file"}
    )
    dropped: int = field(default=0, metadata={"doc": "the user's records dropped from this process's queue"})
    summary: str = field(init=False, metadata={"doc": "which records are deleted now, which at the next rotation"})

    def __post_init__(self) -> None:
        if self.sink == "stream":
            summary = f"stream: deleted {self.deleted}"
        elif self.sink == "files":
            summary = f"files: will be rewritten at next rotation ({self.pending_files} files pending)"
        else:
            summary = "off: no decision log is kept"
        object.__setattr__(self, "summary", summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "deleted": self.deleted,
            "pending_files": self.pending_files,
            "dropped": self.dropped,
            "summary": self.summary,
        }


class Sink(Protocol):
    """Where batches of records go; each line is one record's JSON, ending with a newline."""

    where: str  # for the server's log: "the Redis Stream tailor:decisions at ...", "files in ..."
    kind: str  # "stream" or "files"

    async def write(self, lines: Sequence[bytes]) -> None:
        """Write the batch, or raise: the writer counts the batch as lost."""
        ...

    async def erase(self, user_id: str) -> LogErasure:
        """Delete the user's records, or have them deleted (see ``decision_log_erasure``)."""
        ...

    async def records_of(self, user_id: str) -> tuple[list[Any], bool]:
        """The user's records (as JSON), oldest first, at most the newest ``MAX_EXPORTED``; and
        whether older ones were left out."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``tailor serve``'s log options, as the server resolves them."""

    destination: str | None = None  # OFF, a directory, a Redis URL; None: the store's Redis, if any, else off
    sample: float = DEFAULT_SAMPLE
    queue: int = DEFAULT_QUEUE
    max_len: int = DEFAULT_MAX_LEN
    max_bytes: int = DEFAULT_MAX_BYTES

    def target(self, store_redis: str | None) -> str | None:
        """Where records go: a Redis URL, a directory, or None when the log is off.

        Without ``--decision-log`` the log follows the store: the Redis Stream
        beside the features with ``--redis``, off with the memory store (whose
        data is gone when the process exits anyway).
        """
        destination = self.destination
        if destination is None:
            return store_redis
        return None if destination == OFF else destination


def sampled(decision_id: str, fraction: float) -> bool:
    """Whether a decision is logged: a hash of its id, so the same id always gets the same answer
    (in every worker, and in a replay), and about ``fraction`` of the ids do."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    digest = hashlib.blake2b(decision_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2.0**64


def open_sink(target: str, settings: LogSettings, cluster: bool = False) -> Sink:
    """The sink for a Redis URL (its Stream; ``cluster``: a node of a Redis Cluster) or a directory
    (NDJSON files)."""
    if is_redis_url(target):
        from .decision_log_stream import StreamSink

        return StreamSink(target, max_len=settings.max_len, cluster=cluster)
    from .decision_log_files import FileSink

    return FileSink(Path(target), max_bytes=settings.max_bytes)


class DecisionLog:
    """The listener that queues records, and the task that writes them to ``sink``."""

    def __init__(self, sink: Sink, counts: LogCounts, *, sample: float = DEFAULT_SAMPLE, capacity: int = DEFAULT_QUEUE):
        self.sink = sink
        self.counts = counts
        self.sample = sample
        self.capacity = capacity
        self._queue: list[DecisionRecord] = []
        self._ready = asyncio.Event()  # something is queued
        self._plenty = asyncio.Event()  # enough is queued to write without lingering
        self._threshold = max(1, min(BATCH, capacity // 2))
        self._closing = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self, record: DecisionRecord) -> None:
        """Queue ``record`` (on the event loop, on the response path: nothing here may wait)."""
        counts = self.counts
        if self.sample < 1.0 and not sampled(record.decision_id, self.sample):
            counts.sampled_out += 1
            return
        queue = self._queue
        if len(queue) >= self.capacity or self._closing:
            counts.dropped += 1
            return
        queue.append(record)
        counts.queued += 1
        if not self._ready.is_set():
            self._ready.set()
        if len(queue) >= self._threshold and not self._plenty.is_set():
            self._plenty.set()

    def forget(self, user_id: str) -> int:
        """Drop the user's queued records (an erasure); how many there were."""
        queue = self._queue
        kept = [record for record in queue if record.user_id != user_id]
        dropped = len(queue) - len(kept)
        if dropped:
            queue[:] = kept
            self.counts.queued -= dropped
        return dropped

    async def erase(self, user_id: str) -> LogErasure:
        """Drop the user's queued records, and delete their written ones (or list them for deletion)."""
        dropped = self.forget(user_id)
        return replace(await self.sink.erase(user_id), dropped=dropped)

    async def records_of(self, user_id: str) -> tuple[list[Any], bool]:
        return await self.sink.records_of(user_id)

    @property
    def kind(self) -> str:
        return self.sink.kind

    def start(self) -> None:
        """Start the writer on the running loop."""
        share = "every decision" if self.sample >= 1.0 else f"{self.sample:.4g} of decisions (--log-sample)"
        log.info("decision log: %s, %s", self.sink.where, share)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="decision-log")

    async def close(self) -> None:
        """Write what is queued (for at most ``CLOSE_TIMEOUT`` seconds), then close the sink."""
        self._closing = True
        self._ready.set()
        self._plenty.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, CLOSE_TIMEOUT)
            except TimeoutError:
                lost = len(self._queue)
                self.counts.failed += lost
                log.warning("decision log: %d queued records not written within %g s of stopping", lost, CLOSE_TIMEOUT)
        await self.sink.close()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if not self._closing and len(self._queue) < self._threshold:
                with contextlib.suppress(TimeoutError):  # linger, unless the queue fills meanwhile
                    await asyncio.wait_for(self._plenty.wait(), LINGER)
            self._ready.clear()
            self._plenty.clear()
            while self._queue:
                batch = self._queue[:BATCH]
                del self._queue[:BATCH]
                self.counts.queued -= len(batch)
                await self._write(batch)
            if self._closing:
                return

    async def _write(self, batch: Sequence[DecisionRecord]) -> None:
        counts = self.counts
        try:
            # orjson writes the dataclasses themselves, field by field in the order ``to_dict`` gives: the
            # same bytes without building each record's dicts first.
            lines = [orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in batch]
            await self.sink.write(lines)
        except Exception as exc:  # the log never takes the server down: the batch is lost, and counted
            counts.sink_errors += 1
            counts.failed += len(batch)
            if not self._failing:
                self._failing = True
                log.warning(
                    "decision log: cannot write to %s (%s: %s); records are lost, and counted in "
                    'tailor_decision_log_records_total{outcome="failed"}, until it recovers',
                    self.sink.where,
                    type(exc).__name__,
                    exc,
                )
            return
        counts.written += len(batch)
        if self._failing:
            self._failing = False
            log.warning("decision log: writing to %s again", self.sink.where)


def open_log(
    settings: LogSettings, store_redis: str | None, counts: LogCounts, store_cluster: bool = False
) -> DecisionLog | None:
    """The decision log ``settings`` ask for, not yet started; None when it is off. ``store_cluster``:
    the store's Redis is a cluster (a Stream in another Redis is asked whether it is one)."""
    target = settings.target(store_redis)
    if target is None:
        return None
    cluster = store_cluster
    if target != store_redis and is_redis_url(target):
        from .redis_clients import cluster_enabled

        cluster = cluster_enabled(target)
    sink = open_sink(target, settings, cluster)
    return DecisionLog(sink, counts, sample=settings.sample, capacity=settings.queue)
