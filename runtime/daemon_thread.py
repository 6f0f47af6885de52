"""Work that may hang (a file on a stuck mount, a compile that never ends) run where it cannot hold the process.

The work runs in a daemon thread: the caller waits for it only as long as it
chooses, and the process exits without joining a thread that never returns.
``asyncio.to_thread`` cannot do this: its executor's threads are joined when
the event loop closes and when the interpreter exits, so a stuck one blocks
shutdown (a server that ignores SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def call_within(work: Callable[[], T], timeout: float, *, name: str) -> T:
    """``work()``'s result or exception; ``TimeoutError`` once ``timeout`` seconds pass, leaving it running."""
    outcome: list[tuple[T | None, BaseException | None]] = []

    def run() -> None:
        try:
            outcome.append((work(), None))
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome.append((None, exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"{name} did not finish within {timeout:g} s")
    result, exc = outcome[0]
    if exc is not None:
        raise exc
    return result  # type: ignore[return-value]


async def run_in_thread(work: Callable[[], T], *, name: str) -> T:
    """Await ``work()`` run in a daemon thread; cancelling the wait abandons the thread, never joins it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():  # the caller gave up waiting
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, exc = work(), None
        except BaseException as error:
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # the loop closed while the work ran
            loop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
