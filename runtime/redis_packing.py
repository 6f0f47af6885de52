"""Asyncio Redis connections that pack commands in C, with hiredis, as redis-py's blocking ones do.

redis-py's asyncio connection packs every command in Python, growing one
buffer argument by argument: the event scripts pass thousands of arguments
per call, and packing them cost more than the rest of the client's work.
Its blocking connection already packs with ``hiredis.pack_command`` when
hiredis is installed; these classes do the same for the asyncio client. The
bytes sent are the same RESP either way. A command whose arguments are all
text, bytes or numbers (every one the store sends) goes to hiredis as it is,
skipping redis-py's per-argument conversion, which cost as much as the packing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import Connection, SSLConnection
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

if HIREDIS_AVAILABLE:
    from hiredis import pack_command as _pack_command

_PACKER = HiredisRespSerializer()


def _pack(args: tuple[Any, ...]) -> list[bytes]:
    """One command's RESP: hiredis directly for a one-word command name, else redis-py's serializer (which
    splits names like ``CLIENT SETNAME`` and converts buffers)."""
    name = args[0]
    if isinstance(name, str) and " " not in name:
        try:
            return [_pack_command(args)]
        except TypeError:  # an argument hiredis does not take (a memoryview, say)
            pass
    return _PACKER.pack(*args)


class PackedConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


class PackedSSLConnection(SSLConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


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
