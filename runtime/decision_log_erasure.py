"""Erasing a user from the decision log, and finding their records in it.

The Redis Stream is rewritten at once: its entries are read in pages and the
user's are deleted (``XDEL``). Log files are not: a file being written
belongs to its process, and rewriting gigabytes of compressed files inside
a request would hold it for minutes. An erasure of a user is written to the
directory's pending list instead (``pending-erasures.json``: a digest of the
user id, never the id, and the names of the files present then), and the
next rotation of any server process writing to the directory applies it:
the file it rotates is compressed without the user's records, and every
other listed file that no process is writing (a compressed file, or one a
stopped process left) is rewritten without them. A file is written under a
temporary name and renamed over the old one, so a reader sees the old
records or the new, never a torn file. A listed file is done once rewritten
(or gone); an erasure is done, and leaves the list, once all its files are.

Processes agree through ``flock``: a writer holds an exclusive lock on the
file it appends to, a rewrite or compression of a plain file takes the same
lock, and the pending list is read and written under ``.erasures.lock``.
Files opened after the erasure hold only new data, and are not listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .decision_log_files import COMPRESSED, PARTIAL, PREFIX, SUFFIX

PENDING = "pending-erasures.json"
LOCK = ".erasures.lock"
PAGE = 1000  # Stream entries per XRANGE
MAX_EXPORTED = 10_000  # decision records an export returns, at most: the newest


def user_digest(user_id: str) -> str:
    """What the pending list keeps of a user id: enough to recognize their records, not to read the id."""
    return hashlib.blake2b(user_id.encode(), digest_size=16).hexdigest()


def needle(user_id: str) -> bytes:
    """The user id as a record's JSON spells it: a line without it is not the user's (a cheap first test)."""
    return orjson.dumps(user_id)


def record_user(line: bytes) -> str | None:
    """The ``user_id`` of a record's line; None for a line that is not a whole record."""
    try:
        user = orjson.loads(line).get("user_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return user if isinstance(user, str) else None


# --- the Redis Stream ---


async def erase_from_stream(client: Any, key: str, user_id: str) -> int:
    """Delete the user's entries from the Stream, a page at a time; how many were deleted."""
    wanted = needle(user_id)
    deleted = 0
    start = "-"
    while True:
        entries = await client.xrange(key, start, "+", count=PAGE)
        doomed = [entry_id for entry_id, fields in entries if _entry_is_users(fields, wanted, user_id)]
        if doomed:
            deleted += int(await client.xdel(key, *doomed))
        if len(entries) < PAGE:
            return deleted
        start = "(" + _text(entries[-1][0])


async def stream_records(client: Any, key: str, user_id: str, limit: int = MAX_EXPORTED) -> tuple[list[Any], bool]:
    """The user's records in the Stream (parsed JSON), oldest first, at most the newest ``limit``; and
    whether older ones were left out."""
    wanted = needle(user_id)
    found: list[Any] = []
    start = "-"
    while True:
        entries = await client.xrange(key, start, "+", count=PAGE)
        for _, fields in entries:
            line = _entry_line(fields)
            if line is not None and wanted in line and record_user(line) == user_id:
                found.append(orjson.loads(line))
        if len(entries) < PAGE:
            break
        start = "(" + _text(entries[-1][0])
    return found[-limit:], len(found) > limit


def _entry_line(fields: dict[Any, Any]) -> bytes | None:
    for name, value in fields.items():
        if _text(name) == "record":
            return value if isinstance(value, bytes) else value.encode()
    return None


def _entry_is_users(fields: dict[Any, Any], wanted: bytes, user_id: str) -> bool:
    line = _entry_line(fields)
    return line is not None and wanted in line and record_user(line) == user_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- files ---


def log_names(directory: Path) -> list[str]:
    """The plain names of the log's files (a compressed file by the name it had before)."""
    if not directory.is_dir():
        return []
    names = set()
    for path in directory.iterdir():
        name = path.name
        if name.startswith(PREFIX) and (name.endswith(SUFFIX) or name.endswith(COMPRESSED)):
            names.add(name.removesuffix(".gz"))
    return sorted(names)


@dataclass
class Pending:
    """One erasure waiting for the files present when it was asked for."""

    user: str  # user_digest
    requested: float
    files: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "requested": self.requested, "files": self.files}


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool = True, create: bool = False) -> Iterator[IO[bytes] | None]:
    """An exclusive ``flock`` on ``path``; None when it is gone (unless ``create``), or when ``wait`` is
    off and another process holds it."""
    try:
        file = path.open("ab" if create else "rb")
    except FileNotFoundError:
        yield None
        return
    with file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield file


def _read_pending(directory: Path) -> list[Pending]:
    try:
        data = json.loads((directory / PENDING).read_text())
    except FileNotFoundError:
        return []
    return [Pending(entry["user"], entry["requested"], list(entry["files"])) for entry in data["erasures"]]


def _write_pending(directory: Path, pending: list[Pending]) -> None:
    path = directory / PENDING
    if not pending:
        path.unlink(missing_ok=True)
        return
    partial = path.with_name(path.name + PARTIAL)
    partial.write_text(json.dumps({"erasures": [entry.to_json() for entry in pending]}, indent=1))
    os.replace(partial, path)


def request_erasure(directory: Path, user_id: str) -> int:
    """Add the user to the pending list, for every log file present now; how many files that is."""
    directory.mkdir(parents=True, exist_ok=True)
    files = log_names(directory)
    with _locked(directory / LOCK, create=True):
        pending = _read_pending(directory)
        digest = user_digest(user_id)
        pending = [entry for entry in pending if entry.user != digest]  # asked again: the newer list holds all
        if files:
            pending.append(Pending(digest, time.time(), files))
        _write_pending(directory, pending)
    return len(files)


def pending_files(directory: Path) -> int:
    """How many files are still to be rewritten for some erasure."""
    return len({name for entry in _read_pending(directory) for name in entry.files})


def lines_without(lines: Iterable[bytes], users: set[str]) -> Iterator[bytes]:
    """``lines`` less the records of the users whose digests are ``users``, and less lines that are not records."""
    for line in lines:
        user = record_user(line)
        if user is not None and user_digest(user) not in users:
            yield line


def _whole_lines(path: Path) -> Iterator[bytes]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as file:
        for line in file:
            if line.endswith(b"\n"):
                yield line


def compress_without(path: Path, users: set[str]) -> Path:
    """``path`` gzip-compressed beside itself without the records of ``users`` (digests), then removed."""
    done = path.with_name(path.name + ".gz")
    partial = done.with_name(done.name + PARTIAL)
    with gzip.open(partial, "wb", compresslevel=6) as target:
        for line in lines_without(_whole_lines(path), users) if users else _whole_lines(path):
            target.write(line)
    os.replace(partial, done)
    path.unlink()
    return done


def _rewrite(path: Path, users: set[str]) -> None:
    """A compressed file rewritten without the records of ``users``: untouched when it holds none of them."""
    if not any(user_digest(user) in users for line in _whole_lines(path) if (user := record_user(line))):
        return
    partial = path.with_name(path.name + PARTIAL)
    with gzip.open(partial, "wb", compresslevel=6) as target:
        for line in lines_without(_whole_lines(path), users):
            target.write(line)
    os.replace(partial, path)


def rotated(path: Path) -> None:
    """What a sink does with the file it just rotated: compress it, applying pending erasures (in a thread).

    Without pending erasures this is the plain compression of ``decision_log_files``.
    """
    directory = path.parent
    if not (directory / PENDING).exists():
        with _locked(path) as held:  # a process applying an erasure may be rewriting it: wait for it
            if held is not None and path.exists():
                compress_without(path, set())
        return
    with _locked(directory / LOCK, create=True):
        pending = _read_pending(directory)
        name = path.name
        with _locked(path) as held:
            if held is not None and path.exists():
                compress_without(path, {entry.user for entry in pending if name in entry.files})
        for entry in pending:
            entry.files = [listed for listed in entry.files if listed != name]
        _apply(directory, pending)


def _apply(directory: Path, pending: list[Pending]) -> None:
    """Rewrite every listed file no process is writing; keep the rest listed. Under the list's lock."""
    done: set[str] = set()
    for name in sorted({name for entry in pending for name in entry.files}):
        users = {entry.user for entry in pending if name in entry.files}
        plain, compressed = directory / name, directory / (name + ".gz")
        if plain.exists():
            with _locked(plain, wait=False) as held:
                if held is None:
                    continue  # a process is writing it: its own rotation applies the erasure
                if plain.exists():
                    compress_without(plain, users)
                    done.add(name)
                    continue
        if compressed.exists():
            _rewrite(compressed, users)
        done.add(name)
    for entry in pending:
        entry.files = [name for name in entry.files if name not in done]
    _write_pending(directory, [entry for entry in pending if entry.files])


def file_records(directory: Path, user_id: str, limit: int = MAX_EXPORTED) -> tuple[list[Any], bool]:
    """The user's records in the log files (parsed JSON), oldest first, at most the newest ``limit``; and
    whether older ones were left out. Each file is read once (the plain copy of one being compressed)."""
    from .decision_log_reader import log_files

    wanted = needle(user_id)
    found: list[Any] = []
    if not directory.is_dir():
        return found, False
    for path in log_files(directory):
        with contextlib.suppress(FileNotFoundError):  # compressed meanwhile: its records are in the .gz
            for line in _whole_lines(path):
                if wanted in line and record_user(line) == user_id:
                    found.append(orjson.loads(line))
    return found[-limit:], len(found) > limit
