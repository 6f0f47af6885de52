"""The HTTP benchmark's load generator works, against a stub, the floor app and the real server.

Few requests and no timing assertions: these check that requests go out,
responses are read whole and every latency is recorded, so ``bench.serve``
cannot silently measure nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import orjson
import pytest

from bench import floor_app, loadgen
from bench import serve as bench_serve
from bench.ports import free_port
from bench.workload import ruleset_text
from tailor.runtime.events import Event
from tailor.runtime.redis_store import RedisStore

T = TypeVar("T")

# --- against an in-process stub ---


async def _stub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its body echoed; the head and the body in separate writes."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b"{}"
            status = b"404 Not Found" if b"missing" in head else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body))
            await writer.drain()
            await asyncio.sleep(0)
            writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _with_stub(work: Callable[[int], Awaitable[T]]) -> T:
    async def main() -> T:
        server = await asyncio.start_server(_stub, loadgen.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await work(port)
        finally:
            server.close()
            await server.wait_closed()

    return loadgen.run(main())


def test_open_loop_sends_every_scheduled_request_and_records_its_latency() -> None:
    async def work(port: int) -> loadgen.OpenLoopResult:
        requests = [loadgen.post("/v1/decide", orjson.dumps({"n": n}), port) for n in range(5)]
        return await loadgen.open_loop(port, requests, rate=200.0, duration=0.2, connections=4)

    result = _with_stub(work)
    assert result.scheduled == 40
    assert result.statuses == {200: 40}
    assert result.errors == 0
    assert len(result.latencies) == len(result.from_schedule) == 40
    assert all(latency > 0 for latency in result.latencies)


def test_closed_loop_counts_completions_and_statuses() -> None:
    async def work(port: int) -> tuple[loadgen.ClosedLoopResult, tuple[int, bytes]]:
        ok = [loadgen.post("/v1/decide", b'{"a": 1}', port)]
        result = await loadgen.closed_loop(port, ok, connections=3, duration=0.2, warmup=0.05)
        return result, await loadgen.send(port, loadgen.get("/missing", port))

    result, (status, body) = _with_stub(work)
    assert result.completed > 0
    assert result.statuses == {200: result.completed}
    assert len(result.latencies) == result.completed
    assert result.throughput > 0
    assert (status, body) == (404, b"{}")


def test_the_load_generator_talks_to_localhost_only_and_within_bounds() -> None:
    async def elsewhere() -> None:
        await loadgen.connect(80, host="192.0.2.1")

    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        loadgen.run(elsewhere())
    with pytest.raises(ValueError, match="at most"):
        loadgen.run(loadgen.open_loop(1, [b"x"], rate=1.0, duration=loadgen.MAX_SECONDS + 1))
    with pytest.raises(ValueError, match="connections"):
        loadgen.run(loadgen.closed_loop(1, [b"x"], connections=loadgen.MAX_CONNECTIONS + 1))


def test_the_benchmark_never_uses_redis_database_zero() -> None:
    with pytest.raises(SystemExit):
        bench_serve.redis_url("redis://127.0.0.1:6379/0", 0)
    assert bench_serve.redis_url("redis://:secret@127.0.0.1:6379/0", 15).endswith("@127.0.0.1:6379/15")
    assert bench_serve.shown("redis://:secret@127.0.0.1:6379/15") == "redis://127.0.0.1:6379/15"
    assert bench_serve.percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert bench_serve.percentile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0


# --- against the floor app and the real server ---


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[dict[str, bench_serve.Process]]:
    """Both floor apps and ``tailor serve`` (a small ruleset, Redis), started side by side, once for the module."""
    tmp_path = tmp_path_factory.mktemp("serve")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bench.rules").write_text(ruleset_text(50))
    server_port, floor_port, free_floor_port = free_port(), free_port(), free_port()
    started = {
        "server": bench_serve.start(
            "server",
            ["tailor.cli", "serve", str(rules), "--redis", redis_url, "--port", str(server_port)],
            server_port,
            tmp_path,
        ),
        "floor": bench_serve.start(
            "floor", ["bench.floor_app", "--port", str(floor_port), "--redis", redis_url], floor_port, tmp_path
        ),
        "floor_free": bench_serve.start(
            "floor_free",
            ["bench.floor_app", "--port", str(free_floor_port), "--redis", redis_url, "--layout", "user"],
            free_floor_port,
            tmp_path,
        ),
    }
    try:
        bench_serve.wait_ready(started["server"], "/readyz")
        bench_serve.wait_ready(started["floor"], "/healthz")
        bench_serve.wait_ready(started["floor_free"], "/healthz")
        yield started
    finally:
        for process in started.values():
            process.stop()


@pytest.mark.parametrize("name", ["floor", "floor_free", "server"])
def test_the_load_generator_drives_the_floor_and_the_server(
    processes: dict[str, bench_serve.Process], name: str
) -> None:
    port = processes[name].port
    bodies = bench_serve.make_requests(users=20, n=12)
    requests = bench_serve.encode(bodies, port)

    opened = loadgen.run(loadgen.open_loop(port, requests, rate=100.0, duration=0.3, connections=4))
    assert opened.scheduled == 30
    assert opened.statuses == {200: 30}, processes[name].tail()
    assert len(opened.latencies) == 30

    closed = loadgen.run(loadgen.closed_loop(port, requests, connections=2, duration=0.2, warmup=0.05))
    assert closed.completed > 0
    assert closed.statuses == {200: closed.completed}
    assert len(closed.latencies) == closed.completed

    status, body = loadgen.run(loadgen.send(port, requests[0]))
    assert status == 200
    decision = orjson.loads(body)
    assert set(decision["slots"]) == {"hero", "sidebar", "footer"}
    assert decision["degraded"] is False


def test_the_layout_free_floor_reads_what_the_store_was_given_in_one_hash_per_user() -> None:
    day = RedisStore("redis://127.0.0.1:6379/15").scheme.day
    now = 20_000 * 86400.0 + 3600
    history = [
        Event("u1", "view", "Books", None, now - 60, "a"),
        Event("u1", "view", "Books", None, now - 120, "b"),
        Event("u1", "view", "Books", None, now - 86400, "c"),
        Event("u1", "purchase", "Electronics", 12.5, now - 60, "d"),
        Event("u1", "view", "Fashion", None, now - 60, "e"),  # a category the floor does not read
    ]
    assert floor_app.user_fields(history, day) == {
        "view:Books:20000": 2,
        "view:Books:19999": 1,
        "purchase:Electronics:20000": 1,
    }
    assert floor_app.user_key("u1") == "tailor:floor:{u1}"  # under a hash tag, with the store's prefix
