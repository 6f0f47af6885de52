"""Hot reload: watch the rule files, recompile off the request path, swap on success.

Two tasks cooperate. The watcher (``watchfiles.awatch``, which already groups
a burst of saves into one batch) only flags that a reload is wanted; the
worker waits for the flag, clears it and reloads. A change that arrives
while a reload runs sets the flag again, so the worker runs exactly once
more, on the final state: a burst never queues a reload per save.

Compiling runs in a thread (``asyncio.to_thread``) with the service's shared
``ParseCache``, so requests keep being served meanwhile and only the files
whose bytes changed are parsed again. A version that fails to compile is
never served: the old one stays, and ``last_error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from watchfiles import Change, awatch

from tailor.dsl.diagnostics import RulesError, error
from tailor.dsl.loader import RULES_SUFFIX, display_name

from .service import DecisionService

log = logging.getLogger("tailor.runtime")

MODEL_SUFFIX = ".onnx"

STEP_MS = 50  # a batch is yielded once no change arrived for this long
DEBOUNCE_MS = 1600  # ... or after this long, during a continuous stream of changes


class Reloader:
    """Keeps a service's ruleset in step with the files on disk."""

    def __init__(self, service: DecisionService, *, force_polling: bool | None = None):
        self.service = service
        self._force_polling = force_polling
        self._wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        root = service.path.resolve()
        # A single file is watched through its directory: editors often save by
        # writing a new file and renaming it over the old one.
        self._file = root if root.is_file() else None
        self._watched = root.parent if root.is_file() else root
        self.attempts = 0  # reloads run so far, whatever their outcome
        self._running = False

    def start(self, *, watch: bool = True) -> None:
        """Run the worker (and, with ``watch``, the file watcher) in the running loop."""
        self._tasks = [asyncio.create_task(self._work(), name="tailor-reload")]
        if watch:
            self._tasks.append(asyncio.create_task(self._watch(), name="tailor-watch"))

    @property
    def busy(self) -> bool:
        """A reload is running or wanted."""
        return self._running or self._wanted.is_set()

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def request(self) -> None:
        """Ask for a reload; any number of requests before the worker wakes make one."""
        self._wanted.set()

    def _relevant(self, change: Change, path: str) -> bool:
        # Model files under the watched folder reload like rules: validated first,
        # and a bad file keeps the old version (and its model) serving.
        if path.endswith(MODEL_SUFFIX):
            return True
        if self._file is not None:
            return Path(path) == self._file
        return path.endswith(RULES_SUFFIX) or Path(path).is_dir()

    async def _watch(self) -> None:
        async for _changes in awatch(
            self._watched,
            watch_filter=self._relevant,
            step=STEP_MS,
            debounce=DEBOUNCE_MS,
            stop_event=self._stop,
            force_polling=self._force_polling,
        ):
            self.request()

    async def _work(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            self._running = True
            try:
                await self.reload()
            finally:
                self._running = False

    async def reload(self) -> str:
        """Recompile now; returns the outcome: ok, unchanged or failed."""
        service = self.service
        reloads = service.metrics.reloads
        self.attempts += 1
        started = time.perf_counter()
        try:
            served = await asyncio.to_thread(service.prepare)
        except RulesError as exc:
            service.failed(exc.diagnostics)
            reloads["failed"].inc()
            return "failed"
        except Exception as exc:  # a compiler bug must not stop hot reload for good
            log.exception("ruleset reload crashed")
            service.failed([error(f"the compiler failed: {exc!r}", None, file_name=display_name(service.path))])
            reloads["failed"].inc()
            return "failed"
        if not service.install(served):
            reloads["unchanged"].inc()
            return "unchanged"
        reloads["ok"].inc()
        log.info(
            "serving ruleset %s %s (%d rules), compiled in %.0f ms",
            served.ruleset.name,
            served.version,
            len(served.rules),
            (time.perf_counter() - started) * 1000,
        )
        return "ok"
