"""``RedisStore``'s join records, feedback ids and KPI counters.

Keys (all under the store's prefix; names quoted as in ``redis_store.py``):

- ``j:{decision}``: a decision's join record, a hash kept for the attribution
  window: ``u`` its user, ``v`` its version, ``a`` when (epoch seconds), and
  per slot that showed something ``s:{slot}`` = ``[rule, content]`` (JSON);
  feedback without an id marks it counted with ``d:{type}:{slot}``.
- ``fid:{id}``: a feedback id's payload fingerprint, for the attribution window.
- ``{user}:j`` and ``{user}:f``: the decision ids of the user's join records and
  the feedback ids counted on them, so erasure finds them (``redis_users.py``).
- ``kpi:versions``: the versions with counters; ``kpi:{version}:all`` the totals
  and ``kpi:{version}:{YYYY-MM-DD}`` each UTC day's (hashes of
  ``{measure}:[slot, rule, content]`` -> count), ``kpi:{version}:days`` the days.

Writes go in short chunks, each atomic (a transaction, or one script call),
so no call holds Redis long; counting feedback is one script per chunk, so
two server processes never count an item twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from .feedback import DECISIONS, IMPRESSION, MEASURES, VALUE, Join, Outcome, Tally
from .kpis import KpiCounts, KpiQuery, add_counts

if TYPE_CHECKING:
    from .redis_store import RedisStore

JOINS_PER_CALL = 64  # join records per transaction
TALLIES_PER_CALL = 100  # feedback items per script call: about a millisecond of Redis time

# KEYS: join records. Replies: each one's fields and values, flat (empty when it is gone). One script
# rather than a pipeline of HGETALLs: one command to send and one reply to parse.
JOINS_SCRIPT = """
local replies = {}
for k = 1, #KEYS do
  replies[k] = redis.call('HGETALL', KEYS[k])
end
return replies
"""
JOINS_SHA = hashlib.sha1(JOINS_SCRIPT.encode()).hexdigest()

# KEYS: every key the call touches. ARGV[1]: the id keys' TTL (ms). Then, per item: 'i' (deduplicated by
# its id key) or 'd' (by a field of its join record), the dedupe key's index, the fingerprint or field,
# the total and day counter keys' indexes, the measure's field ('' for none), the value's field ('' for
# none) and the value. Replies, per item: 'a' accepted, 'd' duplicate, 'c' conflict.
COUNT_SCRIPT = """
local replies = {}
local ttl = ARGV[1]
local i, n = 2, 0
while i <= #ARGV do
  local kind, dedupe, mark = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  local total, day = KEYS[tonumber(ARGV[i + 3])], KEYS[tonumber(ARGV[i + 4])]
  local field, value_field, value = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local outcome = 'a'
  if kind == 'i' then
    local first = redis.call('GET', dedupe)
    if first then
      outcome = first == mark and 'd' or 'c'
    else
      redis.call('SET', dedupe, mark, 'PX', ttl)
    end
  elseif redis.call('EXISTS', dedupe) == 1 and redis.call('HSETNX', dedupe, mark, 1) == 0 then
    outcome = 'd'
  end
  if outcome == 'a' then
    if field ~= '' then
      redis.call('HINCRBY', total, field, 1)
      redis.call('HINCRBY', day, field, 1)
    end
    if value_field ~= '' then
      redis.call('HINCRBYFLOAT', total, value_field, value)
      redis.call('HINCRBYFLOAT', day, value_field, value)
    end
  end
  n = n + 1
  replies[n] = outcome
end
return replies
"""
COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()
OUTCOMES = {b"a": Outcome.ACCEPTED, b"d": Outcome.DUPLICATE, b"c": Outcome.CONFLICT}


def counter_field(measure: str, slot: str, rule: str, content: str) -> str:
    return f"{measure}:{json.dumps([slot, rule, content], ensure_ascii=False, separators=(',', ':'))}"


class RedisFeedback:
    """Feedback's part of a ``RedisStore``: writes through its write connections, counted in its round trips
    (except ``keep_decisions``, which runs in the background and is not a caller's round trip)."""

    def __init__(self, store: RedisStore):
        self.store = store
        self.prefix = store.prefix

    # --- keys ---

    def join_key(self, decision_id: str) -> str:
        return f"{self.prefix}j:{quote(decision_id, safe='')}"

    def id_key(self, item_id: str) -> str:
        return f"{self.prefix}fid:{quote(item_id, safe='')}"

    def versions_key(self) -> str:
        return f"{self.prefix}kpi:versions"

    def counters_key(self, version: str, day: str | None) -> str:
        return f"{self.prefix}kpi:{quote(version, safe='')}:{day or 'all'}"

    def days_key(self, version: str) -> str:
        return f"{self.prefix}kpi:{quote(version, safe='')}:days"

    # --- writes ---

    async def keep_decisions(self, joins: Sequence[Join], keep: float, impressions: bool) -> None:
        ttl = math.ceil(keep * 1000)
        client = self.store._writes()
        for start in range(0, len(joins), JOINS_PER_CALL):
            chunk = joins[start : start + JOINS_PER_CALL]
            counters: dict[tuple[str, str], int] = defaultdict(int)  # (key, field) -> increment
            days: set[tuple[str, str]] = set()
            async with client.pipeline(transaction=True) as pipe:
                for join in chunk:
                    key = self.join_key(join.decision_id)
                    fields = {"u": join.user_id, "v": join.version, "a": repr(join.at)}
                    day = join.day
                    days.add((join.version, day))
                    for slot, (rule, content) in join.slots.items():
                        fields[f"s:{slot}"] = json.dumps([rule, content], ensure_ascii=False)
                        for measure in (DECISIONS, MEASURES[IMPRESSION]) if impressions else (DECISIONS,):
                            name = counter_field(measure, slot, rule, content)
                            counters[self.counters_key(join.version, None), name] += 1
                            counters[self.counters_key(join.version, day), name] += 1
                    pipe.hset(key, mapping=fields)
                    pipe.pexpire(key, ttl)
                    index = self.store.decisions_index_key(join.user_id)  # how erasure finds the user's joins
                    pipe.sadd(index, join.decision_id)
                    pipe.pexpire(index, ttl)
                for (key, name), amount in counters.items():
                    pipe.hincrby(key, name, amount)
                for version, day in days:
                    pipe.sadd(self.versions_key(), version)
                    pipe.sadd(self.days_key(version), day)
                await pipe.execute()

    async def joins(self, decision_ids: Sequence[str]) -> dict[str, Join]:
        wanted = list(dict.fromkeys(decision_ids))
        if not wanted:
            return {}
        keys = [self.join_key(decision_id) for decision_id in wanted]
        # A read, on the readers' pool: it must not queue behind the writes for the two write connections.
        replies = await self.store._script(self.store._reads(), JOINS_SCRIPT, JOINS_SHA, keys, [])
        found = {}
        for decision_id, flat in zip(wanted, replies, strict=True):
            if not flat:
                continue
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            slots = {}
            for name, value in fields.items():
                if name.startswith(b"s:"):
                    rule, content = json.loads(value)
                    slots[name[2:].decode()] = (rule, content)
            if b"v" in fields:
                found[decision_id] = Join(
                    decision_id, fields[b"u"].decode(), fields[b"v"].decode(), float(fields[b"a"]), slots
                )
        return found

    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        outcomes: list[Outcome] = []
        ttl = str(math.ceil(keep * 1000))
        for start in range(0, len(tallies), TALLIES_PER_CALL):
            chunk = tallies[start : start + TALLIES_PER_CALL]
            await self._index_ids(chunk, ttl)
            keys, args = self._count_args(chunk, ttl)
            replies = await self.store._script(self.store._writes(), COUNT_SCRIPT, COUNT_SHA, keys, args)
            outcomes += (OUTCOMES[reply] for reply in replies)
        return outcomes

    async def _index_ids(self, tallies: Sequence[Tally], ttl: str) -> None:
        """Put each item id under its user before it is counted, so erasure finds every id kept."""
        indexed = [tally for tally in tallies if tally.id is not None and tally.user_id]
        if not indexed:
            return
        async with self.store._writes().pipeline(transaction=False) as pipe:
            for tally in indexed:
                index = self.store.feedback_index_key(tally.user_id)
                pipe.sadd(index, tally.id)
                pipe.pexpire(index, ttl)
            self.store.round_trips += 1
            await pipe.execute()

    def _count_args(self, tallies: Sequence[Tally], ttl: str) -> tuple[list[str], list[str]]:
        """KEYS and ARGV for ``COUNT_SCRIPT``; see the comment above it."""
        index: dict[str, int] = {}

        def key_index(key: str) -> str:
            return str(index.setdefault(key, len(index) + 1))

        fields: dict[tuple[str, str, str, str], str] = {}  # a batch repeats a few slots, rules and contents

        def field(measure: str, tally: Tally) -> str:
            key = (measure, tally.slot, tally.rule, tally.content)
            name = fields.get(key)
            if name is None:
                name = fields[key] = counter_field(*key)
            return name

        counters: dict[tuple[str, str | None], str] = {}

        def counters_index(version: str, day: str | None) -> str:
            found = counters.get((version, day))
            if found is None:
                found = counters[version, day] = key_index(self.counters_key(version, day))
            return found

        args = [ttl]
        for tally in tallies:
            if tally.id is not None:
                args += ["i", key_index(self.id_key(tally.id)), tally.fingerprint]
            else:
                args += ["d", key_index(self.join_key(tally.decision_id)), f"d:{tally.type}:{tally.slot}"]
            args += [
                counters_index(tally.version, None),
                counters_index(tally.version, tally.day),
                field(tally.measure, tally) if tally.measure else "",
                field(VALUE, tally) if tally.value else "",
                repr(tally.value),
            ]
        return list(index), args

    # --- reads ---

    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        client = self.store._writes()
        if query.version is not None:
            versions = [query.version]
        else:
            self.store.round_trips += 1
            versions = sorted(member.decode() for member in await client.smembers(self.versions_key()))
        if not versions:
            return {}
        wanted: list[tuple[str, str | None]] = []
        if query.by_day:
            async with client.pipeline(transaction=False) as pipe:
                for version in versions:
                    pipe.smembers(self.days_key(version))
                self.store.round_trips += 1
                listed = await pipe.execute()
            for version, days in zip(versions, listed, strict=True):
                wanted += [(version, day.decode()) for day in sorted(days) if query.has_day(day.decode())]
        else:
            wanted = [(version, None) for version in versions]
        async with client.pipeline(transaction=False) as pipe:
            for version, day in wanted:
                pipe.hgetall(self.counters_key(version, day))
            self.store.round_trips += 1
            replies = await pipe.execute()
        found: KpiCounts = {}
        for (version, _), fields in zip(wanted, replies, strict=True):
            for name, amount in fields.items():
                measure, _, where = name.decode().partition(":")
                slot, rule, content = json.loads(where)
                add_counts(found, (version, slot, rule, content), measure, float(amount))
        return found
