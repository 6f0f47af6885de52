"""The fleet: which versions the server processes sharing one store serve, and whether they agree.

Each server process writes a heartbeat (a ``Member``) into the store every
``DEFAULT_HEARTBEAT`` seconds, and at once whenever the version it serves
changes (``Heartbeat``, a task on the event loop: a decision never waits for
it). ``GET /v1/ruleset`` on any process reads every heartbeat younger than
``STALE_BEATS`` of its process's intervals and says whether the fleet ``agrees``: every process
serves the same ruleset version with the same model files. During a rollout
it disagrees until the last process has reloaded. With the memory store the
fleet is this process alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import DecisionService

log = logging.getLogger("tailor.runtime")

DEFAULT_HEARTBEAT = 5.0  # seconds between a process's heartbeats
STALE_BEATS = 3  # a heartbeat older than this many of its process's intervals is a process that is gone
FLEET_TTL = 86400.0  # the heartbeats of a fleet that stopped altogether are gone a day later


def process_name(token: str) -> str:
    """This process, as the fleet names it: the host (the pod's name on Kubernetes), the pid and a token
    of the process (a restarted pod may reuse the pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{token[:6]}"


@dataclass(frozen=True, slots=True)
class Member:
    """One server process's heartbeat: what it serves, and when it said so."""

    process: str = field(metadata={"doc": "host:pid:token of the server process"})
    ruleset: str
    version: str = field(metadata={"doc": "the ruleset version it serves"})
    models: dict[str, str] = field(metadata={"doc": "the version (content hash) of each model it serves, by name"})
    seen_at: datetime = field(metadata={"doc": "when the process last said so"})
    heartbeat: float = field(metadata={"doc": "seconds between its heartbeats: three missed, and it is gone"})

    def gone(self, now: float) -> bool:
        """Whether the process missed ``STALE_BEATS`` heartbeats by ``now`` (epoch seconds), by its own interval."""
        return self.seen_at.timestamp() < now - STALE_BEATS * self.heartbeat

    @property
    def serves(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What must be the same on every process for the fleet to agree."""
        return self.ruleset, self.version, tuple(sorted(self.models.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "ruleset": self.ruleset,
            "version": self.version,
            "models": dict(self.models),
            "seen_at": self.seen_at.isoformat(),
            "heartbeat": self.heartbeat,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        return cls(
            data["process"],
            data["ruleset"],
            data["version"],
            dict(data["models"]),
            datetime.fromisoformat(data["seen_at"]),
            float(data["heartbeat"]),
        )

    @classmethod
    def of(cls, service: DecisionService, heartbeat: float) -> Member | None:
        """This process's heartbeat now, sent every ``heartbeat`` seconds; None before a version is served."""
        served = service.current
        if served is None:
            return None
        models = {name: model.version for name, model in served.ruleset.models.items()}
        return cls(service.process, served.ruleset.name, served.version, models, datetime.now(UTC), heartbeat)


@dataclass(frozen=True, slots=True)
class Fleet:
    """The server processes whose heartbeats the store holds, and whether they serve the same versions."""

    agrees: bool = field(metadata={"doc": "every process serves the same ruleset version and model files"})
    processes: tuple[Member, ...] = field(metadata={"doc": "the live processes, this one first"})

    @classmethod
    def of(cls, me: Member, others: list[Member]) -> Fleet:
        """``me`` (as it is now, not as its last heartbeat said) and the others' fresh heartbeats."""
        fresh = sorted((m for m in others if m.process != me.process), key=lambda m: m.process)
        members = (me, *fresh)
        return cls(len({m.serves for m in members}) == 1, members)

    def to_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees, "processes": [m.to_dict() for m in self.processes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fleet:
        return cls(data["agrees"], tuple(Member.from_dict(m) for m in data["processes"]))


class Heartbeat:
    """Writes this process's ``Member`` to the store: every ``interval`` seconds, and on each version change.

    A failing store is logged once until it answers again; the next beat retries.
    """

    def __init__(self, service: DecisionService, interval: float = DEFAULT_HEARTBEAT):
        self.service = service
        self.interval = interval
        self.beats = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.service.on_change(self._changed.set)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        me = Member.of(self.service, self.interval)
        if me is not None:
            try:  # a clean stop leaves the fleet at once, not after STALE_BEATS intervals
                await asyncio.wait_for(self.service.store.leave(me.process), 1.0)
            except Exception:
                log.debug("heartbeat: could not leave the fleet", exc_info=True)

    async def beat(self) -> None:
        me = Member.of(self.service, self.interval)
        if me is None:
            return
        try:
            await asyncio.wait_for(self.service.store.beat(me), self.interval)
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.warning("heartbeat could not be written (%s: %s)", type(exc).__name__, exc)
            return
        self.beats += 1
        if self._failing:
            self._failing = False
            log.info("heartbeats are written again")

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)


async def read_fleet(service: DecisionService, heartbeat: float, timeout: float = 1.0) -> Fleet | None:
    """The fleet as the store's heartbeats say; None before a version is served or when the store fails."""
    me = Member.of(service, heartbeat)
    if me is None:
        return None
    try:
        members = await asyncio.wait_for(service.store.fleet(time.time()), timeout)
    except Exception as exc:
        log.debug("the fleet could not be read (%s)", exc)
        return None
    return Fleet.of(me, members)


class MemoryFleet:
    """The heartbeats of a store in this process's memory: the fleet of one process, as the memory store has."""

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}

    def beat(self, member: Member) -> None:
        self._members[member.process] = member

    def leave(self, process: str) -> None:
        self._members.pop(process, None)

    def fleet(self, now: float) -> list[Member]:
        stale = [name for name, m in self._members.items() if m.gone(now)]
        for name in stale:
            del self._members[name]
        return list(self._members.values())
