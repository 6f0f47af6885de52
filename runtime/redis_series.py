"""The user hash: one Redis hash per user holding the profile and every counter bucket.

A decision reads one key, so its fetch is one command on one key, and erasing
a user's features deletes one key. Fields (names encoded by ``key_part``, so a
field's separators never occur in a part):

- ``p:ATTR``: a profile attribute, JSON-encoded;
- ``c:TYPE:KEY:RES:B``: the count of bucket ``B`` of the series at resolution
  ``RES`` (``m``, ``h`` or ``d``), and ``c:TYPE:KEY:RES:Bt`` its total;
- ``l:TYPE:KEY``: the latest event time of the series;
- ``pruned``: the minute bucket of the last pruning (below).

Also the Lua that updates series, shared by every script that writes events
(``RedisStore.record``'s, and the one keeping served decisions with their
impressions). Redis 7.0 has no per-field expiry, so a script prunes as it
writes: a user hash not pruned for ``PRUNE_SLACK`` minutes drops the bucket
fields no window can read any more. A series thus holds at most its kept
buckets plus ``PRUNE_SLACK`` stale minute buckets, and the key itself
expires with its longest-lived data.
"""

from __future__ import annotations

from .buckets import PRUNE_SLACK, Resolution, Scheme

PROFILE = "p:"
COUNTER = "c:"
LATEST = "l:"
PRUNED = "pruned"


def profile_field(name: str) -> str:
    """The field of a profile attribute (the name as it is: a field has no separators to protect)."""
    return PROFILE + name


def bucket_prefix(series: str, resolution: Resolution) -> str:
    """What a series' bucket fields at ``resolution`` start with; the bucket number follows (``t`` after
    it for the total). ``series`` is ``RedisStore.series_name``'s ``TYPE:KEY``."""
    return f"{COUNTER}{series}:{resolution.name}:"


def latest_field(series: str) -> str:
    """The field of a series' latest event time."""
    return LATEST + series


def parse_bucket(field: str) -> tuple[str, str, int, bool] | None:
    """``(series, resolution name, bucket, is_total)`` of a bucket field; None for any other field."""
    if not field.startswith(COUNTER):
        return None
    event, key, resolution, bucket = field[len(COUNTER) :].split(":")
    total = bucket.endswith("t")
    return f"{event}:{key}", resolution, int(bucket[:-1] if total else bucket), total


def prune_args(scheme: Scheme, now: float) -> list[str]:
    """What ``SERIES_FINISH`` takes: the minute bucket of ``now``, the minutes between prunings, and
    per resolution its name and oldest kept bucket."""
    args = [str(scheme.minute.bucket(now)), str(PRUNE_SLACK)]
    for resolution in scheme.resolutions:
        args += [resolution.name, str(resolution.oldest(now))]
    return args


# One series update: add ``count`` events totalling ``total`` to a bucket's ``field`` (and ``field .. 't'``),
# keep the latest event time in the ``latest`` field (when not ''), and note how long the user hash must
# live (``ttl`` ms) for ``series_finish``. Shared by every script that writes behavioural events.
SERIES_ADD = """
local touched = {}
local function series_add(key, field, count, total, ttl, latest, ts)
  redis.call('HINCRBY', key, field, count)
  redis.call('HINCRBYFLOAT', key, field .. 't', total)
  if latest ~= '' then
    local last = redis.call('HGET', key, latest)
    if not last or tonumber(last) < tonumber(ts) then
      redis.call('HSET', key, latest, ts)
    end
  end
  ttl = tonumber(ttl)
  if not touched[key] or touched[key] < ttl then
    touched[key] = ttl
  end
end
"""

# After a script's updates: each user hash written outlives its newest bucket, and one not pruned for a
# while drops its stale bucket fields. ``args`` is ``prune_args``'s list, from ``from`` on.
SERIES_FINISH = """
local function series_finish(args, from)
  local minute, every = tonumber(args[from]), tonumber(args[from + 1])
  local oldest = {}
  for r = from + 2, from + 6, 2 do
    oldest[args[r]] = tonumber(args[r + 1])
  end
  for key, ttl in pairs(touched) do
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
    local pruned = tonumber(redis.call('HGET', key, 'pruned'))
    if not pruned or math.abs(minute - pruned) >= every then
      local stale = {}
      for _, field in ipairs(redis.call('HKEYS', key)) do
        local resolution, bucket = string.match(field, '^c:[^:]*:[^:]*:(%a):(-?%d+)')
        if resolution and oldest[resolution] and tonumber(bucket) < oldest[resolution] then
          stale[#stale + 1] = field
          if #stale == 1000 then
            redis.call('HDEL', key, unpack(stale))
            stale = {}
          end
        end
      end
      if #stale > 0 then
        redis.call('HDEL', key, unpack(stale))
      end
      redis.call('HSET', key, 'pruned', minute)
    end
  end
end
"""
