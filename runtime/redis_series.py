"""The user hash: one Redis hash per user holding the profile and every counter series.

A decision reads one key, so its fetch is one command on one key, and erasing
a user's features deletes one key. Fields (type and key encoded by
``key_part``, so a field's separators never occur in a part):

- ``p:ATTR``: a profile attribute, JSON-encoded;
- ``c:TYPE:KEY:RES``: the series at resolution ``RES`` (``m``, ``h`` or ``d``):
  its buckets that saw events, newest first, each ``B COUNT TOTAL,``;
- ``l:TYPE:KEY``: the latest event time of the series.

A series is one field, not a field per bucket: a decision's windows name
about fifty series, while their buckets are about fifteen hundred, and a
read walks a series from its newest bucket and stops at the window's oldest.
Also here, the Lua that updates a series, shared by every script that writes
events (``RedisStore.record``'s, and the one keeping served decisions with
their impressions). An event mostly lands in a series' newest bucket, which
is rewritten in place; a write that adds a bucket to a series holding more
than ``prune_above`` drops those older than its resolution keeps, as
``MemoryStore`` does. The hash expires with its longest-lived data.
"""

from __future__ import annotations

from collections.abc import Iterator

from .buckets import Resolution

PROFILE = "p:"
COUNTER = "c:"
LATEST = "l:"


def profile_field(name: str) -> str:
    """The field of a profile attribute (the name as it is: a field has no separators to protect)."""
    return PROFILE + name


def series_field(series: str, resolution: Resolution) -> str:
    """The field of a series at ``resolution``; ``series`` is ``RedisStore.series_name``'s ``TYPE:KEY``."""
    return f"{COUNTER}{series}:{resolution.name}"


def latest_field(series: str) -> str:
    """The field of a series' latest event time."""
    return LATEST + series


def parse_series_field(field: str) -> tuple[str, str] | None:
    """``(series, resolution name)`` of a series field; None for any other field."""
    if not field.startswith(COUNTER):
        return None
    series, _, resolution = field[len(COUNTER) :].rpartition(":")
    return series, resolution


def series_buckets(value: bytes | str) -> Iterator[tuple[int, int, float]]:
    """A series field's ``(bucket, count, total)``, newest first."""
    text = value.decode() if isinstance(value, bytes) else value
    for entry in text.split(",")[:-1]:
        bucket, count, total = entry.split(" ")
        yield int(bucket), int(count), float(total)


def series_value(buckets: dict[int, tuple[int, float]]) -> str:
    """A series field's value from ``{bucket: (count, total)}``, as the scripts write it."""
    return "".join(f"{bucket} {count} {total!r}," for bucket, (count, total) in sorted(buckets.items(), reverse=True))


# Lua, shared: a bucket entry as the scripts write it; totals as '%.17g', so they read back exactly.
SERIES_ENTRY = """
local function series_entry(bucket, count, total)
  return string.format('%d %d %.17g,', bucket, count, total)
end
"""

# One series update: add ``count`` events totalling ``total`` to ``bucket`` of the series in ``field``,
# keep the latest event time in the ``latest`` field (when not ''), drop the buckets older than
# ``oldest`` when a new bucket makes more than ``prune``, and note how long the user hash must live
# (``ttl`` ms) for ``series_finish``. Shared by every script that writes behavioural events.
SERIES_ADD = (
    SERIES_ENTRY
    + """
local touched = {}
local function series_add(key, field, bucket, count, total, ttl, latest, ts, oldest, prune)
  bucket, count, total = tonumber(bucket), tonumber(count), tonumber(total)
  local value = redis.call('HGET', key, field)
  local added = true
  if not value then
    value = series_entry(bucket, count, total)
  else
    local stop = string.find(value, ',', 1, true)
    local b, c, t = string.match(value, '^(%-?%d+) (%d+) ([^,]+),')
    b = tonumber(b)
    if b == bucket then -- the newest bucket, as most events
      value = series_entry(bucket, tonumber(c) + count, tonumber(t) + total) .. string.sub(value, stop + 1)
      added = false
    elseif b < bucket then
      value = series_entry(bucket, count, total) .. value
    else -- an older bucket: walk to its place; the other entries keep their text
      local placed = false
      for at, eb, ec, et in string.gmatch(value, '()(%-?%d+) (%d+) ([^,]+),') do
        local n = tonumber(eb)
        if n == bucket then
          local after = at + #eb + #ec + #et + 3
          local entry = series_entry(bucket, tonumber(ec) + count, tonumber(et) + total)
          value = string.sub(value, 1, at - 1) .. entry .. string.sub(value, after)
          added, placed = false, true
          break
        elseif n < bucket then
          value = string.sub(value, 1, at - 1) .. series_entry(bucket, count, total) .. string.sub(value, at)
          placed = true
          break
        end
      end
      if not placed then
        value = value .. series_entry(bucket, count, total)
      end
    end
  end
  if added then
    local _, n = string.gsub(value, ',', ',')
    if n > tonumber(prune) then
      oldest = tonumber(oldest)
      for at, eb in string.gmatch(value, '()(%-?%d+) [^,]*,') do
        if tonumber(eb) < oldest then
          value = string.sub(value, 1, at - 1)
          break
        end
      end
    end
  end
  redis.call('HSET', key, field, value)
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
)

# After a script's updates: each user hash written outlives its newest bucket.
SERIES_FINISH = """
local function series_finish()
  for key, ttl in pairs(touched) do
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
"""
