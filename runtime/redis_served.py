"""Keeping served decisions in Redis: their join records, "decisions" counters, and served impressions.

Every decision ``/v1/decide`` serves leaves a join record (what feedback
joins to), a count in the KPI counters and, with ``--impressions served``, an
impression of each slot it filled, recorded as a behavioural event. They are
written off the response path, in batches (``Attribution``), by
``KEEP_SCRIPT``: one call per ``DECISIONS_PER_CALL`` decisions, atomic, and
skipping a decision whose join record exists, so a call sent again counts
nothing twice. On a Redis Cluster the users' slots take their part first
(``SERVED_SCRIPT``), so that erasure finds every join record.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from . import experiment_counts as arm_counts
from .buckets import check_batch, kept_buckets, series_keys
from .events import Event, EventRejected
from .feedback import DECISIONS, IMPRESSION, MEASURES, Join
from .redis_kpi_fields import counted_fields
from .redis_series import COUNTER, LATEST, SERIES_FINISH, SERIES_WRITE
from .redis_slots import by_key as by_shard
from .redis_slots import by_slot

if TYPE_CHECKING:
    from .redis_feedback import RedisFeedback
    from .redis_store import RedisStore


# Served decisions per keep script call: with impressions served, a decision updates about a dozen series,
# so a call holds Redis about as long as a record call of ``EVENTS_PER_CALL`` events.
DECISIONS_PER_CALL = 16

# Lua, shared by both scripts below: a decision's impression events, merged into its user hash with one
# HMGET and one HSET. ``imp``: [user hash key index, bucket set index, the decision's time, [series, count,
# series, count, ...]] (a series as ``TYPE:KEY``, each once: the slots' "any" series summed); ``header``:
# [the series fields' prefix, the latest-time fields' prefix, the call's bucket sets]. A bucket set is
# [per kept resolution its field suffix, the bucket, the hash's TTL for it (ms), the oldest bucket kept and
# the prune threshold (``series_merge``'s); 1 when the day series is among them, which keeps the latest
# event time]. An impression's value is 1, so a series' total is its count.
IMPRESSIONS_ADD = """
local function impressions_add(imp, header)
  local key, ts, names = KEYS[imp[1]], imp[3], imp[4]
  local set, day = header[3][imp[2]][1], header[3][imp[2]][2] == 1
  local counter, latest = header[1], header[2]
  local fields = {}
  for s = 1, #names, 2 do
    for _, r in ipairs(set) do
      fields[#fields + 1] = counter .. names[s] .. r[1]
    end
    if day then
      fields[#fields + 1] = latest .. names[s]
    end
  end
  local got = redis.call('HMGET', key, unpack(fields))
  local out, n, ttl = {}, 0, 0
  for s = 1, #names, 2 do
    local count = names[s + 1]
    for _, r in ipairs(set) do
      n = n + 1
      out[#out + 1] = fields[n]
      out[#out + 1] = series_merge(got[n], r[2], count, count, r[4], r[5])
      if r[3] > ttl then
        ttl = r[3]
      end
    end
    if day then
      n = n + 1
      local last = got[n]
      if not last or tonumber(last) < tonumber(ts) then
        out[#out + 1] = fields[n]
        out[#out + 1] = ts
      end
    end
  end
  redis.call('HSET', key, unpack(out))
  series_touch(key, ttl)
end
"""

# KEYS: every key the call touches. ARGV[1]: the join records' TTL (ms); ARGV[2]: JSON, per decision: its
# join record's key index, the record's fields and values (flat), the total and day counter keys' indexes,
# the counter fields it adds 1 to, its impression events (``IMPRESSIONS_ADD``'s ``imp``, or [] for none),
# its experiment arms' served impressions ([total key index, day key index, field]), and its user's
# decisions index [key index, decision id], which erasure reads (``redis_users.py``); ARGV[3]: JSON,
# [set key index, member] to add (versions, days, experiment phases' days); ARGV[4]: JSON,
# ``IMPRESSIONS_ADD``'s ``header``. A decision whose join record exists is skipped whole: a call that is
# sent again counts nothing twice. JSON rather than one argument a value: the client packs arguments one
# by one, in Python, which costs more.
KEEP_SCRIPT = (
    SERIES_WRITE
    + SERIES_FINISH
    + IMPRESSIONS_ADD
    + """
local ttl = ARGV[1]
local header = cjson.decode(ARGV[4])
local kept = 0
-- The counters' increments summed over the call, one HINCRBY a field at the end: the decisions of a call
-- share a few counter keys and fields, and a command from Lua costs more than a table update.
local counts = {}
local function count(k, field)
  local fields = counts[k]
  if not fields then
    fields = {}
    counts[k] = fields
  end
  fields[field] = (fields[field] or 0) + 1
end
for _, d in ipairs(cjson.decode(ARGV[2])) do
  local join = KEYS[d[1]]
  if redis.call('EXISTS', join) == 0 then
    redis.call('HSET', join, unpack(d[2]))
    redis.call('PEXPIRE', join, ttl)
    for _, field in ipairs(d[5]) do
      count(d[3], field)
      count(d[4], field)
    end
    if #d[6] > 0 then
      impressions_add(d[6], header)
    end
    for _, a in ipairs(d[7]) do
      count(a[1], a[3])
      count(a[2], a[3])
    end
    if #d[8] > 0 then
      local decisions = KEYS[d[8][1]]
      redis.call('SADD', decisions, d[8][2])
      redis.call('PEXPIRE', decisions, ttl)
    end
    kept = kept + 1
  end
end
for k, fields in pairs(counts) do
  for field, n in pairs(fields) do
    redis.call('HINCRBY', KEYS[k], field, n)
  end
end
for _, s in ipairs(cjson.decode(ARGV[3])) do
  redis.call('SADD', KEYS[s[1]], s[2])
end
series_finish()
return kept
"""
)
KEEP_SHA = hashlib.sha1(KEEP_SCRIPT.encode()).hexdigest()

# On a cluster, before ``KEEP_SCRIPT``: a user slot's part of keeping served decisions. KEYS: the users' keys
# (their decisions indexes and user hashes, one slot's); ARGV[1]: the indexes' TTL (ms); ARGV[2]: JSON, per
# decision: its user's index's key index, its id, its impression events (as KEEP_SCRIPT's); ARGV[3]: JSON,
# ``IMPRESSIONS_ADD``'s ``header``. A decision already in its user's index is skipped: its impressions were
# counted, and only its join record (in its shard, the next call) may be missing, which KEEP_SCRIPT keeps once.
SERVED_SCRIPT = (
    SERIES_WRITE
    + SERIES_FINISH
    + IMPRESSIONS_ADD
    + """
local header = cjson.decode(ARGV[3])
for _, d in ipairs(cjson.decode(ARGV[2])) do
  local decisions = KEYS[d[1]]
  if redis.call('SADD', decisions, d[2]) == 1 and #d[3] > 0 then
    impressions_add(d[3], header)
  end
  redis.call('PEXPIRE', decisions, ARGV[1])
end
series_finish()
return 0
"""
)
SERVED_SHA = hashlib.sha1(SERVED_SCRIPT.encode()).hexdigest()


class ServedDecisions:
    """The served-decisions part of ``RedisFeedback``: its keys, through its store's write connections."""

    def __init__(self, feedback: RedisFeedback):
        self.feedback = feedback
        self.store = feedback.store

    async def keep(self, joins: Sequence[Join], keep: float, impressions: bool) -> None:
        """Write the join records (and with ``impressions``, the served impressions) of ``joins``."""
        ttl = str(math.ceil(keep * 1000))
        client = self.store._writes()
        now = time.time()
        if self.store.cluster:
            # The users' decision indexes first (their own slots), so erasure finds every join record; with
            # impressions served, their series with them, once a decision.
            if impressions:
                await self._served(joins, ttl, now)
            else:
                await self.add_to_indexes(
                    [(self.store.decisions_index_key(j.user_id), j.decision_id) for j in joins], ttl
                )
            calls = []
            for group in by_shard(joins, lambda join: self.feedback.shard_of(join.user_id)).values():
                for start in range(0, len(group), DECISIONS_PER_CALL):
                    keys, args = self._keep_args(group[start : start + DECISIONS_PER_CALL], impressions, now)
                    calls.append((keys, [ttl, *args]))
            await self.store._scripts(client, KEEP_SCRIPT, KEEP_SHA, calls, counted=False)
            return
        for start in range(0, len(joins), DECISIONS_PER_CALL):
            keys, args = self._keep_args(joins[start : start + DECISIONS_PER_CALL], impressions, now)
            await self.store._script(client, KEEP_SCRIPT, KEEP_SHA, keys, [ttl, *args], counted=False)

    async def _served(self, joins: Sequence[Join], ttl: str, now: float) -> None:
        """A cluster's user-slot part of keeping served decisions with their impressions: one
        ``SERVED_SCRIPT`` call per slot and chunk, a pipeline per node."""
        calls = []
        slots = by_slot(joins, lambda join: self.store.user_key(join.user_id)).values()
        for group in slots:
            for start in range(0, len(group), DECISIONS_PER_CALL):
                index: dict[str, int] = {}

                def key_index(key: str, index: dict[str, int] = index) -> int:
                    return index.setdefault(key, len(index) + 1)

                events = ImpressionArgs(self.store, now, key_index)
                decisions = [
                    [key_index(self.store.decisions_index_key(join.user_id)), join.decision_id, events.of(join)]
                    for join in group[start : start + DECISIONS_PER_CALL]
                ]
                calls.append((list(index), [ttl, orjson.dumps(decisions), orjson.dumps(events.header)]))
        await self.store._scripts(self.store._writes(), SERVED_SCRIPT, SERVED_SHA, calls, counted=False)

    async def add_to_indexes(self, members: Sequence[tuple[str, str]], ttl: str) -> None:
        """Add each member to its user's index set (a cluster's own step: the set is in the user's slot)."""
        if not members:
            return
        async with self.store._writes().pipeline(transaction=False) as pipe:
            for key, member in members:
                pipe.sadd(key, member)
                pipe.pexpire(key, ttl)
            await pipe.execute()

    def _keep_args(self, joins: Sequence[Join], impressions: bool, now: float) -> tuple[list[str], list[bytes]]:
        """KEYS and ARGV (after the TTL) for ``KEEP_SCRIPT``; see the comment above it. On a cluster the
        joins share a shard, and the users' indexes are written beforehand."""
        index: dict[str, int] = {}
        shard = self.feedback.shard_of(joins[0].user_id) if joins else 0
        cluster = self.store.cluster

        def key_index(key: str) -> int:
            return index.setdefault(key, len(index) + 1)

        measures = (DECISIONS, MEASURES[IMPRESSION]) if impressions else (DECISIONS,)
        events = ImpressionArgs(self.store, now, key_index)
        sets: dict[tuple[int, str], None] = {}
        decisions = []
        for join in joins:
            day = join.day
            fields = ["u", join.user_id, "v", join.version, "a", repr(join.at)]
            if join.models:
                fields += ["m", json.dumps(join.models)]
            if join.experiments:
                exposed = [[x.experiment, x.arm, x.phase, list(x.slots)] for x in join.experiments]
                fields += ["x", json.dumps(exposed, ensure_ascii=False)]
            arms: list[list[object]] = []
            if impressions:
                for experiment, phase, arm in arm_counts.served_impressions(join):
                    arms.append(
                        [
                            key_index(self.feedback.arm_counters_key(experiment, phase, None, shard)),
                            key_index(self.feedback.arm_counters_key(experiment, phase, day, shard)),
                            f"{MEASURES[IMPRESSION]}:{arm}",
                        ]
                    )
                    sets[key_index(self.feedback.arm_days_key(experiment, phase, shard)), day] = None
            # (on a cluster the impression events' series are the user slot's part, ``_served``)
            updates = events.of(join) if impressions and not cluster else []
            counted: list[str] = []
            for slot, (rule, content) in join.slots.items():
                fields += [f"s:{slot}", orjson.dumps([rule, content]).decode()]
                counted += counted_fields(measures, slot, rule, content)
            decisions.append(
                [
                    key_index(self.feedback.join_key(join.decision_id, shard)),
                    fields,
                    key_index(self.feedback.counters_key(join.version, None, shard)),
                    key_index(self.feedback.counters_key(join.version, day, shard)),
                    counted,
                    updates,
                    arms,
                    [] if cluster else [key_index(self.store.decisions_index_key(join.user_id)), join.decision_id],
                ]
            )
            sets[key_index(self.feedback.versions_key(shard)), join.version] = None
            sets[key_index(self.feedback.days_key(join.version, shard)), day] = None
        return list(index), [orjson.dumps(decisions), orjson.dumps(list(sets)), orjson.dumps(events.header)]


class ImpressionArgs:
    """``IMPRESSIONS_ADD``'s arguments for one script call: each decision's ``imp``, and the call's ``header``.

    A call's decisions fall in a few minutes, so share a few bucket sets: each is worked out once."""

    def __init__(self, store: RedisStore, now: float, key_index: Callable[[str], int]):
        self.store = store
        self.now = now
        self.key_index = key_index
        self.sets: list[list[Any]] = []
        self._set_at: dict[tuple[int, ...], int] = {}  # by a time's buckets: its set's index (0: none kept)

    @property
    def header(self) -> list[Any]:
        return [COUNTER, LATEST, self.sets]

    def of(self, join: Join) -> list[Any]:
        """A decision's ``imp``: its impression events (one a slot it filled, as ``served_impressions``'), or
        [] when it filled none, or they would not be kept."""
        contents = [content for _, content in join.slots.values()]
        if not contents:
            return []
        try:  # the events differ only in content, so one checked stands for all
            ts = check_batch([Event(join.user_id, IMPRESSION, contents[0], None, join.at)], self.now)[0]
        except EventRejected:  # a decision "at" a time too far ahead: its join record is still kept
            return []
        buckets = tuple(resolution.bucket(ts) for resolution in self.store.scheme.resolutions)
        at = self._set_at.get(buckets)
        if at is None:
            at = self._set_at[buckets] = self._bucket_set(ts)
        if not at:
            return []
        counts: dict[str, int] = {}  # the slots' contents, and the "any" key once a slot
        for content in contents:
            for key in series_keys(content):
                counts[key] = counts.get(key, 0) + 1
        names: list[Any] = []
        for key, count in counts.items():
            names += [self.store.series_name(IMPRESSION, key), count]
        return [self.key_index(self.store.user_key(join.user_id)), at, repr(ts), names]

    def _bucket_set(self, ts: float) -> int:
        kept = kept_buckets(ts, self.now, self.store.scheme)
        if not kept:
            return 0
        now = self.now
        day = self.store.scheme.day
        resolutions = [
            [f":{r.name}", bucket, math.ceil(ttl * 1000), r.oldest(now), r.prune_above] for r, bucket, ttl in kept
        ]
        self.sets.append([resolutions, int(any(r is day for r, _, _ in kept))])
        return len(self.sets)
