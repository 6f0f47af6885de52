"""The off-the-response-path write queue shared by exposures and shared predictions."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tailor.runtime import background_writes
from tailor.runtime.background_writes import BackgroundWrites


class Sink:
    """A store stand-in that fails its first ``failures`` calls, then keeps what it is given."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.calls = 0
        self.kept: list[tuple[str, int]] = []

    async def write(self, batch: Sequence[tuple[str, int]]) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("the store is down")
        self.kept.extend(batch)
        return len(batch)


def writes(sink: Sink, **settings: float) -> BackgroundWrites[tuple[str, int]]:
    options = {"batch": 2, "max_queued": 10, **settings}
    return BackgroundWrites(sink.write, lambda item: item[0], what="items", **options)


def test_items_are_written_in_batches_after_the_caller_returns() -> None:
    async def go() -> tuple[Sink, BackgroundWrites]:
        sink = Sink()
        queue = writes(sink)
        for n in range(5):
            queue.add(("u1", n))
        assert sink.kept == []  # nothing is written while the caller runs
        await queue.flush()
        return sink, queue

    sink, queue = asyncio.run(go())
    assert sink.kept == [("u1", n) for n in range(5)]
    assert sink.calls == 3  # batches of two
    assert (queue.written, queue.dropped, queue.queued) == (5, 0, 0)


def test_a_full_queue_drops_the_newest_and_counts_them() -> None:
    async def go() -> tuple[Sink, BackgroundWrites]:
        sink = Sink()
        queue = writes(sink, max_queued=3)
        for n in range(5):
            queue.add(("u1", n))
        await queue.flush()
        return sink, queue

    sink, queue = asyncio.run(go())
    assert sink.kept == [("u1", 0), ("u1", 1), ("u1", 2)]
    assert (queue.written, queue.dropped) == (3, 2)


@pytest.mark.parametrize(("attempts", "written"), [(1, 0), (3, 2)])
def test_a_failed_batch_is_retried_only_as_often_as_allowed(
    monkeypatch: pytest.MonkeyPatch, attempts: int, written: int
) -> None:
    monkeypatch.setattr(background_writes, "RETRY_SECONDS", 0.001)

    async def go() -> tuple[Sink, BackgroundWrites]:
        sink = Sink(failures=2)
        queue = writes(sink, attempts=attempts)
        queue.add(("u1", 1))
        queue.add(("u2", 2))
        await queue.flush()
        return sink, queue

    sink, queue = asyncio.run(go())
    assert queue.written == written
    assert queue.dropped == 2 - written
    assert len(sink.kept) == written


def test_erasure_forgets_only_the_users_queued_items() -> None:
    async def go() -> tuple[Sink, int]:
        sink = Sink()
        queue = writes(sink)
        for user in ("u1", "u2", "u1", "u3"):
            queue.add((user, 0))
        forgotten = queue.forget("u1")
        await queue.flush()
        return sink, forgotten

    sink, forgotten = asyncio.run(go())
    assert forgotten == 2
    assert [user for user, _ in sink.kept] == ["u2", "u3"]


@pytest.mark.parametrize(("linger", "calls"), [(0.0, 3), (60.0, 1)])
def test_items_added_meanwhile_linger_into_one_write(linger: float, calls: int) -> None:
    async def go() -> Sink:
        sink = Sink()
        queue = writes(sink, batch=100, linger=linger)
        for n in range(3):
            queue.add(("u1", n))
            await asyncio.sleep(0.01)  # the writing task runs meanwhile
        await queue.flush()  # a flush does not wait out the linger
        return sink

    sink = asyncio.run(asyncio.wait_for(go(), 30))
    assert sink.calls == calls
    assert sink.kept == [("u1", n) for n in range(3)]


def test_a_full_batch_is_written_without_lingering() -> None:
    async def go() -> Sink:
        sink = Sink()
        queue = writes(sink, batch=2, linger=60.0)
        queue.add(("u1", 0))
        queue.add(("u1", 1))
        await asyncio.sleep(0.05)
        return sink

    assert asyncio.run(go()).kept == [("u1", 0), ("u1", 1)]
