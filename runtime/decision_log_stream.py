"""The decision log's Redis sink: one Stream, each entry one record's JSON.

Each batch is appended by a script, ``LINES_PER_CALL`` records a call, that
runs ``XADD key MAXLEN ~ N * record <json>`` for each: Redis trims the Stream
to about ``N`` entries as it goes (the ``~`` lets it trim whole nodes,
cheaply). One script argument a record, rather than a pipeline of commands of
eight: the client packs commands in Python, and that was most of what logging
cost the server. The sink has a connection of its own, so logging never takes
a connection a decision needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from .decision_log import LogErasure
from .redis_clients import AsyncClient, async_client
from .redis_store import DEFAULT_PREFIX
from .redis_urls import without_password

FIELD = "record"  # the entry's one field: the record's JSON
TIMEOUT = 2.0  # seconds a batch may take; a stuck Redis loses the batch, and the queue drops meanwhile
LINES_PER_CALL = 128  # records per script call: a call holds Redis well under a millisecond
# KEYS[1]: the Stream. ARGV[1]: its approximate maximum length; then one record's JSON an argument.
APPEND_SCRIPT = f"""
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '{FIELD}', ARGV[i])
end
return #ARGV - 1
"""


def stream_key(prefix: str = DEFAULT_PREFIX) -> str:
    """The Stream's key, beside the store's keys (``tailor:decisions``)."""
    return f"{prefix}decisions"


class StreamSink:
    """Appends batches to the Stream at ``url``, trimmed to about ``max_len`` entries."""

    kind = "stream"

    def __init__(
        self, url: str, *, max_len: int, key: str | None = None, timeout: float = TIMEOUT, cluster: bool = False
    ):
        self.url = url
        self.cluster = cluster
        self.key = key or stream_key()
        self.max_len = max_len
        self.timeout = timeout
        self.where = f"the Redis Stream {self.key} at {without_password(url)}"
        self._client: AsyncClient | None = None
        self._append: AsyncScript | None = None

    def _connected(self) -> AsyncClient:
        if self._client is None:
            self._client = async_client(self.url, cluster=self.cluster, name="tailor-log", timeout=self.timeout)
        return self._client

    def _script(self) -> AsyncScript:
        if self._append is None:
            self._append = self._connected().register_script(APPEND_SCRIPT)  # by digest; sent again if lost
        return self._append

    async def write(self, lines: Sequence[bytes]) -> None:
        append = self._script()
        async with asyncio.timeout(self.timeout):
            for start in range(0, len(lines), LINES_PER_CALL):
                await append([self.key], [self.max_len, *lines[start : start + LINES_PER_CALL]])

    async def erase(self, user_id: str) -> LogErasure:
        """Delete the user's entries now (a scan of the whole Stream, a page at a time)."""
        from .decision_log_erasure import erase_from_stream

        return LogErasure("stream", await erase_from_stream(self._connected(), self.key, user_id), 0)

    async def records_of(self, user_id: str) -> tuple[list[Any], bool]:
        from .decision_log_erasure import stream_records

        return await stream_records(self._connected(), self.key, user_id)

    async def close(self) -> None:
        client, self._client, self._append = self._client, None, None
        if client is not None:
            await client.aclose()
