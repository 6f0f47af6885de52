"""Log files rewritten without an erased user: by the next rotation, never under a process still writing them."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson

from tailor.runtime.decision_log_erasure import PENDING, pending_files
from tailor.runtime.decision_log_files import FileSink

GONE, KEPT = "gone-3c1f", "kept-8e2d"


def line(user: str, index: int) -> bytes:
    return orjson.dumps({"decision_id": f"{user}-{index}", "user_id": user}, option=orjson.OPT_APPEND_NEWLINE)


def users_in(directory: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(directory.glob("decisions-*")):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        found[path.name] = [orjson.loads(text)["user_id"] for text in data.splitlines()]
    return found


def test_two_writers_rewrite_every_file_but_the_one_still_being_written(tmp_path: Path) -> None:
    async def run() -> None:
        first, second = FileSink(tmp_path, max_bytes=200), FileSink(tmp_path, max_bytes=500)
        await first.write([line(GONE, 0), line(KEPT, 0), line(GONE, 1), line(KEPT, 1)])  # fills up: rotated
        await first.close()  # waits for the compression
        await second.write([line(GONE, 2), line(KEPT, 2)])  # still open: its process holds it
        erased = await first.erase(GONE)
        assert (erased.sink, erased.pending_files) == ("files", 2)
        assert pending_files(tmp_path) == 2
        assert GONE not in (tmp_path / PENDING).read_text()  # a digest, not the id

        third = FileSink(tmp_path, max_bytes=100)
        await third.write([line(KEPT, 3), line(KEPT, 4)])  # a rotation elsewhere applies what it can
        await third.close()
        files = users_in(tmp_path)
        compressed = [users for name, users in files.items() if name.endswith(".gz") and KEPT in users]
        assert [KEPT, KEPT] in compressed  # the first file, rewritten
        assert [users for users in files.values() if GONE in users] == [[GONE, KEPT]]  # the second's, still open
        assert pending_files(tmp_path) == 1

        await second.write([line(KEPT, 5)] * 40)  # its own rotation: compressed without the user
        await second.close()
        assert not any(GONE in users for users in users_in(tmp_path).values())
        assert not (tmp_path / PENDING).exists()
        kept = sorted(user for users in users_in(tmp_path).values() for user in users)
        assert kept == [KEPT] * 45

    asyncio.run(run())
