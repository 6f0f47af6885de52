"""How a fetch reads the user hash: each feature's read worked out once, and the replies made values.

A decision reads a few dozen counters, and the names of their fields, their
resolutions and their spans never change while the ruleset is served: only
the buckets do, with the time of the decision. Building the field names and
choosing the resolution anew for every feature of every decision was a
large part of what a decision cost the server, so ``FetchReads`` keeps them
by feature and a fetch fills in only the buckets, once per distinct window.
Here too: the fields a plain ``HMGET`` reads and the values its replies make,
and ``FETCH_SCRIPT``'s arguments and replies, for a fetch behind a consent
gate. ``RedisStore.fetch`` sends them; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from tailor.compiler.features import FeatureKind, FeatureRef

from .buckets import Resolution, Scheme, decode_attribute
from .consent import DECLINED, ConsentGate
from .redis_series import latest_field, profile_field, series_field, window_sum

# Used behind a consent gate only: without one, a fetch is a plain HMGET (``FetchReads.fields``).
# KEYS[1]: the user's hash (``redis_series.py``). ARGV, per read: what to read ('c' a
# count, 't' a total, 'l' the latest event time, 'p' profile attributes, 'm' cached model
# scores from KEYS[2], the user's predictions hash), then for 'c' and 't' the series'
# field and the first and last bucket, for 'l' the field, for 'p' and 'm' the number of
# fields and the fields. The series and latest times are read by one
# HMGET, and a window's buckets summed here, from the newest down to its first. Totals
# come back as text ('%.17g'), since Redis would truncate a Lua number to an integer.
# ARGV[1] is the consent attribute's field, or '' without a consent gate. With one,
# ARGV[2] is the number of public attributes' fields, named next: the attribute is read
# before anything else, and reply 1 is its value. When it is 'false' the script reads
# the public attributes alone (reply 2) and stops, so nothing personal is read;
# otherwise the reads follow, their replies after it.
FETCH_SCRIPT = """
local key = KEYS[1]
local replies = {}
local i = 2
if ARGV[1] ~= '' then
  local consent = redis.call('HGET', key, ARGV[1])
  local n = tonumber(ARGV[2])
  replies[1] = consent
  if consent == 'false' then
    if n > 0 then
      replies[2] = redis.call('HMGET', key, unpack(ARGV, 3, 2 + n))
    end
    return replies
  end
  i = 3 + n
end
local fields, reads = {}, {}
while i <= #ARGV do
  local what = ARGV[i]
  local r = #replies + 1
  if what == 'p' or what == 'm' then
    local n = tonumber(ARGV[i + 1])
    replies[r] = redis.call('HMGET', what == 'p' and key or KEYS[2], unpack(ARGV, i + 2, i + 1 + n))
    i = i + 2 + n
  else
    replies[r] = false
    fields[#fields + 1] = ARGV[i + 1]
    reads[#reads + 1] = {r, what, i}
    i = i + (what == 'l' and 2 or 4)
  end
end
if #fields > 0 then
  local values = redis.call('HMGET', key, unpack(fields))
  for n, read in ipairs(reads) do
    local r, what, a = read[1], read[2], read[3]
    local value = values[n]
    if what == 'l' then
      replies[r] = value
    else
      local first, last = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
      local sum = 0
      if value then
        for b, c, t in string.gmatch(value, '(%-?%d+) (%d+) ([^,]+),') do
          b = tonumber(b)
          if b < first then
            break
          end
          if b <= last then
            sum = sum + tonumber(what == 'c' and c or t)
          end
        end
      end
      replies[r] = what == 'c' and sum or string.format('%.17g', sum)
    end
  end
end
return replies
"""
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode()).hexdigest()

MAX_KEPT = 100_000  # features kept; past it the memo starts again (rulesets never come near it)

# (what, field, resolution, span) for a count or total; ("l", field) for since(); None for anything else.
Read = tuple[str, str, Resolution, float] | tuple[str, str] | None


class FetchReads:
    """Each feature's read, kept by the feature's text (checked against the feature itself).

    ``series_name`` names a series as the store does (``RedisStore.series_name``).
    """

    def __init__(self, scheme: Scheme, series_name: Callable[[str, str], str]):
        self.scheme = scheme
        self.series_name = series_name
        self._reads: dict[str, tuple[FeatureRef, Read]] = {}

    def read(self, ref: FeatureRef) -> Read:
        kept = self._reads.get(ref.text)
        if kept is not None and (kept[0] is ref or kept[0] == ref):
            return kept[1]
        if len(self._reads) >= MAX_KEPT:
            self._reads.clear()
        read = self._plan(ref)
        self._reads[ref.text] = (ref, read)
        return read

    def _plan(self, ref: FeatureRef) -> Read:
        if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
            scheme = self.scheme
            span = min(max(ref.window, 0.0), scheme.retention)  # as Scheme.window chooses
            resolution = next((r for r in scheme.resolutions if span <= r.keep), scheme.day)
            what = "c" if ref.kind is FeatureKind.COUNT else "t"
            return (what, series_field(self.series_name(ref.event, ref.key), resolution), resolution, span)
        if ref.kind is FeatureKind.SINCE:
            return ("l", latest_field(self.series_name(ref.event, ref.key)))
        return None

    def fields(
        self, features: Sequence[FeatureRef], at: float
    ) -> tuple[list[str], list[tuple[FeatureRef, str, int, int]], list[FeatureRef]]:
        """The user hash fields a fetch without a consent gate reads, in order: each series or latest
        time ``(feature, what, first bucket, last bucket)`` answers, then the profile attributes."""
        fields: list[str] = []
        reads: list[tuple[FeatureRef, str, int, int]] = []
        profile: list[FeatureRef] = []
        windows: dict[float, tuple[int, int]] = {}  # a window's first and last bucket at ``at``, by span
        plan = self.read
        for ref in features:
            read = plan(ref)
            if read is None:
                if ref.kind is FeatureKind.PROFILE:
                    profile.append(ref)
                continue
            fields.append(read[1])
            if len(read) == 2:
                reads.append((ref, "l", 0, 0))
            else:
                what, _, resolution, span = read
                bounds = windows.get(span)
                if bounds is None:
                    bounds = windows[span] = (resolution.bucket(at - span), resolution.bucket(at))
                reads.append((ref, what, *bounds))
        fields += [profile_field(ref.name) for ref in profile]
        return fields, reads, profile

    def values(
        self,
        reads: list[tuple[FeatureRef, str, int, int]],
        profile: list[FeatureRef],
        replies: Sequence[Any],
        at: float,
    ) -> dict[str, Any]:
        """Values by feature text from the ``HMGET`` of ``fields``' fields: each window summed here,
        as ``FETCH_SCRIPT`` sums it in Redis."""
        values: dict[str, Any] = {}
        for (ref, what, first, last), reply in zip(reads, replies, strict=False):
            if what == "c":
                values[ref.text] = int(window_sum(reply, first, last, 1))
            elif what == "t":
                values[ref.text] = float(window_sum(reply, first, last, 2))
            else:
                since = self.scheme.since(None if reply is None else float(reply), at)
                if since is not None:
                    values[ref.text] = since
        for ref, text in zip(profile, replies[len(reads) :], strict=True):
            if text is not None:
                values[ref.text] = decode_attribute(text)
        return values

    def script_args(
        self, features: Sequence[FeatureRef], at: float, consent: ConsentGate | None = None
    ) -> tuple[list[str], list[FeatureRef], list[FeatureRef]]:
        """ARGV for ``FETCH_SCRIPT`` (no more than its first argument when there is nothing to read: then no
        call is made), and the features its replies answer, in order."""
        args: list[str] = [""]
        if consent is not None:
            public = [profile_field(ref.name) for ref in consent.allowed(features)]
            args = [profile_field(consent.attribute), str(len(public)), *public]
        reads: list[FeatureRef] = []
        windows: dict[float, tuple[str, str]] = {}  # a window's first and last bucket at ``at``, by span
        plan = self.read
        for ref in features:
            read = plan(ref)
            if read is None:
                continue
            if len(read) == 2:
                args += read  # since(): "l", the latest event's field
            else:
                what, field, resolution, span = read
                bounds = windows.get(span)
                if bounds is None:
                    bounds = windows[span] = (str(resolution.bucket(at - span)), str(resolution.bucket(at)))
                args += [what, field, *bounds]
            reads.append(ref)
        profile = [ref for ref in features if ref.kind is FeatureKind.PROFILE]
        if profile:
            args += ["p", str(len(profile)), *(profile_field(ref.name) for ref in profile)]
        return args, reads, profile

    def script_values(
        self,
        reads: list[FeatureRef],
        profile: list[FeatureRef],
        replies: list[Any],
        at: float,
        consent: ConsentGate | None = None,
        features: Sequence[FeatureRef] = (),
    ) -> dict[str, Any]:
        """Values by feature text from ``FETCH_SCRIPT``'s replies."""
        values: dict[str, Any] = {}
        if consent is not None:
            stored, replies = replies[0], replies[1:]
            if stored is not None:
                values[consent.text] = decode_attribute(stored)
            if stored in (DECLINED, DECLINED.encode()):
                public = consent.allowed(features)
                for ref, text in zip(public, replies[0] if replies else (), strict=False):
                    if text is not None:
                        values[ref.text] = decode_attribute(text)
                return values
        for ref, reply in zip(reads, replies, strict=False):
            if ref.kind is FeatureKind.COUNT:
                values[ref.text] = int(reply)
            elif ref.kind is FeatureKind.TOTAL:
                values[ref.text] = float(reply)
            else:
                since = self.scheme.since(None if reply is None else float(reply), at)
                if since is not None:
                    values[ref.text] = since
        if profile:
            for ref, text in zip(profile, replies[-1], strict=True):
                if text is not None:
                    values[ref.text] = decode_attribute(text)
        return values
