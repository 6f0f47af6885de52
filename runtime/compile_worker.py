"""Hot reload's compiles, in a process of their own.

A compile holds the interpreter for its whole length: seconds for tens of
thousands of rules. Run in a thread of the server, it made the decisions
served meanwhile about nine times slower (``python -m bench.reload
--beside``). So a reload compiles in a worker process, and the server only
loads the result: the compiled ruleset, pickled, with the plan's code object
in ``marshal``'s format and each model as the bytes it was read from (see
``CompiledPlan`` and ``ModelFile``).

The worker starts with the reloader and lives as long as it, one compile at a
time, keeping its own ``ParseCache`` and ``FileCache``: a reload re-parses,
re-checks and re-normalizes only the files whose bytes changed. A compile that
outlives its reload's timeout is killed, and the next reload starts a new
worker. The worker never outlives the server: it exits when its request pipe
closes, a watchdog thread ends it if the server dies mid-compile, and it
ignores Ctrl-C (the terminal sends that to the whole process group; the
server decides when to stop).

A message is a pickle behind its length (8 bytes, little-endian). The server
sends a ``CompileRequest`` and gets back a ``Prepared``, or a ``CompileCrash``
when the compiler raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar

from tailor.compiler.file_cache import FileCache
from tailor.compiler.pickled import dumps
from tailor.compiler.plan import PredicateStats
from tailor.dsl.collector import collector_paused
from tailor.dsl.loader import ParseCache

from .daemon_thread import run_in_thread
from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits
from .ruleset_loader import Prepared, prepare, sized_cache

log = logging.getLogger("tailor.runtime")

T = TypeVar("T")

HEADER = struct.Struct("<Q")
WATCHDOG_INTERVAL = 0.5  # seconds between the worker's checks that the server is alive
REAP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class CompileRequest:
    """What to compile, with the server's settings."""

    path: Path
    stats: PredicateStats | None = None
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS


@dataclass(frozen=True, slots=True)
class CompileCrash:
    """The compiler raised: a bug, reported as the reload's error (the traceback goes to the log)."""

    error: str
    traceback: str


class CompileFailed(RuntimeError):
    """The worker could not compile: it crashed, died, or raised."""


class _Child:
    """One worker process and the two pipes to it."""

    def __init__(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", __name__, str(request_read), str(reply_write), str(os.getpid())],
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.requests: BinaryIO = open(request_write, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self.replies: BinaryIO = open(reply_read, "rb", buffering=0)  # noqa: SIM115
        self.busy = False

    def exchange(self, request: CompileRequest, load: Callable[[Prepared], T]) -> T:
        """Send one request and ``load`` its answer: blocking, so it runs in a thread."""
        self.busy = True
        try:
            _write(self.requests, pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            data = _read(self.replies)
            if data is None:
                raise CompileFailed(f"the compile worker exited ({_status(self.popen)})")
        except BaseException:
            self.kill()
            self.close()
            raise
        finally:
            self.busy = False
        with collector_paused():  # the ruleset, and what the server derives from it, are many objects that all stay
            reply = pickle.loads(data)
            if not isinstance(reply, CompileCrash):
                return load(reply)  # a RulesError from here is the compile's answer: the worker is fine
        log.error("the compiler failed in the compile worker:\n%s", reply.traceback)
        raise CompileFailed(reply.error)

    def kill(self, *, wait: bool = False) -> None:
        """End the process now; reap it here (``wait``, at shutdown) or in a thread."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            if wait:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(REAP_TIMEOUT)
            else:
                threading.Thread(target=self.popen.wait, args=(REAP_TIMEOUT,), daemon=True).start()

    def close(self) -> None:
        for pipe in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                pipe.close()


class CompileWorker:
    """The server's side of the worker: compile requests, one at a time, answered off the event loop."""

    def __init__(self) -> None:
        self._child: _Child | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The worker's process id; None before it starts or after it ends."""
        child = self._child
        return child.popen.pid if child is not None and child.popen.poll() is None else None

    @property
    def busy(self) -> bool:
        """A compile has been asked for and not answered yet."""
        child = self._child
        return child is not None and child.busy

    def start(self) -> None:
        """Start the worker if it is not running (a reload starts it anyway; starting early saves its
        start-up time on the first reload)."""
        child = self._child
        if child is not None and child.popen.poll() is None:
            return
        if child is not None:
            child.close()
        self._child = _Child()

    async def compile(self, request: CompileRequest, load: Callable[[Prepared], T]) -> T:
        """``load`` of the compile's outcome, run off the event loop like the rest (a ruleset's derived state
        is many objects too); ``CompileFailed`` when the worker crashed. Cancelling kills the compile."""
        self.start()
        child = self._child
        assert child is not None
        try:
            return await run_in_thread(partial(child.exchange, request, load), name="reload compile")
        except BaseException:
            child.kill()  # an abandoned compile must not run on; the exchange's thread closes the pipes
            if self._child is child:
                # A replacement starts now, so that the next edit finds it ready rather than waits for
                # the interpreter to start and import the compiler.
                self._child = None if self._closed else _Child()
            raise

    def close(self) -> None:
        """Stop the worker: closing its request pipe ends it; one in a compile is killed."""
        self._closed = True
        child, self._child = self._child, None
        if child is None:
            return
        if child.busy:
            child.kill(wait=True)  # the exchange's thread sees the pipe end and closes it
            return
        child.close()
        try:
            child.popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            child.kill(wait=True)


def _write(pipe: BinaryIO, data: bytes) -> None:
    pipe.write(HEADER.pack(len(data)))
    view = memoryview(data)
    while view:
        written = pipe.write(view)
        view = view[written:]


def _read(pipe: BinaryIO) -> bytes | None:
    """One message; None at the end of the pipe (the other side exited)."""
    header = _read_exactly(pipe, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    return _read_exactly(pipe, size)


def _read_exactly(pipe: BinaryIO, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = pipe.readinto(view[got:])
        if not count:
            return None
        got += count
    return bytes(buffer)


def _status(popen: subprocess.Popen[bytes]) -> str:
    try:
        code = popen.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        return "no exit status yet"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


# --- the worker process ---------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """End this process once the server is gone, even in the middle of a compile."""
    while True:
        time.sleep(WATCHDOG_INTERVAL)
        if os.getppid() != parent:
            os._exit(0)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer compile requests until the request pipe closes."""
    cache: ParseCache | None = None
    file_cache = FileCache()
    while True:
        data = _read(requests)
        if data is None:
            return
        request: CompileRequest = pickle.loads(data)
        try:
            cache = sized_cache(cache, request.path)
            reply: Prepared | CompileCrash = prepare(
                request.path,
                stats=request.stats,
                cache=cache,
                model_limits=request.model_limits,
                file_cache=file_cache,
            )
            payload = dumps(reply)
        except Exception as exc:  # a compiler bug: the server reports it and keeps serving
            payload = pickle.dumps(CompileCrash(repr(exc), traceback.format_exc()))
        _write(replies, payload)


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(int(argv[3]),), name="watchdog", daemon=True).start()
    requests, replies = open(int(argv[1]), "rb", buffering=0), open(int(argv[2]), "wb", buffering=0)  # noqa: SIM115
    with requests, replies, contextlib.suppress(BrokenPipeError):
        serve(requests, replies)


if __name__ == "__main__":
    main(sys.argv)
