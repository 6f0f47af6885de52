"""Asyncio Redis connections that pack commands in C, with hiredis, as redis-py's blocking ones do.

redis-py's asyncio connection packs every command in Python, growing one
buffer argument by argument: the event scripts pass thousands of arguments
per call, and packing them cost more than the rest of the client's work.
Its blocking connection already packs with ``hiredis.pack_command`` when
hiredis is installed; these classes do the same for the asyncio client. The
bytes sent are the same RESP either way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import Connection, SSLConnection
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer()


class PackedConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)


class PackedSSLConnection(SSLConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _PACKER.pack(*args)


def packed_connections(url: str) -> dict[str, Any]:
    """The ``connection_class`` option for an asyncio client of ``url``: none without hiredis, or for a
    Unix socket (redis-py's own class then)."""
    if not HIREDIS_AVAILABLE:
        return {}
    scheme = urlsplit(url).scheme
    if scheme == "redis":
        return {"connection_class": PackedConnection}
    if scheme == "rediss":
        return {"connection_class": PackedSSLConnection}
    return {}
