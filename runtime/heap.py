"""Keep a served ruleset out of the cyclic garbage collector's way.

A compiled ruleset is a large, long-lived object graph (about 120,000 objects
for 1,000 rules). Every collection of the oldest generation walks all of it,
which took 20 to 70 ms on a small machine, and such a collection comes every
few thousand requests: straight into the latency tail. So once a version is
installed, the heap is collected and everything still alive is frozen
(``gc.freeze``): later collections skip it. Unfreezing first lets that one
collection free what earlier versions left in reference cycles, so reloads
do not leak.
"""

from __future__ import annotations

import gc
import time


def settle() -> float:
    """Collect once and freeze what survives; the seconds it took (one pause per reload)."""
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - start
