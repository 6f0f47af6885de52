"""``RedisStore``'s join records, feedback ids and KPI counters.

Keys (all under the store's prefix; names encoded by ``redis_keys.key_part``):

- ``j:{decision}``: a decision's join record, a hash kept for the attribution
  window: ``u`` its user, ``v`` its version, ``a`` when (epoch seconds), and
  per slot that showed something ``s:{slot}`` = ``[rule, content]`` (JSON),
  ``m`` the scores of the models it ran (JSON, when there were any);
  feedback without an id marks it counted with ``d:{type}:{slot}``, and any
  counted feedback notes its first time as ``f:{type}:{slot}`` (``mark_feedback``).
- ``fid:{id}``: a feedback id's payload fingerprint, for the attribution window. On a cluster it is
  in the user's shard, and ``claim:{id}``, in the shard of the id, says which payload and user the id was
  first counted for, so an id reused for another user's decision is a conflict too.
- ``{user}:j`` and ``{user}:f``: the decision ids of the user's join records and
  the feedback ids counted on them, so erasure finds them (``redis_users.py``); a
  conversion also names its phase in ``{user}:x``, the phases with the user's value.
- ``{x:{experiment}:{phase}}:f:all`` and ``...:f:{YYYY-MM-DD}``: an experiment's counters per phase
  (``experiment_counts.py``), hashes of ``{measure}:{arm}`` -> amount; ``...:f:days`` the days;
  ``...:v`` each converted user's value in the phase (for ``value_squares``), kept as long as exposures.
  A join record's ``x`` holds the experiments it exposed its user to, as JSON
  ``[[experiment, arm, phase, [slot, ...]], ...]``.
- ``kpi:versions``: the versions with counters; ``kpi:{version}:all`` the totals
  and ``kpi:{version}:{YYYY-MM-DD}`` each UTC day's (hashes of
  ``{measure}:[slot, rule, content]`` -> count), ``kpi:{version}:days`` the days.

Writes go in short chunks, each one atomic script call, so no call holds
Redis long: keeping served decisions (``redis_served.py``; with
``--impressions served``, their impression events too) skips a decision
already kept, so a chunk sent again counts nothing twice; counting feedback is
one script per chunk, so two server processes never count an item twice. The scripts take their items as one JSON
argument: redis-py packs arguments one by one in Python, which costs the
server more than the JSON. The counters are read (summed over their shards)
by ``redis_counter_reads.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from . import experiment_counts as arm_counts
from .feedback import (
    VALUE,
    FeedbackMark,
    Join,
    JoinArm,
    Outcome,
    Tally,
)
from .redis_counter_reads import CounterReads
from .redis_keys import key_part
from .redis_kpi_fields import counter_field
from .redis_served import ServedDecisions
from .redis_slots import by_key as by_shard
from .store import EXPOSURE_TTL

if TYPE_CHECKING:
    from .redis_store import RedisStore

TALLIES_PER_CALL = 100  # feedback items per script call: about a millisecond of Redis time
# On a Redis Cluster: the shards of the feedback keys (join records, feedback ids, KPI and experiment
# counters), each a hash tag of its own, so their writes spread over the masters. A read sums them all.
FEEDBACK_SHARDS = 8


# KEYS: join records. Reply: per key, its fields and values (flat, as HGETALL's; empty when the record is
# gone). One script rather than a pipeline of HGETALLs: one command to send and one reply, whose nesting the
# client's parser unpacks in C; Redis does no more than the reads (building JSON in Lua cost it several
# times as much as the HGETALLs themselves).
JOINS_SCRIPT = """
local joins = {}
for k = 1, #KEYS do
  joins[k] = redis.call('HGETALL', KEYS[k])
end
return joins
"""
JOINS_SHA = hashlib.sha1(JOINS_SCRIPT.encode()).hexdigest()
# An item's fate so far, read only: 'd' its id was counted with the same fingerprint, or (an item without
# an id) its join record has its field; 'c' its id was counted with another; 'a' it was not counted yet.
COUNTED_BEFORE = """
local function counted_before(kind, dedupe, mark)
  if kind == 'i' then
    local first = redis.call('GET', dedupe)
    if not first then
      return 'a'
    end
    return first == mark and 'd' or 'c'
  end
  if redis.call('EXISTS', dedupe) == 1 and redis.call('HEXISTS', dedupe, mark) == 1 then
    return 'd'
  end
  return 'a'
end
"""
# KEYS: every key the call touches. ARGV[1]: the id keys' TTL (ms). ARGV[2]: JSON, per item: 'i'
# (deduplicated by its id key) or 'd' (by a field of its join record), the dedupe key's index, the
# fingerprint or field, the total and day counter keys' indexes, the measure's field ('' for none), the
# value's field ('' for none), the value, then the experiment arms it counts for (per arm the indexes of
# the phase's total, day, days and users' values keys, the arm, and the index of its user's phases index
# with the phase's name there, which a conversion adds to; see experiment_counts.py), its user's feedback
# ids index ([key index, id], or [] for an item without an id: an id newly kept is added, for erasure) and,
# when there are arms, its user, measure ('' for none), '1' for a conversion ('' otherwise) and its day
# (as KEEP_SCRIPT, JSON: the client packs arguments slowly). Replies, per item: 'a' accepted,
# 'd' duplicate, 'c' conflict.
COUNT_SCRIPT = (
    COUNTED_BEFORE
    + """
local replies = {}
local ttl = ARGV[1]
for n, t in ipairs(cjson.decode(ARGV[2])) do
  local kind, dedupe, mark = t[1], KEYS[t[2]], t[3]
  local total, day = KEYS[t[4]], KEYS[t[5]]
  local field, value_field, value = t[6], t[7], t[8]
  local outcome = counted_before(kind, dedupe, mark)
  if outcome == 'a' and kind == 'i' then
    redis.call('SET', dedupe, mark, 'PX', ttl)
    if #t[10] > 0 then
      local ids = KEYS[t[10][1]]
      redis.call('SADD', ids, t[10][2])
      redis.call('PEXPIRE', ids, ttl)
    end
  elseif outcome == 'a' and redis.call('EXISTS', dedupe) == 1 then
    redis.call('HSET', dedupe, mark, 1)
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
    local user, measure, conversion, day_name = t[11], t[12], t[13], t[14]
    for _, a in ipairs(t[9]) do
      local arm_total, arm_day, arm_days, arm_users, arm = KEYS[a[1]], KEYS[a[2]], KEYS[a[3]], KEYS[a[4]], a[5]
      if measure ~= '' then
        redis.call('HINCRBY', arm_total, measure .. ':' .. arm, 1)
        redis.call('HINCRBY', arm_day, measure .. ':' .. arm, 1)
      end
      if value_field ~= '' then
        redis.call('HINCRBYFLOAT', arm_total, 'value:' .. arm, value)
        redis.call('HINCRBYFLOAT', arm_day, 'value:' .. arm, value)
      end
      redis.call('SADD', arm_days, day_name)
      if conversion == '1' then
        local before = redis.call('HGET', arm_users, user)
        local after = tonumber(redis.call('HINCRBYFLOAT', arm_users, user, value))
        redis.call('PEXPIRE', arm_users, ARM_USERS_TTL)
        if a[6] > 0 then
          redis.call('SADD', KEYS[a[6]], a[7])
          redis.call('PEXPIRE', KEYS[a[6]], ARM_USERS_TTL)
        end
        local was = 0
        if before then
          was = tonumber(before)
        else
          redis.call('HINCRBY', arm_total, 'converters:' .. arm, 1)
        end
        redis.call('HINCRBYFLOAT', arm_total, 'value_squares:' .. arm, after * after - was * was)
      end
    end
  end
  replies[n] = outcome
end
return replies
""".replace("ARM_USERS_TTL", str(math.ceil(EXPOSURE_TTL * 1000)))
)
COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()
OUTCOMES = {b"a": Outcome.ACCEPTED, b"d": Outcome.DUPLICATE, b"c": Outcome.CONFLICT}

# On a cluster, before the count: KEYS: feedback ids' claims (``id_claim_key``, one shard's); ARGV[1]: their
# TTL (ms); ARGV[1 + k]: KEYS[k]'s claim, ``FINGERPRINT:USER``. A claim absent is made. Reply per key: 1 when
# the id is the item's (claimed now, or before by the same payload), 0 when another payload claimed it.
CLAIM_SCRIPT = """
local replies = {}
for k = 1, #KEYS do
  local first = redis.call('GET', KEYS[k])
  if first and first ~= ARGV[k + 1] then
    replies[k] = 0
  else
    if not first then
      redis.call('SET', KEYS[k], ARGV[k + 1], 'PX', ARGV[1])
    end
    replies[k] = 1
  end
end
return replies
"""
CLAIM_SHA = hashlib.sha1(CLAIM_SCRIPT.encode()).hexdigest()

# KEYS: join records. ARGV: per key, a mark's field and its time. A record that is gone is not made anew.
MARK_SCRIPT = """
for k = 1, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('HSETNX', KEYS[k], ARGV[2 * k - 1], ARGV[2 * k])
  end
end
return 0
"""
MARK_SHA = hashlib.sha1(MARK_SCRIPT.encode()).hexdigest()


class RedisFeedback:
    """Feedback's part of a ``RedisStore``: writes through its write connections, counted in its round trips
    (except ``keep_decisions``, which runs in the background and is not a caller's round trip)."""

    def __init__(self, store: RedisStore):
        self.store = store
        self.prefix = store.prefix
        self.served = ServedDecisions(self)  # the join records of served decisions: redis_served.py
        self.counters = CounterReads(self)  # KPI rows and experiments' arm totals: redis_counter_reads.py

    # --- keys ---
    # On one Redis every shard is 0 and the keys are named as they always were. On a cluster the keys
    # of a user's feedback go to shard ``shard_of(user)`` of ``FEEDBACK_SHARDS``, a hash tag ``{f:N}``:
    # one script call touches one slot, and no one key takes every increment.

    def shard_of(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode()) % FEEDBACK_SHARDS if self.store.cluster else 0

    def shards(self) -> range:
        """The shards a read sums over: every one on a cluster, shard 0 on one Redis."""
        return range(FEEDBACK_SHARDS if self.store.cluster else 1)

    def _head(self, shard: int) -> str:
        return f"{self.prefix}{{f:{shard}}}:" if self.store.cluster else self.prefix

    def join_key(self, decision_id: str, shard: int = 0) -> str:
        return f"{self._head(shard)}j:{key_part(decision_id)}"

    def id_key(self, item_id: str, shard: int = 0) -> str:
        return f"{self._head(shard)}fid:{key_part(item_id)}"

    def id_shard(self, item_id: str) -> int:
        """On a cluster, the shard of a feedback id's claim: chosen by the id, so every reuse meets it."""
        return zlib.crc32(item_id.encode()) % FEEDBACK_SHARDS

    def id_claim_key(self, item_id: str) -> str:
        """On a cluster, which payload (and user) a feedback id was first counted for: ``FINGERPRINT:USER``."""
        return f"{self._head(self.id_shard(item_id))}claim:{key_part(item_id)}"

    def versions_key(self, shard: int = 0) -> str:
        return f"{self._head(shard)}kpi:versions"

    def counters_key(self, version: str, day: str | None, shard: int = 0) -> str:
        return f"{self._head(shard)}kpi:{key_part(version)}:{day or 'all'}"

    def days_key(self, version: str, shard: int = 0) -> str:
        return f"{self._head(shard)}kpi:{key_part(version)}:days"

    def _arm_phase(self, experiment: str, phase: str, shard: int) -> str:
        if self.store.cluster:
            return f"{self._head(shard)}x:{key_part(experiment)}:{phase}"
        return self.store._phase(experiment, phase)

    def arm_counters_key(self, experiment: str, phase: str, day: str | None, shard: int = 0) -> str:
        return f"{self._arm_phase(experiment, phase, shard)}:f:{day or 'all'}"

    def arm_days_key(self, experiment: str, phase: str, shard: int = 0) -> str:
        return f"{self._arm_phase(experiment, phase, shard)}:f:days"

    def arm_users_key(self, experiment: str, phase: str, shard: int = 0) -> str:
        return f"{self._arm_phase(experiment, phase, shard)}:v"

    # --- writes ---

    async def keep_decisions(self, joins: Sequence[Join], keep: float, impressions: bool) -> None:
        await self.served.keep(joins, keep, impressions)

    async def joins(self, decision_ids: Sequence[str], marks: bool = True) -> dict[str, Join]:
        wanted = list(dict.fromkeys(decision_ids))
        if not wanted:
            return {}
        # A read, on the readers' pool: it must not queue behind the writes for the two write connections.
        # A decision id does not say its user, so on a cluster every shard is asked (one call each).
        calls = [([self.join_key(decision_id, shard) for decision_id in wanted], []) for shard in self.shards()]
        replies = await self.store._scripts(self.store._reads(), JOINS_SCRIPT, JOINS_SHA, calls)
        kept: list[list[bytes]] = [[] for _ in wanted]
        for reply in replies:
            for n, flat in enumerate(reply):
                kept[n] = kept[n] or flat
        found = {}
        shown: dict[bytes, tuple[str, str]] = {}  # the records of a batch show a few rules and contents
        for decision_id, flat in zip(wanted, kept, strict=True):
            join = _join(decision_id, flat, marks, shown)
            if join is not None:
                found[decision_id] = join
        return found

    async def mark_feedback(self, marks: Sequence[tuple[str, FeedbackMark]]) -> None:
        for start in range(0, len(marks), TALLIES_PER_CALL):
            chunk = marks[start : start + TALLIES_PER_CALL]
            args = [part for _, mark in chunk for part in (f"f:{mark.type}:{mark.slot}", repr(float(mark.ts)))]
            # Every shard: the script marks the one record that exists and makes none anew.
            calls = [([self.join_key(decision_id, shard) for decision_id, _ in chunk], args) for shard in self.shards()]
            await self.store._scripts(self.store._writes(), MARK_SCRIPT, MARK_SHA, calls)

    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        outcomes: list[Outcome] = []
        ttl = str(math.ceil(keep * 1000))
        if self.store.cluster:
            return await self._count_by_shard(tallies, ttl)
        for start in range(0, len(tallies), TALLIES_PER_CALL):
            keys, args = self._count_args(tallies[start : start + TALLIES_PER_CALL], ttl)
            replies = await self.store._script(self.store._writes(), COUNT_SCRIPT, COUNT_SHA, keys, args)
            outcomes += (OUTCOMES[reply] for reply in replies)
        return outcomes

    async def _count_by_shard(self, tallies: Sequence[Tally], ttl: str) -> list[Outcome]:
        """A cluster's count: the users' indexes first (their slots), then a call per shard and chunk, one
        pipeline per node; the outcomes in the tallies' order."""
        await self.served.add_to_indexes(
            [(self.store.feedback_index_key(t.user_id), t.id) for t in tallies if t.id is not None], ttl
        )
        phases = [
            (self.store.exposures_index_key(t.user_id), self.store.phase_name(experiment, phase))
            for t in tallies
            if t.arms and arm_counts.is_conversion(t)
            for experiment, phase, _ in t.arms
        ]
        await self.served.add_to_indexes(phases, str(math.ceil(EXPOSURE_TTL * 1000)))
        outcomes: list[Outcome] = [Outcome.ACCEPTED] * len(tallies)
        for n in await self._claim(tallies, ttl):
            outcomes[n] = Outcome.CONFLICT
        counted = [n for n, outcome in enumerate(outcomes) if outcome is Outcome.ACCEPTED]
        order: list[list[int]] = []
        calls = []
        for group in by_shard(counted, lambda n: self.shard_of(tallies[n].user_id)).values():
            for start in range(0, len(group), TALLIES_PER_CALL):
                chunk = group[start : start + TALLIES_PER_CALL]
                order.append(chunk)
                calls.append(self._count_args([tallies[n] for n in chunk], ttl))
        for chunk, replies in zip(
            order, await self.store._scripts(self.store._writes(), COUNT_SCRIPT, COUNT_SHA, calls), strict=True
        ):
            for n, reply in zip(chunk, replies, strict=True):
                outcomes[n] = OUTCOMES[reply]
        return outcomes

    async def _claim(self, tallies: Sequence[Tally], ttl: str) -> list[int]:
        """A cluster's claims of the tallies' feedback ids, in the ids' shards (a pipeline per node): the
        indexes of the tallies whose id another payload claimed first, a conflict whoever's decision it
        named. The count that follows dedupes in the user's shard, so an item claimed and not yet counted
        (the call cut short) is counted when it is sent again, once."""
        with_ids = [n for n, tally in enumerate(tallies) if tally.id is not None]
        order: list[list[int]] = []
        calls = []
        for group in by_shard(with_ids, lambda n: self.id_shard(tallies[n].id or "")).values():
            for start in range(0, len(group), TALLIES_PER_CALL):
                chunk = group[start : start + TALLIES_PER_CALL]
                order.append(chunk)
                keys = [self.id_claim_key(tallies[n].id or "") for n in chunk]
                calls.append((keys, [ttl, *(f"{tallies[n].fingerprint}:{tallies[n].user_id}" for n in chunk)]))
        replies = await self.store._scripts(self.store._writes(), CLAIM_SCRIPT, CLAIM_SHA, calls)
        return [
            n for chunk, reply in zip(order, replies, strict=True) for n, ok in zip(chunk, reply, strict=True) if not ok
        ]

    def _count_args(self, tallies: Sequence[Tally], ttl: str) -> tuple[list[str], list[str | bytes]]:
        """KEYS and ARGV for ``COUNT_SCRIPT``; see the comment above it. On a cluster the tallies share a
        shard, and the users' indexes are written beforehand."""
        index: dict[str, int] = {}
        shard = self.shard_of(tallies[0].user_id) if tallies else 0
        cluster = self.store.cluster

        def key_index(key: str) -> int:
            return index.setdefault(key, len(index) + 1)

        fields: dict[tuple[str, str, str, str], str] = {}  # a batch repeats a few slots, rules and contents

        def field(measure: str, tally: Tally) -> str:
            key = (measure, tally.slot, tally.rule, tally.content)
            name = fields.get(key)
            if name is None:
                name = fields[key] = counter_field(*key)
            return name

        counters: dict[tuple[str, str | None], int] = {}

        def counters_index(version: str, day: str | None) -> int:
            found = counters.get((version, day))
            if found is None:
                found = counters[version, day] = key_index(self.counters_key(version, day, shard))
            return found

        items = []
        for tally in tallies:
            if tally.id is not None:
                dedupe = ["i", key_index(self.id_key(tally.id, shard)), tally.fingerprint]
            else:
                dedupe = ["d", key_index(self.join_key(tally.decision_id, shard)), f"d:{tally.type}:{tally.slot}"]
            item = [
                *dedupe,
                counters_index(tally.version, None),
                counters_index(tally.version, tally.day),
                field(tally.measure, tally) if tally.measure else "",
                field(VALUE, tally) if tally.value else "",
                repr(tally.value),
                [
                    [
                        key_index(self.arm_counters_key(experiment, phase, None, shard)),
                        key_index(self.arm_counters_key(experiment, phase, tally.day, shard)),
                        key_index(self.arm_days_key(experiment, phase, shard)),
                        key_index(self.arm_users_key(experiment, phase, shard)),
                        arm,
                        0 if cluster else key_index(self.store.exposures_index_key(tally.user_id)),
                        self.store.phase_name(experiment, phase),
                    ]
                    for experiment, phase, arm in tally.arms
                ],
                [key_index(self.store.feedback_index_key(tally.user_id)), tally.id]
                if tally.id is not None and not cluster
                else [],
            ]
            if tally.arms:
                conversion = "1" if arm_counts.is_conversion(tally) else ""
                item += [tally.user_id, tally.measure or "", conversion, tally.day]
            items.append(item)
        return list(index), [ttl, orjson.dumps(items)]


def _join(
    decision_id: str, flat: Sequence[bytes], marks: bool = True, parsed: dict[bytes, tuple[str, str]] | None = None
) -> Join | None:
    """A join record from its hash's fields and values (``KEEP_SCRIPT``'s, and the marks since, unless not
    ``marks``); None when the record is gone, or lacks its user, version or time. Names are compared as
    bytes: a batch reads a hundred records, and decoding every name cost more than the rest. ``parsed``
    keeps the slots' ``[rule, content]`` values parsed so far, for the next records of a read."""
    user = version = at = exposed = models = None
    parsed = {} if parsed is None else parsed
    shown: dict[str, tuple[str, str]] = {}
    feedback = []
    pairs = iter(flat)
    for name, value in zip(pairs, pairs, strict=True):
        head = name[:2]
        if head == b"s:":
            pair = parsed.get(value)
            if pair is None:
                rule, content = orjson.loads(value)
                pair = parsed[value] = (rule, content)
            shown[name[2:].decode()] = pair
        elif head == b"f:":
            if marks:
                kind, _, slot = name[2:].decode().partition(":")
                feedback.append(FeedbackMark(slot, kind, float(value)))
        elif name == b"u":
            user = value.decode()
        elif name == b"v":
            version = value.decode()
        elif name == b"a":
            at = float(value)
        elif name == b"x":
            exposed = value
        elif name == b"m":
            models = value
    if user is None or version is None or at is None:
        return None
    return Join(
        decision_id,
        user,
        version,
        at,
        shown,
        tuple(JoinArm(experiment, arm, phase, tuple(on)) for experiment, arm, phase, on in orjson.loads(exposed))
        if exposed
        else (),
        json.loads(models) if models is not None else {},
        tuple(feedback),
    )
