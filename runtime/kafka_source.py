"""Records from a Kafka topic, read by a consumer group: the same consumer loop, another stream.

With the optional extra ``kafka`` (``pip install 'tailor[kafka]'``, which
brings confluent-kafka, the Python client over librdkafka), ``tailor ingest
--kafka SERVERS`` reads a topic instead of a Redis Stream. Each message
carries one record: its value is the JSON of one event or one feedback item,
and its header ``kind`` says which (``event`` or ``feedback``); other headers
are kept in its dead letter. The mapping is ``message_entry``.

What Redis Streams do with pending entries and ``XAUTOCLAIM``, Kafka does
with offsets and rebalancing: the loop commits a batch's offsets only once
it is stored (``enable.auto.commit`` is off), and when a consumer dies the
group hands its partitions to the others, which read again from the last
committed offset. Delivery is at least once either way, and the event ids
make it count once. Refused records are produced to the dead-letter topic,
with the reason and origin as headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from .stream_records import Entry
from .stream_source import ORIGIN_FIELD, REASON_FIELD, Backlog

log = logging.getLogger("tailor.runtime")

KIND_HEADER = "kind"  # the header naming the record's kind: event or feedback
INSTALL = "reading from Kafka needs confluent-kafka: pip install 'tailor[kafka]'"


def message_entry(
    partition: int, offset: int, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> Entry:
    """A Kafka message as a stream entry: the field named by its ``kind`` header holds its value, and
    its other headers are fields too. Its id is ``PARTITION-OFFSET``."""
    fields = {name: (raw or b"").decode(errors="replace") for name, raw in headers or ()}
    kind = fields.pop(KIND_HEADER, None)
    if kind is not None:
        fields[kind] = (value or b"").decode(errors="replace")
    return Entry(f"{partition}-{offset}", fields)


class KafkaSource:
    """One consumer of ``group`` on ``topic``; a new group starts from the topic's earliest offsets."""

    def __init__(
        self,
        servers: str,
        topic: str,
        group: str,
        consumer: str,
        *,
        dead_letters: str,
        block: float = 1.0,
        config: dict[str, Any] | None = None,
    ):
        try:
            from confluent_kafka import Consumer, Producer
        except ImportError:
            raise RuntimeError(INSTALL) from None
        self.name = topic
        self.dead_letters = dead_letters
        self.block = block
        common = {"bootstrap.servers": servers, "client.id": consumer, **(config or {})}
        self._consumer = Consumer(
            {**common, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
        self._consumer.subscribe([topic])
        self._producer = Producer(common)

    async def read(self, count: int) -> list[Entry]:
        messages = await asyncio.to_thread(self._consumer.consume, count, self.block)
        entries = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"Kafka: {error.str()}")
                log.warning("Kafka: %s", error.str())
                continue
            entries.append(message_entry(message.partition(), message.offset(), message.value(), message.headers()))
        return entries

    async def ack(self, entries: Sequence[Entry]) -> None:
        """Commit, per partition, the offset after the batch's last entry (batches are acknowledged in order)."""
        from confluent_kafka import TopicPartition

        last: dict[int, int] = {}
        for entry in entries:
            partition, offset = map(int, entry.id.split("-"))
            last[partition] = max(offset, last.get(partition, -1))
        if last:
            offsets = [TopicPartition(self.name, partition, offset + 1) for partition, offset in last.items()]
            await asyncio.to_thread(self._consumer.commit, offsets=offsets, asynchronous=False)

    async def dead_letter(self, letters: Sequence[tuple[Entry, str]]) -> None:
        for entry, reason in letters:
            fields = dict(entry.fields)
            kind = next((name for name in ("event", "feedback") if name in fields), None)
            value = fields.pop(kind) if kind is not None else None
            headers = [(name, text.encode()) for name, text in fields.items()]
            headers += [(REASON_FIELD, reason.encode()), (ORIGIN_FIELD, f"{self.name}/{entry.id}".encode())]
            if kind is not None:
                headers.append((KIND_HEADER, kind.encode()))
            self._producer.produce(self.dead_letters, value=value, headers=headers)
        if letters:
            left = await asyncio.to_thread(self._producer.flush, 30)
            if left:
                raise RuntimeError(f"Kafka: {left} dead letters were not delivered")

    async def backlog(self) -> Backlog | None:
        """Messages after the group's committed offsets, over the partitions this consumer holds."""

        def measure() -> Backlog | None:
            assigned = self._consumer.assignment()
            if not assigned:
                return None
            lag = 0
            for committed in self._consumer.committed(assigned, timeout=5):
                _, high = self._consumer.get_watermark_offsets(committed, timeout=5, cached=False)
                lag += high - max(committed.offset, 0)
            return Backlog(lag, 0)

        return await asyncio.to_thread(measure)

    async def close(self) -> None:
        await asyncio.to_thread(self._consumer.close)
        await asyncio.to_thread(self._producer.flush, 10)
