"""Everything a Redis database holds, as text to search: what erasure tests look through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def key_parts(client: Any, match: str | None = None) -> Iterator[tuple[bytes, bytes]]:
    """Every key (``match``: those matching it) with each of its names, fields, members, values and Stream
    entries; ``client`` is a blocking client of one node or of a cluster."""
    for key in client.scan_iter(match=match, count=1000):
        yield key, key
        kind = client.type(key).decode()
        if kind == "string":
            parts = [client.get(key)]
        elif kind == "hash":
            parts = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts = [part for _, fields in client.xrange(key) for pair in fields.items() for part in pair]
        else:
            raise AssertionError(f"{key!r} is a {kind}: the test does not know how to read it")
        for part in parts:
            yield key, part or b""
