"""``RedisStore``'s export and erasure of one user's data.

A user's own keys share the hash tag ``{USER}``: the user hash itself, which
holds the profile and every counter series (``redis_series.py``), so one
key holds all of the user's features, and the event ids ``ids`` and their
fingerprints ``fp``. Data about the user in shared keys is indexed by sets
of the user: ``j`` the decisions whose
join records (``j:{decision}``) are theirs, ``f`` the feedback ids
(``fid:{id}``) counted on them (feedback marks are fields of the join
records, and go with them), ``x`` the experiment phases whose exposure
markers (``{x:EXP:PHASE}:u:USER``) or converted values (the field USER of
``{x:EXP:PHASE}:v``) name them. Each index is written before
(or with) what it points to and outlives it, so nothing kept is missing
from it. Erasure is one transaction: the indexes are watched while they
are read, and everything goes at once, or, when the user's data changed
meanwhile, the transaction is tried again.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from redis.exceptions import WatchError

from .buckets import decode_attribute, is_duplicate
from .redis_series import LATEST, PROFILE, parse_series_field, series_buckets
from .redis_slots import by_slot
from .user_data import ExperimentValue, ExposureData, JoinData, StoreErasure, UserData, decoded_series

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

    from .redis_store import RedisStore

ATTEMPTS = 8  # erasure transactions tried before giving up, when the user's data keeps changing

# KEYS[1]: a phase's counts, KEYS[2]: the user's marker in it, KEYS[3]: the phase's users' values; ARGV[1]:
# the user. Forget the exposure and take it off its arm's count (an arm nobody else saw is removed, as if
# never counted), and the user's converted value (the per-arm totals made from it are aggregates and stay).
# Reply: [exposures forgotten, values deleted]. Run inside the transaction.
# Without KEYS[3] (on a cluster, where the values lie in the user's feedback shard), the exposure alone.
UNEXPOSE_SCRIPT = """
local values = 0
if #KEYS > 2 then
  values = redis.call('HDEL', KEYS[3], ARGV[1])
end
local arm = redis.call('GET', KEYS[2])
if not arm then
  return {0, values}
end
redis.call('DEL', KEYS[2])
if redis.call('HINCRBY', KEYS[1], arm, -1) <= 0 then
  redis.call('HDEL', KEYS[1], arm)
end
return {1, values}
"""


UNEXPOSE_SHA = hashlib.sha1(UNEXPOSE_SCRIPT.encode()).hexdigest()

# On a cluster, the user's feedback shard. KEYS: the join records, then the feedback ids' keys, then the
# phases' converted values; ARGV[1], ARGV[2]: how many join records and feedback ids; ARGV[3]: the user.
# Reply: [join records deleted, feedback ids deleted, values deleted].
SHARD_ERASE_SCRIPT = """
local joins, ids = tonumber(ARGV[1]), tonumber(ARGV[2])
local joined, counted, values = 0, 0, 0
for k = 1, #KEYS do
  if k <= joins then
    joined = joined + redis.call('DEL', KEYS[k])
  elseif k <= joins + ids then
    counted = counted + redis.call('DEL', KEYS[k])
  else
    values = values + redis.call('HDEL', KEYS[k], ARGV[3])
  end
end
return {joined, counted, values}
"""
SHARD_ERASE_SHA = hashlib.sha1(SHARD_ERASE_SCRIPT.encode()).hexdigest()

# On a cluster, the claims of the user's feedback ids in one shard (``RedisFeedback.id_claim_key``). KEYS:
# the claims; ARGV[1]: the user. A claim goes when it is the user's (``FINGERPRINT:USER``): an id the user
# reused for nothing of theirs is another user's claim, and stays.
CLAIMS_ERASE_SCRIPT = """
local erased = 0
for k = 1, #KEYS do
  local claim = redis.call('GET', KEYS[k])
  if claim and string.sub(claim, string.find(claim, ':', 1, true) + 1) == ARGV[1] then
    erased = erased + redis.call('DEL', KEYS[k])
  end
end
return erased
"""
CLAIMS_ERASE_SHA = hashlib.sha1(CLAIMS_ERASE_SCRIPT.encode()).hexdigest()

# On a cluster, the user's own slot, last. KEYS: the user hash, ids, fp, m, then the indexes j, f, x.
# ARGV[1]: JSON, the members read from each index. When an index holds anything else (a decision, an
# item or an exposure came meanwhile), nothing is deleted and the reply is 0: the erasure starts over.
# Else every key goes, and the reply is [the user hash's field names, how many event ids].
OWN_ERASE_SCRIPT = """
local read = cjson.decode(ARGV[1])
for n = 1, 3 do
  local index, members = KEYS[4 + n], read[n]
  if redis.call('SCARD', index) ~= #members then
    return 0
  end
  for _, member in ipairs(members) do
    if redis.call('SISMEMBER', index, member) == 0 then
      return 0
    end
  end
end
local names = redis.call('HKEYS', KEYS[1])
local ids = redis.call('ZCARD', KEYS[2])
redis.call('DEL', unpack(KEYS))
return {names, ids}
"""
OWN_ERASE_SHA = hashlib.sha1(OWN_ERASE_SCRIPT.encode()).hexdigest()


class ErasureRace(RuntimeError):
    """The user's data changed during every attempt to erase it: retry."""


class RedisUsers:
    """One user's data across the store's keys: read it all, or delete it all."""

    def __init__(self, store: RedisStore):
        self.store = store

    def _indexes(self, user_id: str) -> tuple[str, str, str]:
        store = self.store
        return (
            store.decisions_index_key(user_id),
            store.feedback_index_key(user_id),
            store.exposures_index_key(user_id),
        )

    def _phase(self, name: str) -> tuple[str, str]:
        experiment, _, phase = name.partition(":")
        return unquote(experiment), phase

    # --- export ---

    async def export(self, user_id: str) -> UserData:
        store = self.store
        client = store._reads()
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(store.user_key(user_id))
            pipe.zrange(store.ids_key(user_id), 0, -1, withscores=True)
            for index in self._indexes(user_id):
                pipe.smembers(index)
            store.round_trips += 1
            fields, ids, *members = await pipe.execute()
        decisions, feedback_ids, phases = (sorted(_text(m) for m in found) for found in members)
        phase_names = [self._phase(name) for name in phases]
        shard = store.feedback.shard_of(user_id)  # on a cluster, where the user's feedback keys are
        async with client.pipeline(transaction=False) as pipe:
            # A pipeline of nothing would send nothing and answer nothing; a keyed stand-in (a cluster's
            # pipeline refuses ECHO, which names no key to route by).
            pipe.exists(store.user_key(user_id))
            for item_id in feedback_ids:
                pipe.exists(store.feedback.id_key(item_id, shard))
            for experiment, phase in phase_names:
                pipe.get(store.exposure_key(experiment, phase, user_id))
                pipe.hget(store.feedback.arm_users_key(experiment, phase, shard), user_id)
            store.round_trips += 1
            replies = (await pipe.execute())[1:]
        id_replies = replies[: len(feedback_ids)]
        phase_replies = replies[len(feedback_ids) :]
        arm_replies, value_replies = phase_replies[0::2], phase_replies[1::2]
        widths = {resolution.name: resolution.width for resolution in store.scheme.resolutions}
        profile, cells, latest = _user_fields(fields)
        series = []
        for name, resolution in sorted(_series(cells, latest, store.scheme.day.name)):
            event, key = (unquote(part) for part in name.split(":"))
            last = latest.get(name) if resolution == store.scheme.day.name else None
            buckets = cells.get((name, resolution), [])
            series.append(decoded_series(event, key, resolution, widths[resolution], buckets, last))
        joins = await store.feedback.joins(decisions)
        now = time.time()
        return UserData(
            {name: decode_attribute(value) for name, value in profile.items()},
            tuple(series),
            tuple(_text(item_id) for item_id, seen in ids if is_duplicate(seen, now)),
            tuple(
                ExposureData(experiment, phase, _text(arm))
                for (experiment, phase), arm in zip(phase_names, arm_replies, strict=True)
                if arm is not None
            ),
            tuple(
                ExperimentValue(experiment, phase, float(value))
                for (experiment, phase), value in zip(phase_names, value_replies, strict=True)
                if value is not None
            ),
            tuple(
                JoinData.of(join)
                for join in (joins.get(decision_id) for decision_id in decisions)
                if join is not None and join.user_id == user_id
            ),
            tuple(item_id for item_id, found in zip(feedback_ids, id_replies, strict=True) if found),
        )

    # --- erasure ---

    async def erase(self, user_id: str) -> StoreErasure:
        if self.store.cluster:
            return await self._erase_by_slot(user_id)
        async with self.store._writes().pipeline(transaction=True) as pipe:
            for _ in range(ATTEMPTS):
                try:
                    return await self._erase_once(pipe, user_id)
                except WatchError:
                    continue  # an event, a decision or an exposure of the user came meanwhile: read again
        raise ErasureRace(f"the data of user {user_id!r} kept changing during {ATTEMPTS} attempts to erase it")

    async def _erase_once(self, pipe: Pipeline, user_id: str) -> StoreErasure:
        store = self.store
        indexes = self._indexes(user_id)
        await pipe.watch(*indexes)
        store.round_trips += 1
        decisions, feedback_ids, phases = [
            sorted(_text(member) for member in await pipe.smembers(index)) for index in indexes
        ]
        store.round_trips += len(indexes)
        pipe.multi()
        pipe.hkeys(store.user_key(user_id))
        pipe.zcard(store.ids_key(user_id))
        pipe.delete(
            store.user_key(user_id),
            store.ids_key(user_id),
            store.fingerprints_key(user_id),
            store.predictions_key(user_id),
        )
        _delete(pipe, [store.feedback.join_key(decision_id) for decision_id in decisions])
        _delete(pipe, [store.feedback.id_key(item_id) for item_id in feedback_ids])
        for experiment, phase in (self._phase(name) for name in phases):
            marker = store.exposure_key(experiment, phase, user_id)
            converted = store.feedback.arm_users_key(experiment, phase)
            pipe.eval(UNEXPOSE_SCRIPT, 3, store.exposure_counts_key(experiment, phase), marker, converted, user_id)
        pipe.delete(*indexes)
        store.round_trips += 1
        names, event_ids, _, joined, counted, *rest = await pipe.execute()
        exposures = sum(int(unexposed) for unexposed, _ in rest[:-1])
        values = sum(int(deleted) for _, deleted in rest[:-1])
        profile, cells, latest = _user_fields(dict.fromkeys(names, b"0"))  # the names tell; any value will do
        series = len(_series(cells, latest, store.scheme.day.name))
        return StoreErasure(len(profile), series, int(event_ids), exposures, values, int(joined), int(counted))

    async def _erase_by_slot(self, user_id: str) -> StoreErasure:
        """A cluster's erasure, slot by slot (see the module's docstring); what each attempt deleted counts."""
        store = self.store
        feedback = store.feedback
        shard = feedback.shard_of(user_id)
        indexes = self._indexes(user_id)
        own = [store.user_key(user_id), store.ids_key(user_id), store.fingerprints_key(user_id)]
        own += [store.predictions_key(user_id), *indexes]
        joined = counted = exposures = values = 0
        for _ in range(ATTEMPTS):
            async with store._writes().pipeline(transaction=False) as pipe:
                for index in indexes:
                    pipe.smembers(index)
                store.round_trips += 1
                decisions, feedback_ids, phases = [sorted(_text(m) for m in found) for found in await pipe.execute()]
            phase_names = [self._phase(name) for name in phases]
            shard_keys = [feedback.join_key(decision_id, shard) for decision_id in decisions]
            shard_keys += [feedback.id_key(item_id, shard) for item_id in feedback_ids]
            shard_keys += [feedback.arm_users_key(experiment, phase, shard) for experiment, phase in phase_names]
            unexposes = [
                (
                    [store.exposure_counts_key(experiment, phase), store.exposure_key(experiment, phase, user_id)],
                    [user_id],
                )
                for experiment, phase in phase_names
            ]
            client = store._writes()
            if shard_keys:
                args = [str(len(decisions)), str(len(feedback_ids)), user_id]
                calls = [(shard_keys, args)]
                for deleted in await store._scripts(client, SHARD_ERASE_SCRIPT, SHARD_ERASE_SHA, calls):
                    joined, counted, values = joined + deleted[0], counted + deleted[1], values + deleted[2]
            for unexposed, _ in await store._scripts(client, UNEXPOSE_SCRIPT, UNEXPOSE_SHA, unexposes):
                exposures += int(unexposed)
            claims = by_slot((feedback.id_claim_key(item_id) for item_id in feedback_ids), lambda key: key)
            calls = [(keys, [user_id]) for keys in claims.values()]
            await store._scripts(client, CLAIMS_ERASE_SCRIPT, CLAIMS_ERASE_SHA, calls)
            read = orjson.dumps([decisions, feedback_ids, phases])
            reply = (await store._scripts(client, OWN_ERASE_SCRIPT, OWN_ERASE_SHA, [(own, [read])]))[0]
            if reply == 0:
                continue  # an event, a decision or an exposure of the user came meanwhile: read again
            names, event_ids = reply
            profile, cells, latest = _user_fields(dict.fromkeys(names, b"0"))
            series = len(_series(cells, latest, store.scheme.day.name))
            return StoreErasure(len(profile), series, int(event_ids), exposures, values, joined, counted)
        raise ErasureRace(f"the data of user {user_id!r} kept changing during {ATTEMPTS} attempts to erase it")


def _delete(pipe: Pipeline, keys: list[str]) -> None:
    """Queue a DEL of ``keys``, or a stand-in answering 0 when there are none (replies keep their places)."""
    if keys:
        pipe.delete(*keys)
    else:
        pipe.echo(0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _user_fields(
    fields: dict[Any, Any],
) -> tuple[dict[str, Any], dict[tuple[str, str], list[tuple[int, int, float]]], dict[str, float]]:
    """A user hash as its profile attributes (JSON text), its series' ``(bucket, count, total)`` cells
    by (series name, resolution name), and its series' latest event times by series name."""
    profile: dict[str, Any] = {}
    cells: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    latest: dict[str, float] = {}
    for name, value in fields.items():
        text = _text(name)
        if text.startswith(PROFILE):
            profile[text[len(PROFILE) :]] = value
        elif text.startswith(LATEST):
            latest[text[len(LATEST) :]] = float(value)
        elif (parsed := parse_series_field(text)) is not None:
            cells[parsed] = list(series_buckets(value))
    return profile, cells, latest


def _series(cells: dict[tuple[str, str], Any], latest: dict[str, float], day: str) -> set[tuple[str, str]]:
    """The (series name, resolution name) pairs the user hash holds: those with buckets, and the day
    series of those with a latest event time."""
    return set(cells) | {(name, day) for name in latest}
