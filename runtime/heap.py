"""Keep a served ruleset out of the cyclic garbage collector's way.

A compiled ruleset is a large, long-lived object graph (about 120,000 objects
for 1,000 rules). Every collection of the oldest generation walks all of it,
which took 20 to 70 ms on a small machine, and such a collection comes every
few thousand requests: straight into the latency tail. So once a version is
installed, the heap is collected and everything still alive is frozen
(``gc.freeze``): later collections skip it.

The first version a process serves is settled in full: unfreeze, collect
everything, freeze. That walks the libraries too (150,000 objects, 80 to 150
ms on a small machine), which is fine before the server takes requests but
not during a hot reload, where every request in flight would wait for it
and miss its deadline. So a reload collects only what is not frozen yet (the
new version and what the process gathered since) and freezes it.

The versions a reload replaces are frozen, out of that collection's reach,
so they must not need the collector: a compiled version holds no reference
cycle once dropped (the generated code's namespace is cleared as its plan is
freed, see ``compiler/codegen.py``), so reference counting frees it the
moment the rollback list lets go of it and the last request using it ends
(tests/test_heap.py holds the frozen heap steady over many reloads). What
else was alive at a reload is frozen with it; were some of that to become
cyclic garbage later (a request in flight then, caught in an exception's
traceback), it would stay until the process ends. That is the price of a
reload that pauses for milliseconds instead of a tenth of a second.

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

from tailor.dsl.collector import keep_frozen

FULL_EVERY = 100  # middle-generation collections between full ones, once the heap is frozen (CPython: 10)


def settle(first: bool = False) -> float:
    """Collect what is not frozen and freeze what survives: one short pause per reload; its seconds.

    ``first`` (the first version a process serves) unfreezes first, so the collection walks everything."""
    start = time.perf_counter()
    if first:
        gc.unfreeze()
        keep_frozen()  # from now on, loading a reload's version and deciding on it must not unfreeze the heap
    gc.collect()  # a frozen heap is out of its reach: then it walks the new version and recent garbage
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
    return time.perf_counter() - start
