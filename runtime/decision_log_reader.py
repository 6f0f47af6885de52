"""Reading the decision log back, from either sink: ``tailor log``, reports and experiments read through here.

A source is a Redis URL (``redis://``, ``rediss://``, ``unix://``: its Stream
``tailor:decisions`` is read), a directory of log files, or one file of
records (``tailor log export``'s NDJSON, plain or ``.gz``). Records come
oldest first: in Stream order, or file by file in name order (names sort by
the time a file was opened; with several workers their files interleave, and
each file is in the order its process served). Compressed (``.gz``) and
plain files are read alike; a file being compressed is read once, from the
plain copy. A line that is not a whole record (the end of a file a crashed
process left, a line still being written) is skipped.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .decision_log_files import COMPRESSED, PREFIX, SUFFIX
from .decision_log_stream import FIELD, stream_key
from .decision_record import DecisionRecord
from .redis_urls import is_redis_url

log = logging.getLogger("tailor.runtime")

PAGE = 1000  # Stream entries per XRANGE
POLL = 0.5  # seconds between looks for new records when following files
BLOCK_MS = 1000  # how long one XREAD waits for new records when following a Stream
Source = str | Path  # a Redis URL, a directory of log files, or an export file


def read_records(source: Source, since: float | None = None, until: float | None = None) -> Iterator[DecisionRecord]:
    """Every record at ``source`` decided at or after ``since`` and before ``until`` (epoch seconds), oldest first."""
    for record in _all(source):
        if (since is None or record.at >= since) and (until is None or record.at < until):
            yield record


def find_record(source: Source, decision_id: str) -> DecisionRecord | None:
    """The record of decision ``decision_id``, or None when the log does not hold it."""
    needle = decision_id.encode()
    if isinstance(source, str) and is_redis_url(source):
        return next((r for r in _stream_records(source) if r.decision_id == decision_id), None)
    for path in log_files(Path(source)):
        for line in _lines(path):
            if needle in line and (record := _record(line, path)) is not None and record.decision_id == decision_id:
                return record
    return None


def tail(source: Source, count: int, *, follow: bool = False) -> Iterator[DecisionRecord]:
    """The last ``count`` records, oldest first; with ``follow``, then every new record, until the caller stops."""
    if isinstance(source, str) and is_redis_url(source):
        yield from _StreamTail(source).run(count, follow)
    else:
        yield from _FileTail(Path(source)).run(count, follow)


def log_files(directory: Path) -> list[Path]:
    """The log's files in order, each record's file once: a plain file rather than its compressed copy."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found: dict[str, Path] = {}
    for path in directory.iterdir():
        name = path.name
        if not name.startswith(PREFIX):
            continue
        if name.endswith(SUFFIX):
            found[name] = path
        elif name.endswith(COMPRESSED):
            found.setdefault(name.removesuffix(".gz"), path)
    return [found[name] for name in sorted(found)]


def _all(source: Source) -> Iterator[DecisionRecord]:
    if isinstance(source, str) and is_redis_url(source):
        yield from _stream_records(source)
        return
    given = Path(source)
    for path in [given] if given.is_file() else log_files(given):
        for line in _lines(path):
            record = _record(line, path)
            if record is not None:
                yield record


# --- files ---


def _lines(path: Path, skip: int = 0) -> Iterator[bytes]:
    """The whole lines of a log file (decompressed), after its first ``skip`` bytes."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            if skip:
                file.seek(skip)
            for line in file:
                if line.endswith(b"\n"):
                    yield line
    except FileNotFoundError:  # compressed meanwhile: the caller finds the .gz on its next look
        return


def _complete_size(path: Path, chunk: int = 1 << 16) -> int:
    """The length of a plain file up to its last newline: what a reader may take of it now."""
    with path.open("rb") as file:
        end = file.seek(0, 2)
        while end > 0:
            start = max(0, end - chunk)
            file.seek(start)
            found = file.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0


def _record(line: bytes, where: object) -> DecisionRecord | None:
    try:
        return DecisionRecord.from_dict(orjson.loads(line))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s: skipped a line that is not a decision record: %r", where, line[:80])
        return None


@dataclass
class _FileTail:
    """Follows a directory: how many bytes of each file (decompressed) were read already."""

    directory: Path

    def __post_init__(self) -> None:
        self.read: dict[str, int] = {}  # by the plain file's name
        self.done: set[str] = set()  # compressed: they do not grow

    def run(self, count: int, follow: bool) -> Iterator[DecisionRecord]:
        """The newest files are read until ``count`` records are found; older ones are only marked read."""
        newest: list[list[DecisionRecord]] = []
        found = 0
        for path in reversed(log_files(self.directory)):
            if found < count:
                records = list(self._new(path))
                newest.append(records)
                found += len(records)
            elif path.name.endswith(".gz"):
                self.done.add(path.name.removesuffix(".gz"))
            else:
                self.read[path.name] = _complete_size(path)
        last: deque[DecisionRecord] = deque(maxlen=max(count, 0))
        for records in reversed(newest):
            last.extend(records)
        yield from last
        while follow:
            time.sleep(POLL)
            for path in log_files(self.directory):
                yield from self._new(path)

    def _new(self, path: Path) -> Iterator[DecisionRecord]:
        name = path.name.removesuffix(".gz")
        if name in self.done:
            return
        offset = self.read.get(name, 0)
        for line in _lines(path, offset):
            offset += len(line)
            record = _record(line, path)
            if record is not None:
                yield record
        self.read[name] = offset
        if path.name.endswith(".gz"):
            self.done.add(name)


# --- the Redis Stream ---


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)


def _entry_record(fields: dict[bytes, bytes], url: str) -> DecisionRecord | None:
    line = fields.get(FIELD.encode())
    return _record(line, url) if line is not None else None


def _stream_records(url: str) -> Iterator[DecisionRecord]:
    client, key = _client(url), stream_key()
    try:
        start = "-"
        while True:
            entries = client.xrange(key, start, "+", count=PAGE)
            for _, fields in entries:
                record = _entry_record(fields, url)
                if record is not None:
                    yield record
            if len(entries) < PAGE:
                return
            start = "(" + entries[-1][0].decode()
    finally:
        client.close()


@dataclass
class _StreamTail:
    url: str

    def run(self, count: int, follow: bool) -> Iterator[DecisionRecord]:
        client, key = _client(self.url), stream_key()
        try:
            entries = client.xrevrange(key, "+", "-", count=count) if count > 0 else []
            last = entries[0][0] if entries else None
            for _, fields in reversed(entries):
                if (record := _entry_record(fields, self.url)) is not None:
                    yield record
            if not follow:
                return
            if last is None:
                newest = client.xrevrange(key, "+", "-", count=1)
                last = newest[0][0] if newest else b"0-0"
            while True:
                for _, batch in client.xread({key: last}, count=PAGE, block=BLOCK_MS) or []:
                    for entry_id, fields in batch:
                        last = entry_id
                        if (record := _entry_record(fields, self.url)) is not None:
                            yield record
        finally:
            client.close()
