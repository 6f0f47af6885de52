"""The cyclic garbage collector around bulk work: paused while it runs, and a frozen heap left frozen.

Parsing, compiling, pickling and loading allocate hundreds of thousands of
objects that all survive; letting the collector scan them again and again
costs a third of the time on large rulesets and frees nothing. So
``collector_paused`` turns it off for the work, and on the way out moves
what the work made to where a scan would have put it, without a scan:
left young, the next allocations would scan millions of survivors twice
more, seconds at 100,000 rules.

A server process freezes its heap (``runtime/heap.py``) and says so with
``keep_frozen``. There the work's objects join the frozen heap directly;
elsewhere they join the oldest generation (freezing then unfreezing moves
every object there). Either way a cycle among them is not freed by the next
young collection, only by a full one, or, frozen, by none: what the work
keeps holds no cycles (tests/test_heap.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_keep_frozen = False


def keep_frozen(keep: bool = True) -> None:
    """This process keeps its heap frozen: bulk work must not unfreeze it (False: it no longer does)."""
    global _keep_frozen
    _keep_frozen = keep


@contextmanager
def collector_paused() -> Iterator[None]:
    """No collection while the block runs; what it made is moved on without a scan (see the module)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:  # the outermost of nested blocks
            gc.freeze()
            if not _keep_frozen:
                gc.unfreeze()
            gc.enable()
