"""Decision records read back from a decision log directory: NDJSON files, rotated ones gzipped.

Each line is one ``DecisionRecord.to_dict()``. Files are read in name order,
so rotated files (``decisions.ndjson.1.gz``...) and the live one are all
read; records are filtered by their time, not by file. A line that is not a
record (the live file's last line, half written; a corrupt file) is skipped
and said in ``problems``, so one bad line never hides a week of decisions.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson

from .decision_record import DecisionRecord

LOG_SUFFIXES = (".ndjson", ".jsonl")  # each optionally followed by .gz or a rotation number


def log_files(source: Path) -> list[Path]:
    """The log files at ``source``: the file itself, or every log file under the directory, in name order."""
    if source.is_file():
        return [source]
    return sorted(path for path in source.rglob("*") if path.is_file() and _is_log(path.name))


def _is_log(name: str) -> bool:
    stem = name.removesuffix(".gz")
    while stem.rpartition(".")[2].isdigit():  # decisions.ndjson.3 or decisions.ndjson.3.gz
        stem = stem.rpartition(".")[0]
    return stem.endswith(LOG_SUFFIXES)


def read_records(
    source: Path,
    since: float | None = None,
    until: float | None = None,
    problems: list[str] | None = None,
) -> Iterator[DecisionRecord]:
    """The records at ``source`` decided in [since, until), in file order; bad lines go to ``problems``."""
    for path in log_files(source):
        opener = gzip.open if path.name.endswith(".gz") else open
        number = 0
        try:
            with opener(path, "rb") as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        record = DecisionRecord.from_dict(orjson.loads(line))
                        if isinstance(record.at, bool) or not isinstance(record.at, int | float):
                            raise ValueError("no time")
                    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
                        if problems is not None:
                            problems.append(f"{path}:{number}: not a decision record")
                        continue
                    if (since is None or record.at >= since) and (until is None or record.at < until):
                        yield record
        except (OSError, EOFError, zlib.error) as exc:
            if problems is not None:
                problems.append(f"{path}:{number + 1}: cannot be read ({exc})")
