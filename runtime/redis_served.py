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
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from . import experiment_counts as arm_counts
from .buckets import check_batch, kept_buckets, series_keys
from .events import Event, EventRejected
from .feedback import DECISIONS, IMPRESSION, MEASURES, Join
from .redis_kpi_fields import counted_fields
from .redis_series import SERIES_ADD, SERIES_FINISH, latest_field, series_field
from .redis_slots import by_key as by_shard
from .redis_slots import by_slot

if TYPE_CHECKING:
    from .redis_feedback import RedisFeedback


# Served decisions per keep script call: with impressions served, a decision updates about a dozen series,
# so a call holds Redis about as long as a record call of ``EVENTS_PER_CALL`` events.
DECISIONS_PER_CALL = 16

# KEYS: every key the call touches. ARGV[1]: the join records' TTL (ms); ARGV[2]: JSON, per decision: its
# join record's key index, the record's fields and values (flat), the total and day counter keys' indexes,
# the counter fields it adds 1 to, its impression events' series updates (``SERIES_ADD``'s arguments,
# the user hash as an index) and its experiment arms' served impressions ([total key index, day key
# index, field]), and its user's decisions index [key index, decision id], which erasure reads
# (``redis_users.py``); ARGV[3]: JSON, [set key index, member] to add (versions, days, experiment
# phases' days). A
# decision whose join record exists is skipped whole: a call that is sent again counts nothing twice. JSON
# rather than one argument a value: the client packs arguments one by one, in Python, which costs more.
KEEP_SCRIPT = (
    SERIES_ADD
    + SERIES_FINISH
    + """
local ttl = ARGV[1]
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
    for _, u in ipairs(d[6]) do
      series_add(KEYS[u[1]], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10])
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
# decision: its user's index's key index, its id, its impression events' series updates (as KEEP_SCRIPT's).
# A decision already in its user's index is skipped: its impressions were counted, and only its join
# record (in its shard, the next call) may be missing, which KEEP_SCRIPT keeps once.
SERVED_SCRIPT = (
    SERIES_ADD
    + SERIES_FINISH
    + """
for _, d in ipairs(cjson.decode(ARGV[2])) do
  local decisions = KEYS[d[1]]
  if redis.call('SADD', decisions, d[2]) == 1 then
    for _, u in ipairs(d[3]) do
      series_add(KEYS[u[1]], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10])
    end
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
        constants = self.store._series_constants(now)
        calls = []
        slots = by_slot(joins, lambda join: self.store.user_key(join.user_id)).values()
        for group in slots:
            for start in range(0, len(group), DECISIONS_PER_CALL):
                index: dict[str, int] = {}

                def key_index(key: str, index: dict[str, int] = index) -> int:
                    return index.setdefault(key, len(index) + 1)

                decisions = [
                    [
                        key_index(self.store.decisions_index_key(join.user_id)),
                        join.decision_id,
                        self._impressions(join, now, constants, key_index),
                    ]
                    for join in group[start : start + DECISIONS_PER_CALL]
                ]
                calls.append((list(index), [ttl, orjson.dumps(decisions)]))
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
        constants = self.store._series_constants(now) if impressions else {}
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
            updates = self._impressions(join, now, constants, key_index) if impressions and not cluster else []
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
        return list(index), [orjson.dumps(decisions), orjson.dumps(list(sets))]

    def _impressions(
        self,
        join: Join,
        now: float,
        constants: dict[Any, Any],
        key_index: Callable[[str], int],
    ) -> list[list[object]]:
        """``SERIES_ADD``'s arguments for a decision's impression events, those of one series merged: the
        slots' events share the user and the time, so the same buckets, and the "any" key's series.
        ``constants`` is ``_series_constants``' for ``now``, and also holds, under ``(ts,)`` and
        ``(series,)``, the buckets of a time and the fields of a series as worked out for an earlier
        decision of the call: a call's decisions share a few times and contents."""
        contents = [content for _, content in join.slots.values()]
        if not contents:
            return []
        try:  # the events (``served_impressions``') differ only in content and id, so one checked stands for all
            ts = check_batch([Event(join.user_id, IMPRESSION, contents[0], None, join.at)], now)[0]
        except EventRejected:  # a decision "at" a time too far ahead: its join record is still kept
            return []
        kept = constants.get((ts,))
        if kept is None:
            buckets = kept_buckets(ts, now, self.store.scheme) or []
            kept = constants[(ts,)] = [
                (resolution.name, str(bucket), str(math.ceil(ttl * 1000)), *constants[resolution.name])
                for resolution, bucket, ttl in buckets
            ]
        if not kept:
            return []
        user = key_index(self.store.user_key(join.user_id))
        counts = Counter(key for content in contents for key in series_keys(content))
        at = repr(ts)
        updates: list[list[object]] = []
        for key, count in counts.items():
            series = self.store.series_name(IMPRESSION, key)
            fields = constants.get((series,))
            if fields is None:
                fields = constants[(series,)] = (
                    {r.name: series_field(series, r) for r in self.store.scheme.resolutions},
                    latest_field(series),
                )
            by_resolution, latest = fields
            number, total = str(count), repr(float(count))  # an impression's value is 1
            for name, bucket, ttl, oldest, prune, is_day in kept:
                updates.append(
                    [
                        user,
                        by_resolution[name],
                        bucket,
                        number,
                        total,
                        ttl,
                        latest if is_day else "",
                        at if is_day else "",
                        oldest,
                        prune,
                    ]
                )
        return updates
