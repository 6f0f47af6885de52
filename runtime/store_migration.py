"""Moving a Redis store from the earlier key layout to the user hash (``tailor migrate-store``).

The earlier layout kept a user's profile in ``{USER}:p``, each counter series
at each resolution in its own hash ``{USER}:c:TYPE:KEY:RES`` (fields ``B``,
``Bt`` and, for days, ``last``), and the series' names in the set ``{USER}:k``.
The user hash (``redis_series.py``) holds all of it in one key.

The keyspace is walked with SCAN for the ``p`` and ``k`` keys, and each user
is moved by one script: it adds the old buckets to the user hash's series
(a series written since by a server of this version is added to), keeps the
later of two latest times, sets the attributes the user hash does not have yet
(one written since by a server of this version is newer), makes the hash live
as long as the longest-lived old key, and deletes the old keys, all at once.
A user is moved whole or not at all, and a moved user has no old keys left,
so a second run, or one resumed after an interruption, moves nothing twice.
Servers of this version write only the user hash, so the migration may run
while they serve: until a user is moved, their decisions miss the old data.
Servers of the earlier version must be stopped first, or what they write
after their user was moved is left in the old keys (a second run moves it).
The event ids (``ids``, ``fp``) and the other indexes keep their keys.

On a Redis Cluster every master is scanned, and a user's keys share the hash
tag ``{USER}``, so each user's move is still one script on one node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from redis import RedisCluster
from redis.exceptions import NoScriptError

from .buckets import Resolution, Scheme
from .redis_clients import BlockingClient
from .redis_keys import key_part
from .redis_series import SERIES_ENTRY, latest_field, profile_field, series_field
from .redis_store import DEFAULT_PREFIX

SCAN_COUNT = 1000  # keys SCAN looks at per call
TIMEOUT = 10.0  # seconds one call may take: a SCAN step, or one user's move

# KEYS[1]: the user hash, KEYS[2]: the old profile, KEYS[3]: the old series index, KEYS[4..]: the old
# series hashes; ARGV[1]: what the user hash's profile fields start with; then, per series hash, its
# field in the user hash and its latest time's field ('' unless a day series).
# Reply: [attributes, series, buckets] moved.
MOVE_SCRIPT = (
    SERIES_ENTRY
    + """
local user = KEYS[1]
local longest = redis.call('PTTL', user)
local attributes, series, buckets = 0, 0, 0
local function outlive(key)
  local ttl = redis.call('PTTL', key)
  if ttl > longest then
    longest = ttl
  end
end
local profile = redis.call('HGETALL', KEYS[2])
for j = 1, #profile, 2 do
  attributes = attributes + 1
  redis.call('HSETNX', user, ARGV[1] .. profile[j], profile[j + 1])
end
if #profile > 0 then
  outlive(KEYS[2])
end
for k = 4, #KEYS do
  local field, latest = ARGV[2 * (k - 4) + 2], ARGV[2 * (k - 4) + 3]
  local flat = redis.call('HGETALL', KEYS[k])
  if #flat > 0 then
    series = series + 1
    outlive(KEYS[k])
  end
  local counts, totals, order = {}, {}, {}
  for j = 1, #flat, 2 do
    local name, value = flat[j], flat[j + 1]
    if name == 'last' then
      if latest ~= '' then
        local last = redis.call('HGET', user, latest)
        if not last or tonumber(last) < tonumber(value) then
          redis.call('HSET', user, latest, value)
        end
      end
    elseif string.byte(name, -1) == 116 then
      totals[tonumber(string.sub(name, 1, -2))] = tonumber(value)
    else
      local b = tonumber(name)
      counts[b] = tonumber(value)
      order[#order + 1] = b
      buckets = buckets + 1
    end
  end
  if #order > 0 then
    local kept = redis.call('HGET', user, field)
    if kept then -- written since by a server of this version: add the two
      for b, c, t in string.gmatch(kept, '(%-?%d+) (%d+) ([^,]+),') do
        b = tonumber(b)
        if not counts[b] then
          counts[b] = 0
          order[#order + 1] = b
        end
        counts[b] = counts[b] + tonumber(c)
        totals[b] = (totals[b] or 0) + tonumber(t)
      end
    end
    table.sort(order, function(x, y) return x > y end)
    local entries = {}
    for n, b in ipairs(order) do
      entries[n] = series_entry(b, counts[b], totals[b] or 0)
    end
    redis.call('HSET', user, field, table.concat(entries))
  end
end
if redis.call('EXISTS', user) == 1 and longest > 0 then
  local ttl = redis.call('PTTL', user)
  if ttl < 0 or ttl < longest then
    redis.call('PEXPIRE', user, longest)
  end
end
redis.call('DEL', unpack(KEYS, 2))
return {attributes, series, buckets}
"""
)
MOVE_SHA = hashlib.sha1(MOVE_SCRIPT.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OldLayout:
    """The key names of the earlier layout: what the migration reads, and what it leaves behind."""

    prefix: str = DEFAULT_PREFIX

    def user(self, part: str) -> str:
        """The keys' common start for a user whose id is already encoded (``part``)."""
        return f"{self.prefix}{{{part}}}"

    def profile_key(self, user_id: str) -> str:
        return f"{self.user(key_part(user_id))}:p"

    def series_key(self, user_id: str, event: str, key: str, resolution: Resolution) -> str:
        return f"{self.user(key_part(user_id))}:c:{key_part(event)}:{key_part(key)}:{resolution.name}"

    def series_index_key(self, user_id: str) -> str:
        return f"{self.user(key_part(user_id))}:k"

    def users(self, client: BlockingClient) -> Iterator[str]:
        """The encoded ids of the users with an old profile, then of those with an old series index
        and no old profile. SCAN may name a key twice: moving a user twice moves nothing the second time."""
        start = len(self.prefix) + 1
        for suffix in ("}:p", "}:k"):
            for key in _scan(client, f"{_escape(self.prefix)}{{*{suffix}"):
                part = _text(key)[start : -len(suffix)]
                if "{" in part or "}" in part:
                    continue  # not a user's key
                if suffix == "}:k" and client.exists(f"{self.user(part)}:p"):
                    continue  # the first pass's (a dry run leaves it there)
                yield part


@dataclass(frozen=True, slots=True)
class Migration:
    """What a run moved (or, dry, would move): users, profile attributes, series and count buckets."""

    users: int = 0
    attributes: int = 0
    series: int = 0
    buckets: int = 0

    def __add__(self, other: Migration) -> Migration:
        return Migration(
            self.users + other.users,
            self.attributes + other.attributes,
            self.series + other.series,
            self.buckets + other.buckets,
        )

    def to_dict(self) -> dict[str, int]:
        return {"users": self.users, "attributes": self.attributes, "series": self.series, "buckets": self.buckets}


def migrate(client: BlockingClient, prefix: str = DEFAULT_PREFIX, *, dry_run: bool = False) -> Migration:
    """Move every user found in the old layout, one script call each; what was moved (or would be).
    Keys are named by the resolutions' names alone, which the retention does not change."""
    old = OldLayout(prefix)
    scheme = Scheme.for_retention()
    done = Migration()
    for part in old.users(client):
        done += move_user(client, old, scheme, part, dry_run=dry_run)
    return done


def move_user(client: BlockingClient, old: OldLayout, scheme: Scheme, part: str, *, dry_run: bool = False) -> Migration:
    """Move one user (id encoded: ``part``); a user with nothing left in the old layout moves nothing."""
    base = old.user(part)
    names = sorted(_text(name) for name in client.smembers(f"{base}:k"))
    keys = [base, f"{base}:p", f"{base}:k"]
    args = [profile_field("")]
    for name in names:
        for resolution in scheme.resolutions:
            keys.append(f"{base}:c:{name}:{resolution.name}")
            args += [series_field(name, resolution), latest_field(name) if resolution is scheme.day else ""]
    if dry_run:
        return _count(client, keys)
    try:
        attributes, series, buckets = client.evalsha(MOVE_SHA, len(keys), *keys, *args)
    except NoScriptError:  # this Redis has not seen the script yet
        attributes, series, buckets = client.eval(MOVE_SCRIPT, len(keys), *keys, *args)
    moved = attributes > 0 or series > 0
    return Migration(int(moved), int(attributes), int(series), int(buckets))


def _count(client: BlockingClient, keys: list[str]) -> Migration:
    """What ``MOVE_SCRIPT`` would move for ``keys``, read without writing."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hlen(keys[1])
        for key in keys[3:]:
            pipe.hkeys(key)
        attributes, *series = pipe.execute()
    fields = [[_text(field) for field in found] for found in series]
    buckets = sum(1 for found in fields for field in found if field != "last" and not field.endswith("t"))
    moved = sum(1 for found in fields if found)
    return Migration(int(attributes > 0 or moved > 0), int(attributes), moved, buckets)


def _scan(client: BlockingClient, match: str) -> Iterator[bytes]:
    """The keys matching ``match``: on a cluster, those of every master (each scanned to its end)."""
    if isinstance(client, RedisCluster):
        return client.scan_iter(match=match, count=SCAN_COUNT, target_nodes=RedisCluster.PRIMARIES)
    return client.scan_iter(match=match, count=SCAN_COUNT)


def _escape(text: str) -> str:
    """``text`` as a literal in a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
