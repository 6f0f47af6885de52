"""A writer of the Redis store's earlier key layout, the counterpart of ``store_migration``'s reader.

It stores what the earlier record script stored: per event, each of its series
at each kept resolution in its own hash (``B`` the count, ``Bt`` the total,
``last`` on the day series), the series' name in the user's index ``k``, and
profile attributes in ``p``, with the TTLs those keys had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from tailor.runtime.buckets import Scheme, encode_attribute, plan_batch
from tailor.runtime.events import Event
from tailor.runtime.redis_keys import key_part
from tailor.runtime.redis_store import PROFILE_TTL
from tailor.runtime.store_migration import OldLayout


def write_events(client: redis.Redis, layout: OldLayout, events: Sequence[Event], now: float) -> None:
    scheme = Scheme.for_retention()
    for item in plan_batch(events, now, scheme):
        for write in item.writes:
            key = layout.series_key(write.user_id, write.event, write.key, write.resolution)
            client.hincrby(key, str(write.bucket), 1)
            client.hincrbyfloat(key, f"{write.bucket}t", write.value)
            if write.resolution is scheme.day:
                last = client.hget(key, "last")
                if last is None or float(last) < write.ts:
                    client.hset(key, "last", repr(write.ts))
            ttl = math.ceil(write.ttl * 1000)
            index = layout.series_index_key(write.user_id)
            client.sadd(index, f"{key_part(write.event)}:{key_part(write.key)}")
            for touched in (key, index):
                if client.pttl(touched) < ttl:
                    client.pexpire(touched, ttl)


def write_profile(client: redis.Redis, layout: OldLayout, user_id: str, attributes: Mapping[str, Any]) -> None:
    key = layout.profile_key(user_id)
    client.hset(key, mapping={name: encode_attribute(name, value) for name, value in attributes.items()})
    client.pexpire(key, math.ceil(PROFILE_TTL * 1000))
