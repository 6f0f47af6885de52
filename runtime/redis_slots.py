"""Redis Cluster slots: which of a batch's items can share one script call.

A script on a cluster may touch the keys of one slot alone. Keys with the same
hash tag (``{user}``) always share one; items are grouped by the slot of the
key that names them, in their first order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from redis.crc import key_slot

T = TypeVar("T")


def slot_of(key: str) -> int:
    """The cluster slot of ``key`` (of its hash tag when it has one)."""
    return key_slot(key.encode())


def by_slot(items: Iterable[T], key: Callable[[T], str]) -> dict[int, list[T]]:
    """``items`` grouped by the slot of ``key(item)``, each group in the items' order."""
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(slot_of(key(item)), []).append(item)
    return groups


def by_key(items: Iterable[T], key: Callable[[T], object]) -> dict[object, list[T]]:
    """``items`` grouped by ``key(item)`` (a shard, say), each group in the items' order."""
    groups: dict[object, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups
