"""Erasing and exporting one user's data: ``DELETE /v1/users/{id}`` and ``GET /v1/users/{id}/export``.

An erasure, in order: this process drops what it holds of the user in memory
(cached predictions; decisions, exposures and log records queued for
writing) and waits for the writes under way; every other server process on
the same Redis is told to do the same (``erasure_notices``); the store
deletes everything it keeps about the user (``FeatureStore.erase``); the
decision log deletes the user's records from its Redis Stream, or lists
them for its files' next rotation (``decision_log_erasure``). The answer
says what was deleted and what is still to be. docs/privacy.md states the
guarantee and its limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .attribution import Attribution
from .decision_log import DecisionLog, LogErasure
from .decision_record import DecisionRecord
from .erasure_notices import ErasureNotices
from .service import WRITE_TIMEOUT, DecisionService, StoreUnavailable
from .user_data import StoreErasure, UserData

ERASE_TIMEOUT = 60.0  # seconds an erasure may take: a Stream of 100,000 records is scanned in a few


@dataclass(frozen=True, slots=True)
class UserErasure:
    """What erasing a user deleted now, and what is still to be deleted (log files)."""

    user_id: str
    store: StoreErasure
    decision_log: LogErasure
    processes_notified: int = field(
        metadata={"doc": "server processes that dropped the user's cached predictions and queued writes, this one too"}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "store": self.store.to_dict(),
            "decision_log": self.decision_log.to_dict(),
            "processes_notified": self.processes_notified,
        }


@dataclass(frozen=True, slots=True)
class UserExport:
    """Everything stored about a user: the store's data and the decision log's records."""

    user_id: str
    exported_at: float = field(metadata={"doc": "epoch seconds"})
    store: UserData
    decisions: tuple[DecisionRecord, ...] = field(
        metadata={"doc": "the user's records in the decision log, oldest first (the newest 10,000 at most)"}
    )
    decision_log: str = field(metadata={"doc": 'where the records were read: "stream", "files", or "off"'})
    decisions_truncated: bool = field(metadata={"doc": "older records exist beyond those listed"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "exported_at": self.exported_at,
            "store": self.store.to_dict(),
            "decisions": [record.to_dict() for record in self.decisions],
            "decision_log": self.decision_log,
            "decisions_truncated": self.decisions_truncated,
        }


class Erasure:
    """One server process's part in erasures and exports."""

    def __init__(self, service: DecisionService, attribution: Attribution, decision_log: DecisionLog | None):
        self.service = service
        self.attribution = attribution
        self.decision_log = decision_log
        self.forgetters: list[Callable[[str], object]] = []  # more of what the process holds per user
        store = service.store
        url, prefix = getattr(store, "url", None), getattr(store, "prefix", None)
        # Only Redis is shared between processes; a memory store's server is one process.
        self.notices = ErasureNotices(url, prefix, self.heard) if url and prefix else None

    def start(self) -> None:
        if self.notices is not None:
            self.notices.start()

    async def close(self) -> None:
        if self.notices is not None:
            await self.notices.close()

    def forget(self, user_id: str) -> None:
        """Drop what this process holds of the user in memory."""
        self.service.forget(user_id)
        self.attribution.forget(user_id)
        if self.decision_log is not None:
            self.decision_log.forget(user_id)
        for forget in self.forgetters:
            forget(user_id)

    def heard(self, user_id: str) -> None:
        """Another process erased the user."""
        self.forget(user_id)
        self.service.metrics.erasures["notice"].inc()

    async def erase(self, user_id: str) -> UserErasure:
        """Erase the user everywhere; ``StoreUnavailable`` when the store or the log fails (retrying is safe)."""
        self.forget(user_id)
        try:
            async with asyncio.timeout(ERASE_TIMEOUT):
                await self.attribution.flush()  # a batch being written lands before the store is erased
                await self.service.exposures.flush()
                notified = await self.notices.publish(user_id) if self.notices is not None else 1
                stored = await self.service.store.erase(user_id)
                logged = (
                    await self.decision_log.erase(user_id) if self.decision_log is not None else LogErasure("off", 0, 0)
                )
        except Exception as exc:
            raise StoreUnavailable(
                f"the user could not be erased ({type(exc).__name__}: {exc}); retry: erasing again is harmless"
            ) from exc
        self.service.metrics.erasures["request"].inc()
        return UserErasure(user_id, stored, logged, notified)

    async def export(self, user_id: str) -> UserExport:
        """Everything stored about the user; ``StoreUnavailable`` when the store or the log fails."""
        try:
            async with asyncio.timeout(ERASE_TIMEOUT):
                await self.attribution.flush()  # the join records of decisions just served are in the export
                stored = await asyncio.wait_for(self.service.store.export(user_id), WRITE_TIMEOUT)
                records: list[Any] = []
                truncated = False
                if self.decision_log is not None:
                    records, truncated = await self.decision_log.records_of(user_id)
        except Exception as exc:
            raise StoreUnavailable(f"the user's data could not be read ({type(exc).__name__}: {exc})") from exc
        sink = "off" if self.decision_log is None else self.decision_log.kind
        return UserExport(
            user_id,
            time.time(),
            stored,
            tuple(DecisionRecord.from_dict(record) for record in records),
            sink,
            truncated,
        )
