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

import functools
import operator
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

# One series' new value: ``value`` (false when the series is new) with ``count`` events totalling
# ``total`` added to ``bucket``, and the buckets older than ``oldest`` dropped when a new bucket makes
# more than ``prune``. Pure string work: the callers decide when to read and write the field.
SERIES_MERGE = (
    SERIES_ENTRY
    + """
-- Where ``bucket`` goes in a series whose first entry is newer: the start of the first entry not newer
-- (#value + 1 when every entry is newer). A bisection over the text's positions, each step reading one
-- entry's bucket, so a long series is not walked entry by entry.
local function series_place(value, bucket)
  local lo, hi = 1, #value + 1 -- lo starts an entry newer than bucket; hi one that is not, or the end
  while true do
    local at = string.find(value, ',', math.floor((lo + hi) / 2), true) + 1
    if at >= hi then
      at = string.find(value, ',', lo, true) + 1
      if at >= hi then
        return hi
      end
    end
    if tonumber(string.match(value, '^%-?%d+', at)) > bucket then
      lo = at
    else
      hi = at
    end
  end
end

local function series_merge(value, bucket, count, total, oldest, prune)
  local added = true
  if not value then
    value = series_entry(bucket, count, total)
  else
    local b, c, t, after = string.match(value, '^(%-?%d+) (%d+) ([^,]+),()')
    b = tonumber(b)
    if b == bucket then -- the newest bucket, as most events
      value = series_entry(bucket, tonumber(c) + count, tonumber(t) + total) .. string.sub(value, after)
      added = false
    elseif b < bucket then
      value = series_entry(bucket, count, total) .. value
    else -- an older bucket: its place found by bisection; the other entries keep their text
      local at = series_place(value, bucket)
      local eb, ec, et, stop = string.match(value, '^(%-?%d+) (%d+) ([^,]+),()', at)
      if eb and tonumber(eb) == bucket then
        local entry = series_entry(bucket, tonumber(ec) + count, tonumber(et) + total)
        value = string.sub(value, 1, at - 1) .. entry .. string.sub(value, stop)
        added = false
      else
        value = string.sub(value, 1, at - 1) .. series_entry(bucket, count, total) .. string.sub(value, at)
      end
    end
  end
  -- An entry takes at least six characters, so a shorter value cannot hold more than ``prune``: not counted.
  if added and #value >= 6 * (tonumber(prune) + 1) then
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
  return value
end
"""
)

# What every script that writes behavioural events shares: ``series_merge``, and ``series_touch`` noting
# how long a user hash must live (``ttl`` ms) for ``series_finish``.
SERIES_WRITE = (
    SERIES_MERGE
    + """
local touched = {}
local function series_touch(key, ttl)
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


def _first(parts: list[bytes], lo: int, hi: int, below: int) -> int:
    """The first entry from ``lo`` whose bucket is older than ``below`` (``hi`` when none before it is):
    a bisection, the buckets growing older along a series."""
    while lo < hi:
        mid = (lo + hi) // 2
        if int(parts[3 * mid]) < below:
            hi = mid
        else:
            lo = mid + 1
    return lo


def window_sum(value: bytes | None, first: int, last: int, column: int) -> int | float:
    """The sum of a series field's counts (``column`` 1) or totals (2) over buckets ``first`` to ``last``.

    The entries in the window are one stretch of the field (buckets grow older along it), mostly the
    whole field; its ends are found by bisection. Totals are added newest first, one after another,
    as the fetch script adds them, so the sum is the same double. A missing field sums to 0.
    """
    if not value:
        return 0
    parts = value.replace(b",", b" ").split(b" ")  # bucket, count, total, bucket, ..., and b"" at the end
    n = len(parts) // 3
    start = 0 if int(parts[0]) <= last else _first(parts, 1, n, last + 1)
    end = n if int(parts[3 * n - 3]) >= first else _first(parts, start, n - 1, first)
    picked = parts[3 * start + column : 3 * end : 3]
    if column == 1:
        return sum(map(int, picked))
    return functools.reduce(operator.add, map(float, picked), 0)
