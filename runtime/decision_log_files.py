"""The decision log's file sink: newline-delimited JSON, rotated by size, compressed on rotation.

Each server process writes a file of its own, named for the moment it was
opened and the process (``decisions-20261129T151825.123456Z-4242.ndjson``),
so names sort by time and workers never share a file. A batch is one write
of whole lines. Once a file reaches ``max_bytes`` the next batch opens a new
one, and the full file is compressed beside itself in a thread: first to
``<name>.gz.tmp``, renamed to ``<name>.gz`` when complete, and only then is
the plain file removed. At every moment one complete copy of each record
exists under a name a reader knows (``decision_log_reader`` prefers the
plain file when both are there). The compression is
``decision_log_erasure.rotated``, which also applies the erasures of users
waiting for a rotation.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from .daemon_thread import run_in_thread
from .decision_log import LogErasure

log = logging.getLogger("tailor.runtime")

PREFIX = "decisions-"
SUFFIX = ".ndjson"
COMPRESSED = SUFFIX + ".gz"
PARTIAL = ".tmp"  # a compressed copy being written: readers skip it


def file_name(now: datetime, pid: int) -> str:
    return f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{pid}{SUFFIX}"


class FileSink:
    """Appends batches to the current file of ``directory``, rotating it past ``max_bytes``."""

    kind = "files"

    def __init__(self, directory: Path, *, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self.where = f"files in {directory}"
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self._compressing: set[asyncio.Task[None]] = set()

    async def write(self, lines: Sequence[bytes]) -> None:
        full = await run_in_thread(lambda: self._append(b"".join(lines)), name="decision-log-write")
        if full is not None:
            task = asyncio.get_running_loop().create_task(self._compress(full))
            self._compressing.add(task)
            task.add_done_callback(self._compressing.discard)

    def _append(self, data: bytes) -> Path | None:
        """Write ``data`` (whole lines) to the current file; the file just filled up, if it did."""
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / file_name(datetime.now(UTC), os.getpid())
            self._file = self._path.open("ab")
            # Held while the file is written: a process applying an erasure leaves it to this one.
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            self._size = self._file.tell()
        try:
            self._file.write(data)
            self._file.flush()
        except OSError:  # a full disk: a torn line must end its file, never run into the next record
            self._rotate()
            raise
        self._size += len(data)
        if self._size < self.max_bytes:
            return None
        return self._rotate()

    def _rotate(self) -> Path | None:
        file, path, self._file, self._path = self._file, self._path, None, None
        if file is not None:
            file.close()
        return path

    async def _compress(self, path: Path) -> None:
        from .decision_log_erasure import rotated

        try:
            await run_in_thread(lambda: rotated(path), name="decision-log-gzip")
        except OSError as exc:  # the plain file is still there, and still read
            log.warning("decision log: cannot compress %s (%s); it stays uncompressed", path, exc)

    async def erase(self, user_id: str) -> LogErasure:
        """List the user for rewriting at the next rotation of any process's file (``decision_log_erasure``)."""
        from .decision_log_erasure import request_erasure

        files = await run_in_thread(lambda: request_erasure(self.directory, user_id), name="decision-log-erase")
        return LogErasure("files", 0, files)

    async def records_of(self, user_id: str) -> tuple[list[Any], bool]:
        from .decision_log_erasure import file_records

        return await run_in_thread(lambda: file_records(self.directory, user_id), name="decision-log-export")

    async def close(self) -> None:
        """Close the current file (it stays plain) and wait for compressions under way."""
        await run_in_thread(self._rotate, name="decision-log-close")
        if self._compressing:
            await asyncio.gather(*self._compressing, return_exceptions=True)
