"""Recording behavioural events in Redis: the record script, and the arguments a batch becomes.

A batch of events is one script call per ``EVENTS_PER_CALL`` events. The
script de-duplicates each event by its id, merges it into its series (the
user hash's fields of ``redis_series.py``) and renews the TTLs, atomically;
the arguments are built here, in Python, where the bucket arithmetic of
``buckets.py`` lives. ``RedisStore.record`` sends them, and a feedback call
runs the same script body on the events of the items it counts
(``redis_feedback_batch.py``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from .buckets import Scheme, fingerprint, kept_buckets, series_keys
from .events import DEDUPE_SECONDS, Event, RecordResult
from .redis_keys import key_part
from .redis_series import COUNTER, LATEST, SERIES_FINISH, SERIES_WRITE

# Events per record script call. An event costs Redis about 30 to 50 microseconds
# (its id, and up to six series merged in Lua), so a call holds Redis 1 to 2 ms: a
# decision arriving meanwhile waits that long, well within its 50 ms deadline.
EVENTS_PER_CALL = 32
IDS = ":ids"  # after a user's hash key: the user's event ids (a sorted set, by first sight)
FINGERPRINTS = ":fp"  # the payload fingerprints of those ids (a hash)

# KEYS: every key the call touches. ARGV[1]: now; ARGV[2]: the id keys' TTL (ms);
# ARGV[3]: ids first seen at or before this time are forgotten; ARGV[4], ARGV[5]: the
# prefixes of series and latest-time fields (``redis_series.py``); ARGV[6..20]: per
# resolution, finest first, its name, bucket width, kept span, oldest kept bucket and the
# bucket count past which a series is pruned. Then, per event: the index of its user's id
# set (0 when the event has no id; the key after it is the user's fingerprints hash), the
# id, the payload's fingerprint, the index of its user's hash, the number of its series
# (``TYPE:KEY``, its key's and the "any" key's) and their names, its value, its time, and
# its bucket at each resolution ('' where it is no longer kept). An id seen with another
# fingerprint is a conflict; with the same, or with none (stored before fingerprints
# were), a duplicate. Either way the first one stands.
# The call reads each user hash field it updates once (one HMGET per event, for the
# fields no earlier event of the call read) and writes them back once, with one HSET per
# user hash at the end; the series and latest times come out as if updated event by
# event. New ids are added as they come, each by one ZADD NX (only an id already there is
# looked up, to tell a repeat from one forgotten); each id set then forgets at most 64 old
# ids per new one, so a call's work stays bounded, and its TTLs are renewed once.
# The script's body, without the series functions it calls: a feedback call runs it too, on the events of
# the items it counts (``redis_feedback_batch.py``).
RECORD_EVENTS = """
local accepted, duplicates, conflicts = 0, 0, 0
local now, forget = tonumber(ARGV[1]), tonumber(ARGV[3])
local counter, latest = ARGV[4], ARGV[5]
local resolutions = {}
for r = 1, 3 do
  local a = 1 + 5 * r
  resolutions[r] = {':' .. ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]}
end
local values, changed, fresh = {}, {}, {}
local i = 21
while i <= #ARGV do
  local ids, id, fingerprint = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  local user, n = KEYS[tonumber(ARGV[i + 3])], tonumber(ARGV[i + 4])
  local first_name = i + 5
  local value, ts = tonumber(ARGV[first_name + n]), ARGV[first_name + n + 1]
  local buckets = first_name + n + 2
  i = buckets + 3
  local repeated = false
  if ids > 0 and redis.call('ZADD', KEYS[ids], 'NX', ARGV[1], id) == 0 then -- seen before: when?
    if tonumber(redis.call('ZSCORE', KEYS[ids], id)) > forget then
      repeated = true
      local first = redis.call('HGET', KEYS[ids + 1], id)
      if first and first ~= fingerprint then
        conflicts = conflicts + 1
      else
        duplicates = duplicates + 1
      end
    else -- forgotten: seen now for the first time
      redis.call('ZADD', KEYS[ids], ARGV[1], id)
    end
  end
  if ids > 0 and not repeated then
    redis.call('HSET', KEYS[ids + 1], id, fingerprint)
    fresh[ids] = (fresh[ids] or 0) + 1
  end
  if not repeated then
    accepted = accepted + 1
    local have, dirty = values[user], changed[user]
    if not have then
      have, dirty = {}, {}
      values[user], changed[user] = have, dirty
    end
    local writes, missing = {}, {}
    for k = first_name, first_name + n - 1 do
      local name = ARGV[k]
      for r = 1, 3 do
        local bucket = ARGV[buckets + r - 1]
        if bucket ~= '' then
          local field = counter .. name .. resolutions[r][1]
          writes[#writes + 1] = {field, tonumber(bucket), resolutions[r]}
          if have[field] == nil then
            missing[#missing + 1] = field
          end
        end
      end
      if ARGV[buckets + 2] ~= '' then -- the day series keeps the latest event time
        local field = latest .. name
        writes[#writes + 1] = {field}
        if have[field] == nil then
          missing[#missing + 1] = field
        end
      end
    end
    if #missing > 0 then
      local got = redis.call('HMGET', user, unpack(missing))
      for m, field in ipairs(missing) do
        have[field] = got[m]
      end
    end
    for _, write in ipairs(writes) do
      local field, bucket, resolution = write[1], write[2], write[3]
      if bucket then
        have[field] = series_merge(have[field], bucket, 1, value, resolution[4], resolution[5])
        dirty[field] = true
        series_touch(user, math.ceil(((bucket + 2) * resolution[2] + resolution[3] - now) * 1000))
      else
        local last = have[field]
        if not last or tonumber(last) < tonumber(ts) then
          have[field] = ts
          dirty[field] = true
        end
      end
    end
  end
end
for user, dirty in pairs(changed) do
  local have, args = values[user], {}
  for field in pairs(dirty) do
    args[#args + 1] = field
    args[#args + 1] = have[field]
  end
  if #args > 0 then
    redis.call('HSET', user, unpack(args))
  end
end
for ids, count in pairs(fresh) do
  local old = redis.call('ZRANGEBYSCORE', KEYS[ids], '-inf', ARGV[3], 'LIMIT', 0, 64 * count)
  if #old > 0 then
    redis.call('ZREM', KEYS[ids], unpack(old))
    redis.call('HDEL', KEYS[ids + 1], unpack(old))
  end
  redis.call('PEXPIRE', KEYS[ids], ARGV[2])
  redis.call('PEXPIRE', KEYS[ids + 1], ARGV[2])
end
series_finish()
return {accepted, duplicates, conflicts}
"""
RECORD_SCRIPT = SERIES_WRITE + SERIES_FINISH + RECORD_EVENTS
RECORD_SHA = hashlib.sha1(RECORD_SCRIPT.encode()).hexdigest()
RECORD_HEADER = 20  # ARGV before the first event's


def recorded(reply: Sequence[Any]) -> RecordResult:
    """A ``RECORD_SCRIPT`` reply: accepted, duplicates and conflicts."""
    accepted, duplicates, conflicts = reply
    return RecordResult(int(accepted), int(duplicates), 0, int(conflicts))


@functools.lru_cache(maxsize=4096)
def series_name(event: str, key: str) -> str:
    """A series' name in its user hash's fields (``TYPE:KEY``), cached: a store meets the same names again and
    again, and builds one per event."""
    return f"{key_part(event)}:{key_part(key)}"


def record_args(
    scheme: Scheme, user_key: Callable[[str], str], events: Sequence[Event], times: Sequence[float], now: float
) -> tuple[list[str], list[str], int]:
    """KEYS and ARGV for ``RECORD_SCRIPT`` (see the comment above it), and how many events expired."""
    index: dict[str, int] = {}
    args = [repr(now), str(math.ceil(DEDUPE_SECONDS * 1000)), repr(now - DEDUPE_SECONDS), COUNTER, LATEST]
    for resolution in scheme.resolutions:
        args += [
            resolution.name,
            str(resolution.width),
            repr(resolution.keep),
            str(resolution.oldest(now)),
            str(resolution.prune_above),
        ]
    place = {resolution.name: n for n, resolution in enumerate(scheme.resolutions)}
    expired = 0
    for event, ts in zip(events, times, strict=True):
        kept = kept_buckets(ts, now, scheme)
        if kept is None:
            expired += 1
            continue
        user = user_key(event.user_id)
        if event.id is None:
            args += ["0", "", ""]
        else:
            ids = user + IDS
            if ids not in index:
                index[ids] = len(index) + 1
                index[user + FINGERPRINTS] = len(index) + 1
            args += [str(index[ids]), event.id, fingerprint(event)]
        names = [series_name(event.type, key) for key in series_keys(event.key)]
        buckets = ["", "", ""]
        for resolution, bucket, _ in kept:
            buckets[place[resolution.name]] = str(bucket)
        value = 1.0 if event.value is None else float(event.value)
        args += [str(index.setdefault(user, len(index) + 1)), str(len(names)), *names, repr(value), repr(ts)]
        args += buckets
    return list(index), args, expired
