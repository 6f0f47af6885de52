"""A small HTTP/1.1 load generator for the server benchmarks: open and closed loop.

Raw keep-alive connections on asyncio (uvloop when installed), one request
in flight per connection, request bytes encoded beforehand, responses parsed
only as far as the status and ``Content-Length``. It talks to 127.0.0.1 only,
and every run is bounded in requests, connections and time.

Open loop (``open_loop``): request ``i`` is due at ``start + i / rate``,
whether or not earlier requests have been answered; ``connections`` workers
take the next due request whenever they are free. A request's latency runs
from its scheduled send time to its response, so time spent waiting for a
free connection (queueing behind a slow server) counts. One correction: a
worker that was idle, sleeping until the request was due, counts from when
its timer actually let it send. Timers fire up to about a millisecond off
schedule; that is the generator's granularity, not the server's latency, and
it would otherwise add a constant to every latency. The uncorrected latencies
(from the schedule alone) are kept too (``from_schedule``).

Closed loop (``closed_loop``): ``connections`` workers send back to back; the
completions within the measured window, divided by its length, are the
throughput at saturation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

HOST = "127.0.0.1"
MAX_REQUESTS = 500_000
MAX_CONNECTIONS = 256
MAX_SECONDS = 600.0
CONNECT_TIMEOUT = 5.0
GRACE = 5.0  # seconds after the last scheduled request before stragglers are abandoned

T = TypeVar("T")


class LoadError(RuntimeError):
    """The connection failed or the response could not be read."""


def post(path: str, body: bytes, port: int) -> bytes:
    """A keep-alive ``POST`` of a JSON body, ready to write."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def get(path: str, port: int) -> bytes:
    """A keep-alive ``GET``, ready to write."""
    return f"GET {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\n\r\n".encode("ascii")


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            return
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(LoadError("a response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or LoadError("the server closed the connection")
        self._fail(self.lost)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send ``data``; the future gives ``(status, body)``."""
        if self.lost is not None or self.transport is None:
            raise LoadError(f"the connection is closed ({self.lost})")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, host: str = HOST) -> Connection:
    if host != HOST:
        raise ValueError(f"the load generator only talks to {HOST}")
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(loop.create_connection(Connection, host, port), CONNECT_TIMEOUT)
    return protocol


async def _connect_all(port: int, connections: int) -> list[Connection]:
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise ValueError(f"connections must be between 1 and {MAX_CONNECTIONS}")
    return list(await asyncio.gather(*(connect(port) for _ in range(connections))))


def _close_all(conns: Sequence[Connection]) -> None:
    for conn in conns:
        conn.close()


@dataclass
class OpenLoopResult:
    """Latencies in seconds (see the module's docstring), one per completed request."""

    rate: float
    scheduled: int
    latencies: list[float] = field(default_factory=list)
    from_schedule: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies)


@dataclass
class ClosedLoopResult:
    connections: int
    window: float  # seconds over which completions were counted
    completed: int = 0  # completions within the window
    latencies: list[float] = field(default_factory=list)  # send to response, within the window
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    @property
    def throughput(self) -> float:
        """Completions per second within the window."""
        return self.completed / self.window if self.window > 0 else 0.0


def _check_bounds(requests: Sequence[bytes], seconds: float) -> None:
    if not requests:
        raise ValueError("no requests to send")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"a run lasts more than 0 and at most {MAX_SECONDS:g} s")


async def open_loop(
    port: int,
    requests: Sequence[bytes],
    rate: float,
    duration: float,
    *,
    connections: int = 16,
    max_requests: int = MAX_REQUESTS,
    until: asyncio.Event | None = None,
) -> OpenLoopResult:
    """Send ``requests`` (cycled) at ``rate`` per second for ``duration`` seconds; see the module's docstring.

    With ``until``, no request is sent once it is set: the run may end early.
    """
    _check_bounds(requests, duration)
    if rate <= 0:
        raise ValueError("the rate must be positive")
    total = min(int(rate * duration), max_requests, MAX_REQUESTS)
    result = OpenLoopResult(rate, total)
    conns = await _connect_all(port, connections)
    clock = time.perf_counter
    start = clock() + 0.02
    deadline = start + total / rate + GRACE
    next_index = 0
    sent_count = 0
    count = len(requests)

    async def worker(conn: Connection) -> None:
        nonlocal next_index, sent_count
        latencies, from_schedule, statuses = result.latencies, result.from_schedule, result.statuses
        while next_index < total and (until is None or not until.is_set()):
            index = next_index
            next_index += 1
            due = start + index / rate
            now = clock()
            idle = now < due
            if idle:
                await asyncio.sleep(due - now)
                if clock() > deadline or (until is not None and until.is_set()):
                    return
            sent = clock()
            sent_count += 1
            try:
                status, _ = await conn.request(requests[index % count])
            except (LoadError, OSError):
                result.errors += 1
                return  # the connection is gone
            done = clock()
            statuses[status] += 1
            from_schedule.append(done - due)
            latencies.append(done - sent if idle else done - due)

    tasks = [asyncio.ensure_future(worker(conn)) for conn in conns]
    try:
        await _bounded(tasks, deadline - clock())
    finally:
        _close_all(conns)
    result.elapsed = clock() - start
    if until is not None:
        result.scheduled = sent_count  # fewer than planned when ``until`` ended the run
    result.errors = result.scheduled - result.completed  # failed, or abandoned at the deadline
    return result


async def closed_loop(
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int = 8,
    duration: float = 5.0,
    warmup: float = 1.0,
) -> ClosedLoopResult:
    """``connections`` workers send back to back; completions after ``warmup`` for ``duration`` s are counted."""
    _check_bounds(requests, duration + warmup)
    result = ClosedLoopResult(connections, duration)
    conns = await _connect_all(port, connections)
    clock = time.perf_counter
    begin = clock() + warmup
    end = begin + duration
    count = len(requests)
    position = 0

    async def worker(conn: Connection) -> None:
        nonlocal position
        latencies, statuses = result.latencies, result.statuses
        while True:
            sent = clock()
            if sent >= end:
                return
            data = requests[position % count]
            position += 1
            try:
                status, _ = await conn.request(data)
            except (LoadError, OSError):
                result.errors += 1
                return
            done = clock()
            if begin <= done < end:
                result.completed += 1
                statuses[status] += 1
                latencies.append(done - sent)

    tasks = [asyncio.ensure_future(worker(conn)) for conn in conns]
    try:
        await _bounded(tasks, warmup + duration + GRACE)
    finally:
        _close_all(conns)
    return result


async def _bounded(tasks: list[asyncio.Future[None]], seconds: float) -> None:
    """Wait for ``tasks`` at most ``seconds``; cancel what is left."""
    _, pending = await asyncio.wait(tasks, timeout=max(seconds, 0.0))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def send(port: int, data: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection: ``(status, body)``."""
    conn = await connect(port)
    try:
        return await asyncio.wait_for(conn.request(data), CONNECT_TIMEOUT + GRACE)
    finally:
        conn.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop: uvloop when installed (less of the shared CPU for the generator)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
