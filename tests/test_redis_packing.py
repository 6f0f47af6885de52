"""The asyncio connections' packing sends the same bytes as redis-py's own serializer."""

from __future__ import annotations

import pytest
from redis.connection import PythonRespSerializer

from tailor.runtime.redis_packing import PackedConnection


@pytest.mark.parametrize(
    "command",
    [
        ("EVALSHA", "0" * 40, 2, "tailor:{u1}", "tailor:{u1}:ids", 1.5, b"raw", "é", -3),
        ("CLIENT SETNAME", "tailor-writes"),  # a two-word name, split as redis-py splits it
        ("SET", "k", memoryview(b"ab")),  # a buffer hiredis does not take
        ("HSET", "k", "f", ""),
    ],
)
def test_packing_is_redis_pys(command: tuple[object, ...]):
    expected = b"".join(PythonRespSerializer(65536, PackedConnection().encoder.encode).pack(*command))
    assert b"".join(PackedConnection().pack_command(*command)) == expected
