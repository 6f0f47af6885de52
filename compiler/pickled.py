"""A compiled ruleset as bytes and back: how it crosses processes, and how it is laid out compactly.

A dataclass is pickled as its class called with its fields, which loads
several times faster than the ``__setstate__`` of a frozen slotted dataclass
(a ruleset is about a million such objects at 20,000 rules).

``compacted`` copies a freshly compiled ruleset through its bytes. Compiling
interleaves the few objects a ruleset keeps with the many it throws away
(tokens, syntax trees, working tables), and the allocator can hand back to
the system only memory it has emptied completely: the kept objects, spread
thin, held about twice their size. Copied once everything else is freed, they
sit together.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import pickle
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar

from tailor.dsl.collector import collector_paused

T = TypeVar("T")


class _Reducers(dict[type, Any]):
    """A pickler's dispatch table that works out each class's reducer the first time it meets it.

    Classes whose ``__init__`` is not the plain generated one keep the default.
    """

    def __missing__(self, cls: type) -> Any:
        reducer = _reducer(cls)
        if reducer is None:
            raise KeyError(cls)  # the pickler's default; asked again next time, which costs little
        self[cls] = reducer
        return reducer


def _reducer(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    if not dataclasses.is_dataclass(cls) or cls.__reduce__ is not object.__reduce__:
        return None
    fields = dataclasses.fields(cls)
    code = getattr(cls.__init__, "__code__", None)
    generated = code is not None and code.co_filename == "<string>"  # dataclasses' own, not the class's
    if not generated or hasattr(cls, "__post_init__") or not all(f.init for f in fields) or not fields:
        return None
    values = attrgetter(*(f.name for f in fields))
    if len(fields) == 1:
        return lambda obj: (cls, (values(obj),))
    return lambda obj: (cls, values(obj))


_REDUCERS = _Reducers()


def dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    with collector_paused():  # nothing is freed while pickling: a collection would only cost time
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _REDUCERS
        pickler.dump(value)
        del pickler  # its memo holds every argument tuple made: freed here, the collector never sees them
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    with collector_paused():  # everything loaded stays: a collection would only cost time
        return pickle.loads(data)


# Below this many bytes pickled (some 700 rules) a copy saves less than the full collection it needs costs.
COMPACT_FROM_BYTES = 500_000


def compacted(value: T) -> T:
    """A copy of ``value`` laid out together; the caller passes its only reference (``compacted(make())``).

    A small value is returned as it is.
    """
    data = dumps(value)
    if len(data) < COMPACT_FROM_BYTES:
        return value
    del value
    gc.collect()  # the generated code's functions and their module form a cycle: freed only by a collection
    return loads(data)
