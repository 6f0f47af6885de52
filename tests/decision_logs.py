"""Decision logs for the rule-health tests: decisions served by a real service, written as NDJSON (some gzipped)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tailor.runtime.decision_record import DecisionRecord
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService


@dataclass(frozen=True)
class Request:
    user_id: str
    context: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] | None = None
    slots: tuple[str, ...] | None = None


def serve(path: Path, requests: Sequence[Request], at: float) -> list[DecisionRecord]:
    """The records of ``requests`` decided by a ``DecisionService`` on the rules at ``path`` (an empty store)."""
    records: list[DecisionRecord] = []

    async def run() -> None:
        service = DecisionService(path, MemoryStore())
        service.install(service.prepare())
        service.listen(records.append)
        for request in requests:
            decided = await service.decide(request.user_id, request.context, request.slots, request.features, at)
            service.publish(decided, service.new_decision_id(), request.user_id, request.context, at)

    asyncio.run(run())
    return records


ROTATED = "decisions-20260101T000000Z-100.ndjson.gz"  # the file sink's names: opened time, then pid
LIVE = "decisions-20260102T000000Z-100.ndjson"


def write_log(directory: Path, records: Sequence[DecisionRecord | dict[str, Any]], rotated: int = 0) -> None:
    """The first ``rotated`` records in a gzipped, rotated file, the rest in the live one, one JSON object a line,
    named as the server's file sink names them."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [orjson.dumps(r.to_dict() if isinstance(r, DecisionRecord) else r) + b"\n" for r in records]
    with gzip.open(directory / ROTATED, "wb") as old:
        old.write(b"".join(lines[:rotated]))
    (directory / LIVE).write_bytes(b"".join(lines[rotated:]))


def capped(record: DecisionRecord, slot: str, default: str) -> dict[str, Any]:
    """``record`` as if its winner in ``slot`` had been stopped by its cap and the slot's default shown."""
    data = record.to_dict()
    data["slots"][slot] = {"content": default, "rule": "default", "priority": None}
    return data
