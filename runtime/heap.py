"""Keep a served ruleset out of the cyclic garbage collector's way.

A compiled ruleset is a large, long-lived object graph (about 120,000 objects
for 1,000 rules). Every collection of the oldest generation walks all of it,
which took 20 to 70 ms on a small machine, and such a collection comes every
few thousand requests: straight into the latency tail. So once a version is
installed, the heap is collected and everything still alive is frozen
(``gc.freeze``): later collections skip it. Unfreezing first lets that one
collection free what earlier versions left in reference cycles, so reloads
do not leak.

Freezing has a side effect on when full collections come. CPython starts one
after every ``threshold2`` collections of the middle generation, unless the
objects promoted since the last one are under a quarter of the long-lived
heap, and frozen objects do not count in that heap. With the ruleset and the
libraries frozen, the quarter is small and the default ten is all that is
left to space them out: a full collection every couple of seconds under
load, each walking what the process accumulated since (the memory store's
users, join records waiting for feedback, the console's recent decisions),
40 to 70 ms each on a small machine. ``FULL_EVERY`` spaces them out ten times
further. Only reference cycles that outlived two younger collections wait
longer to be freed; the young generations are collected as before.
"""

from __future__ import annotations

import gc
import time

FULL_EVERY = 100  # middle-generation collections between full ones, once the heap is frozen (CPython: 10)


def settle() -> float:
    """Collect once and freeze what survives; the seconds it took (one pause per reload)."""
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    return time.perf_counter() - start
