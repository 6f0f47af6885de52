"""Hot reload: watch the rule files, recompile off the request path, swap on success.

Two tasks cooperate. The watcher (``watchfiles.awatch``, which already groups
a burst of saves into one batch) only flags that a reload is wanted; the
worker waits for the flag, clears it and reloads. A change that arrives
while a reload runs sets the flag again, so the worker runs exactly once
more, on the final state: a burst never queues a reload per save.

The watch follows the path, not the directory it named at startup. Every
``check_interval`` seconds a check resolves the path again: a directory
deleted and restored (a re-clone), replaced (a deploy that renames a new
directory into place) or swapped behind a symlink is watched anew, and a
file whose size, time or inode changed without an event is reloaded anyway.
A check that finds the files in step with the version served is what
``tailor_reload_check_age_seconds`` measures. A watch that ends by itself is
logged as an error and restarted, with backoff. Model files outside the
ruleset's directory are watched through their own directories.

A reload waits until the files have stopped changing for ``settle_ms`` (a
save that truncates a file and then writes it is not compiled half-way),
then compiles in the reloader's worker process (``compile_worker``), which
keeps its own ``ParseCache``: requests keep being served meanwhile at full
speed, and only the files whose bytes changed are parsed again. The whole
reload runs under ``reload_timeout``: a compile that hangs is killed and
reported. A version that fails to compile is never served: the old one
stays, and ``last_error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, awatch

from tailor.dsl.diagnostics import RulesError, error
from tailor.dsl.loader import RULES_SUFFIX, display_name, rules_files

from .compile_worker import CompileFailed, CompileRequest, CompileWorker
from .daemon_thread import run_in_thread
from .service import DecisionService

log = logging.getLogger("tailor.runtime")

MODEL_SUFFIX = ".onnx"

STEP_MS = 50  # a batch is yielded once no change arrived for this long
DEBOUNCE_MS = 1600  # ... or after this long, during a continuous stream of changes
DEFAULT_SETTLE_MS = 200.0  # a reload compiles once the files have not changed for this long
DEFAULT_RELOAD_TIMEOUT = 120.0  # seconds a whole reload may take, settling included
CHECK_INTERVAL = 2.0  # seconds between checks that the watch fits the path and the files are in step
# Seconds between looks for a path that names nothing: a directory deleted and restored is served
# within the 2 s an edit is, not a check interval plus the settle later.
GONE_POLL = 0.25
FIRST_RESTART_DELAY = 0.5  # seconds before restarting a watch that ended; doubled each time, up to
LAST_RESTART_DELAY = 30.0

#: Per file of the ruleset and per declared model file: (path, size, mtime_ns, inode), or (path,) when missing.
Snapshot = tuple[tuple[str, int, int, int] | tuple[str], ...]


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """What one watch is armed on; a check that resolves a different target re-arms it."""

    folder: Path  # the ruleset's directory, or a one-file ruleset's, watched with its subdirectories
    file: Path | None  # the one file of a one-file ruleset
    model_folders: tuple[Path, ...]  # the directories of declared model files outside ``folder``
    model_files: frozenset[Path]
    identities: tuple[tuple[int, int], ...]  # (device, inode) of ``folder`` and each model folder


class Reloader:
    """Keeps a service's ruleset in step with the files on disk."""

    def __init__(
        self,
        service: DecisionService,
        *,
        force_polling: bool | None = None,
        reload_timeout: float = DEFAULT_RELOAD_TIMEOUT,
        settle_ms: float = DEFAULT_SETTLE_MS,
        check_interval: float = CHECK_INTERVAL,
    ):
        self.service = service
        self._force_polling = force_polling
        self.reload_timeout = reload_timeout
        self.settle = settle_ms / 1000.0
        self.check_interval = check_interval
        self._kind = "file" if service.path.is_file() else "directory"
        self._wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._armed: WatchTarget | None = None
        self._gone = False  # the path was found missing, and a reload was asked to say so
        self._compiled: Snapshot | None = None  # the files as the newest reload found them
        self._restart_delay = FIRST_RESTART_DELAY
        self.attempts = 0  # reloads run so far, whatever their outcome
        self._running = False
        self.compiler = CompileWorker()

    def start(self, *, watch: bool = True) -> None:
        """Run the worker (and, with ``watch``, the file watcher) in the running loop."""
        self.compiler.start()
        self._tasks = [asyncio.create_task(self._work(), name="tailor-reload")]
        if watch:
            self._tasks.append(asyncio.create_task(self._watch(), name="tailor-watch"))
        for task in self._tasks:
            task.add_done_callback(self._ended)

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
        self.compiler.close()

    def request(self) -> None:
        """Ask for a reload; any number of requests before the worker wakes make one."""
        self._wanted.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Both tasks loop until stopped: one that ends otherwise has stopped hot reload, and must say so."""
        if self._stop.is_set() or task.cancelled():
            return
        log.error(
            "hot reload stopped: task %s ended (%r); edits are no longer served", task.get_name(), task.exception()
        )

    # --- watching ---

    async def _watch(self) -> None:
        """Keep a watch armed on what the path names now; restart one that ends by itself."""
        self._compiled = await run_in_thread(self._snapshot, name="reload check")
        while True:
            try:
                target = await run_in_thread(self._target, name="reload check")
                if target is None:
                    if not self._gone:  # the reload reports it, once its files have settled
                        self._gone = True
                        self.request()
                    await asyncio.sleep(min(self.check_interval, GONE_POLL))
                    continue
                came_back, self._gone = self._gone, False
                self._rearming(target)
                if came_back:  # the path names a directory again, perhaps with the old one's inode: load it
                    self.request()
                self._armed = target
                ended = await self._watch_until_changed(target)
            except Exception as exc:  # a bug here must not end hot reload without a word
                log.exception("watching %s failed", display_name(self.service.path))
                ended = repr(exc)
            if ended is not None:
                log.error(
                    "the watch on %s ended unexpectedly (%s); restarting it in %g s",
                    display_name(self.service.path),
                    ended,
                    self._restart_delay,
                )
                await asyncio.sleep(self._restart_delay)
                self._restart_delay = min(self._restart_delay * 2, LAST_RESTART_DELAY)

    def _rearming(self, target: WatchTarget) -> None:
        """Say why the watch moves; a new directory at the path is a change to load."""
        armed = self._armed
        if armed is None or armed == target:
            return
        if (armed.folder, armed.file, armed.identities[:1]) != (target.folder, target.file, target.identities[:1]):
            log.warning(
                "%s now names a different %s (deleted and restored, or replaced); watching it again",
                display_name(self.service.path),
                self._kind,
            )
            self.request()
        else:
            folders = ", ".join(display_name(f) for f in target.model_folders) or "none"
            log.info("the ruleset's model files changed; watching their directories: %s", folders)
            # An edit saved between the old watch's end and the new one's start is heard by neither: a
            # reload now reads the files after the new watch is armed (it settles first), so none is lost.
            self.request()

    async def _watch_until_changed(self, target: WatchTarget) -> str | None:
        """Watch ``target`` until a check finds the path names something else (None) or a watch ends (why)."""
        stop = asyncio.Event()
        watches = [asyncio.create_task(self._watch_folders((target.folder,), target, stop, recursive=True))]
        if target.model_folders:
            watches.append(
                asyncio.create_task(self._watch_folders(target.model_folders, target, stop, recursive=False))
            )
        try:
            while True:
                done, _ = await asyncio.wait(watches, timeout=self.check_interval)
                if done:
                    watch = done.pop()
                    exc = watch.exception()
                    if (exc is None and watch.result()) or _moved(target):  # left its path: the next round says so
                        return None
                    return repr(exc) if exc is not None else "it stopped without being asked to"
                if not await self._check():
                    return None
        finally:
            stop.set()  # awatch's thread returns within a step
            for watch in watches:
                watch.cancel()
            await asyncio.gather(*watches, return_exceptions=True)

    async def _watch_folders(
        self, folders: tuple[Path, ...], target: WatchTarget, stop: asyncio.Event, *, recursive: bool
    ) -> bool:
        """Ask for a reload on every batch of changes; True once the watched directory has left its path.

        A deleted directory's watch hears nothing more, and one restored at the
        path may even get the deleted one's inode, so the deletion itself ends
        the watch: the next round arms one on what the path names then.
        """
        root = str(target.folder)

        def relevant(change: Change, path: str) -> bool:
            if recursive and path == root and change == Change.deleted:
                return True
            # Model files reload like rules: validated first, and a bad file keeps the old version
            # (and its model) serving.
            if path.endswith(MODEL_SUFFIX) or Path(path) in self._model_files(target):
                return True
            if target.file is not None:
                return Path(path) == target.file
            return path.endswith(RULES_SUFFIX) or Path(path).is_dir()

        async for changes in awatch(
            *folders,
            watch_filter=relevant,
            step=STEP_MS,
            debounce=DEBOUNCE_MS,
            stop_event=stop,
            recursive=recursive,
            force_polling=self._force_polling,
        ):
            self.request()
            if recursive and ((Change.deleted, root) in changes or _moved(target)):
                return True
        return False

    def _model_files(self, target: WatchTarget) -> frozenset[Path]:
        """The declared model files as the newest check found them (a check may update them in place)."""
        armed = self._armed
        return armed.model_files if armed is not None else target.model_files

    async def _check(self) -> bool:
        """False when the path now names something else; else reload files that changed unseen, or note
        that the files are in step."""
        current, snapshot = await run_in_thread(lambda: (self._target(), self._snapshot()), name="reload check")
        armed = self._armed
        if current is None or armed is None or _watched_apart(current) != _watched_apart(armed):
            return False
        if current != armed:
            # Only the declared model files changed, all in directories the watch already covers: follow
            # them in place. Tearing the watch down would lose an edit saved while it is re-armed.
            self._armed = current
        self._restart_delay = FIRST_RESTART_DELAY
        if self.busy:
            return True
        if snapshot != self._compiled:
            log.debug("the files changed without a watch event; reloading")
            self.request()
        else:
            self.service.reload_checked()
        return True

    def _target(self) -> WatchTarget | None:
        """What the path names now (None when nothing): blocking, so it runs in a thread."""
        path = self.service.path
        try:
            if self._kind == "file":
                file = _located(path)
                if not file.is_file():
                    return None
                folder = file.parent
            else:
                file, folder = None, path.resolve(strict=True)
                if not folder.is_dir():
                    return None
            models = frozenset(_located(model) for model in self.service.model_files)
            outside = sorted({m.parent for m in models if not m.parent.is_relative_to(folder) and m.parent.is_dir()})
            identities = tuple((info.st_dev, info.st_ino) for info in map(os.stat, (folder, *outside)))
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        return WatchTarget(folder, file, tuple(outside), models, identities)

    def _snapshot(self) -> Snapshot:
        """Every ruleset file and declared model file, by size, time and inode: blocking, so in a thread."""
        path = self.service.path
        files = rules_files(path) if path.exists() else []
        entries: list[tuple[str, int, int, int] | tuple[str]] = []
        for file in (*files, *self.service.model_files):
            try:
                info = file.stat()
            except OSError:
                entries.append((str(file),))
                continue
            entries.append((str(file), info.st_size, info.st_mtime_ns, info.st_ino))
        return tuple(entries)

    # --- reloading ---

    async def _work(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            self._running = True
            try:
                await self.reload()
            except Exception:  # reload handles what it expects; anything else must not end hot reload
                log.exception("ruleset reload crashed")
            finally:
                self._running = False

    async def reload(self) -> str:
        """Recompile now, once the files settle; returns the outcome: ok, unchanged or failed."""
        service = self.service
        reloads = service.metrics.reloads
        self.attempts += 1
        started = time.perf_counter()
        name = display_name(service.path)
        try:
            async with asyncio.timeout(self.reload_timeout):
                self._compiled = await self._settled()
                if not service.path.exists():
                    service.failed([error(f"the ruleset {self._kind} is gone: {GONE}", None, file_name=name)])
                    reloads["failed"].inc()
                    return "failed"
                request = CompileRequest(service.path, service.stats, service.model_limits)
                with service.metrics.compiling.track_inprogress():
                    served = await self.compiler.compile(request, service.served)
        except TimeoutError:
            self._compiled = None  # not known to be in step: the next check asks again
            message = f"the reload took longer than {self.reload_timeout:g} s and was abandoned"
            service.failed([error(message, None, hint=TIMEOUT_HINT, file_name=name)])
            reloads["failed"].inc()
            return "failed"
        except RulesError as exc:
            service.failed(exc.diagnostics)
            service.reload_checked()  # the files were read: they are what last_error describes
            reloads["failed"].inc()
            return "failed"
        except CompileFailed as exc:  # a compiler bug, or a worker that died: the next change tries again
            self._compiled = None
            service.failed([error(f"the compiler failed: {exc}", None, file_name=name)])
            reloads["failed"].inc()
            return "failed"
        except Exception as exc:  # a bug here must not stop hot reload for good
            log.exception("ruleset reload crashed")
            self._compiled = None
            service.failed([error(f"the compiler failed: {exc!r}", None, file_name=name)])
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

    async def _settled(self) -> Snapshot:
        """The files once they have not changed for the settle interval (a save may be under way)."""
        snapshot = await run_in_thread(self._snapshot, name="reload settle")
        if self.settle <= 0:
            return snapshot
        while True:
            await asyncio.sleep(self.settle)
            again = await run_in_thread(self._snapshot, name="reload settle")
            if again == snapshot:
                return again
            snapshot = again


GONE = "deleted, moved, or being replaced; the version loaded before keeps serving until it is back"
TIMEOUT_HINT = (
    "the version loaded before keeps serving; a file system that stopped answering can cause this, "
    "and the next change tries again"
)


def _watched_apart(target: WatchTarget) -> tuple[object, ...]:
    """What a watch is armed on, apart from the declared model files it filters by."""
    return (target.folder, target.file, target.model_folders, target.identities)


def _moved(target: WatchTarget) -> bool:
    """Whether the directory ``target`` watches is no longer at its path (gone, or another one there)."""
    try:
        info = os.stat(target.folder)
    except OSError:
        return True
    return (info.st_dev, info.st_ino) != target.identities[0]


def _located(path: Path) -> Path:
    """An absolute path whose directory is resolved but whose last part is kept: a symlinked file is
    watched, and reported by the watcher, by its link."""
    path = path.absolute()
    return path.parent.resolve() / path.name
