"""The production feature store: profiles and time-bucketed counters in Redis.

A user's profile and counters live in one hash (``redis_series.py``), and every
fetch is one HMGET of that key (a Lua script behind a consent gate), so a decision
costs one round trip. A batch of
events is one script call per ``EVENTS_PER_CALL`` events: Redis runs one
script at a time, so a call must stay short for the decisions queued behind it
to meet their deadline. Decisions and writes use separate connection pools,
and writes at most ``WRITE_CONNECTIONS`` connections, so a burst of batches
never holds the connections decisions need, nor queues more than a few
scripts ahead of them. The key layout and memory use are described in
docs/runtime.md; the bucket arithmetic lives in ``buckets.py``, shared with
``MemoryStore`` so both stores give the same answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redis import exceptions
from redis.asyncio.cluster import RedisCluster

from tailor.compiler.features import FeatureKind, FeatureRef

from .buckets import (
    Scheme,
    check_batch,
    decode_attribute,
    split_attributes,
)
from .consent import DECLINED, ConsentGate
from .events import DEFAULT_RETENTION, Event, RecordResult
from .experiment_counts import ArmTotals
from .feedback import FeedbackMark, Join, Outcome, Tally
from .fleet import Member
from .kpis import KpiCounts, KpiQuery
from .prediction_cache import CACHED_PREDICTIONS, StoredPrediction
from .redis_clients import AsyncClient, BlockingClient, async_client, blocking_client
from .redis_event_record import (
    EVENTS_PER_CALL,
    FINGERPRINTS,
    IDS,
    RECORD_HEADER,
    RECORD_SCRIPT,
    RECORD_SHA,
    record_args,
    recorded,
    series_constants,
)
from .redis_event_record import series_name as cached_series_name
from .redis_feedback import RedisFeedback
from .redis_fleet import RedisFleet
from .redis_keys import key_part
from .redis_reads import FetchReads
from .redis_series import (
    profile_field,
    window_sum,
)
from .redis_slots import by_slot
from .redis_users import RedisUsers
from .store import EXPOSURE_TTL, Exposure, FeatureStore
from .user_data import StoreErasure, UserData

if TYPE_CHECKING:
    from .redis_feedback_batch import FeedbackCalls

DEFAULT_PREFIX = "tailor:"  # every key the store writes starts with it; the decision log's Stream too
PROFILE_TTL = 365 * 86400.0  # the user hash lives at least this long after a profile update
TIMEOUT = 0.5  # seconds: a slow Redis makes a degraded decision, not a slow one
# Connections for writes, per process: concurrent batches beyond this wait in the
# process, not in Redis, so a decision never queues behind more than this many calls.
WRITE_CONNECTIONS = 2


# Used behind a consent gate only: without one, a fetch is a plain HMGET (``RedisStore._field_reads``).
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


# KEYS[1]: the phase's counts (a hash, arm -> users); KEYS[2..]: each exposure's marker.
# ARGV[1]: the markers' TTL (ms); ARGV[2..]: each exposure's arm. A marker that is
# already set is an exposure already counted. All keys share the phase's hash tag.
EXPOSE_SCRIPT = """
local new = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[i], 'NX', 'PX', ARGV[1]) then
    redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
    new = new + 1
  end
end
return new
"""
EXPOSE_SHA = hashlib.sha1(EXPOSE_SCRIPT.encode()).hexdigest()


class RedisStore(FeatureStore):
    """Redis through redis-py's asyncio client, connected lazily in the running event loop.

    When Redis is down, ``fetch`` and ``record`` raise redis-py's ``ConnectionError``
    or ``TimeoutError`` within about ``timeout`` seconds (the server turns them into
    degraded decisions); once Redis is back, the next call reconnects by itself.
    Connections are named in ``CLIENT LIST``: ``tailor-reads`` for fetches and
    pings, ``tailor-writes`` for events and profiles.
    """

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        retention: float = DEFAULT_RETENTION,
        *,
        profile_ttl: float = PROFILE_TTL,
        timeout: float = TIMEOUT,
        cluster: bool = False,
    ):
        self.url = url
        self.cluster = cluster  # a Redis Cluster: calls go to the node of their keys' slot
        self.prefix = prefix
        self.scheme = Scheme.for_retention(retention)
        self._fetch_reads = FetchReads(self.scheme, self.series_name)
        self.profile_ttl = profile_ttl
        self.timeout = timeout
        self.round_trips = 0
        self._clients: tuple[AsyncClient, AsyncClient] | None = None  # reads, writes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._blocking: BlockingClient | None = None  # fetch_now's, made on first use
        self.feedback = RedisFeedback(self)  # join records, feedback ids, KPI counters
        self._feedback_calls: FeedbackCalls | None = None  # feedback in one call, on one Redis; made on first use
        self.users = RedisUsers(self)  # one user's data, exported or erased
        self.fleet_heartbeats = RedisFleet(self)  # which versions the server processes serve

    # --- keys ----------------------------------------------------------------------------

    def user_key(self, user_id: str) -> str:
        """The user's hash: the profile and every counter (``redis_series.py``). The braces are a hash
        tag: all the user's keys, named after it, share a cluster slot."""
        return f"{self.prefix}{{{key_part(user_id)}}}"

    @staticmethod
    def series_name(event: str, key: str) -> str:
        """An event type and key as the user hash's fields name them."""
        return cached_series_name(event, key)

    def decisions_index_key(self, user_id: str) -> str:
        """The set of the decision ids whose join records are the user's (``redis_feedback``)."""
        return f"{self.user_key(user_id)}:j"

    def feedback_index_key(self, user_id: str) -> str:
        """The set of the feedback ids counted on the user's decisions."""
        return f"{self.user_key(user_id)}:f"

    def exposures_index_key(self, user_id: str) -> str:
        """The set of the experiment phases (``experiment:phase``, quoted) the user was exposed to."""
        return f"{self.user_key(user_id)}:x"

    def predictions_key(self, user_id: str) -> str:
        """The user's cached model scores (``--prediction-cache store``): model version -> entry."""
        return f"{self.user_key(user_id)}:m"

    def ids_key(self, user_id: str) -> str:
        return self.user_key(user_id) + IDS

    def fingerprints_key(self, user_id: str) -> str:
        return self.user_key(user_id) + FINGERPRINTS

    def _phase(self, experiment: str, phase: str) -> str:
        # One phase's keys share a hash tag, so one script call can mark and count them.
        return f"{self.prefix}{{x:{key_part(experiment)}:{phase}}}"

    @staticmethod
    def phase_name(experiment: str, phase: str) -> str:
        """An experiment phase as the user's exposures index names it."""
        return f"{key_part(experiment)}:{phase}"

    def exposure_counts_key(self, experiment: str, phase: str) -> str:
        return f"{self._phase(experiment, phase)}:n"

    def exposure_key(self, experiment: str, phase: str, user_id: str) -> str:
        return f"{self._phase(experiment, phase)}:u:{key_part(user_id)}"

    def model_counts_key(self, model: str, version: str) -> str:
        return f"{self.prefix}model:{key_part(model)}:{version}"

    # --- the interface -------------------------------------------------------------------

    async def fetch(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
        predictions: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One round trip reads every feature (and the cached ``predictions``): a plain ``HMGET`` of the
        user hash, or behind a consent gate ``FETCH_SCRIPT``, which reads nothing personal for a user who
        declined."""
        at = time.time() if at is None else at
        if consent is None:
            fields, reads, profile = self._field_reads(features, at)
            key = self.user_key(user_id)
            if not predictions:
                if not fields:
                    return {}
                self.round_trips += 1
                replies = await self._reads().execute_command("HMGET", key, *fields)
                return self._field_values(reads, profile, replies, at)
            # The user hash and the predictions hash share a hash tag: two commands, one round trip.
            self.round_trips += 1
            async with self._reads().pipeline(transaction=False) as pipe:
                if fields:
                    pipe.execute_command("HMGET", key, *fields)
                pipe.execute_command("HMGET", self.predictions_key(user_id), *predictions)
                *answered, cached = await pipe.execute()
            replies = answered[0] if answered else []
            values = self._field_values(reads, profile, replies, at)
            values[CACHED_PREDICTIONS] = {
                version: entry for version, entry in zip(predictions, cached, strict=True) if entry is not None
            }
            return values
        keys, args, reads, profile = self._fetch_args(user_id, features, at, consent)
        if predictions:  # a profile-like read ('m') of the user's predictions hash, KEYS[2]
            keys = [self.user_key(user_id), self.predictions_key(user_id)]
            args += ["m", str(len(predictions)), *predictions]
        if not keys:
            return {}
        replies = await self._script(self._reads(), FETCH_SCRIPT, FETCH_SHA, keys, args)
        # A user who declined gets no further reads, the predictions' included.
        declined = replies and replies[0] in (DECLINED, DECLINED.encode())
        cached = replies.pop() if predictions and not declined else None
        values = self._fetch_values(reads, profile, replies, at, consent, features)
        if predictions:
            values[CACHED_PREDICTIONS] = {
                version: entry for version, entry in zip(predictions, cached or (), strict=False) if entry is not None
            }
        return values

    def fetch_now(
        self,
        user_id: str,
        features: Sequence[FeatureRef],
        at: float | None = None,
        *,
        consent: ConsentGate | None = None,
    ) -> dict[str, Any]:
        """``fetch`` through a blocking client, for the synchronous engine: any thread, no event loop."""
        at = time.time() if at is None else at
        if consent is None:
            fields, reads, profile = self._field_reads(features, at)
            if not fields:
                return {}
            self.round_trips += 1
            replies = self._blocking_redis().execute_command("HMGET", self.user_key(user_id), *fields)
            return self._field_values(reads, profile, replies, at)
        keys, args, reads, profile = self._fetch_args(user_id, features, at, consent)
        if not keys:
            return {}
        replies = self._script_now(FETCH_SCRIPT, FETCH_SHA, keys, args)
        return self._fetch_values(reads, profile, replies, at, consent, features)

    def _field_reads(
        self, features: Sequence[FeatureRef], at: float
    ) -> tuple[list[str], list[tuple[FeatureRef, str, int, int]], list[FeatureRef]]:
        """The user hash fields a fetch without a consent gate reads, in order: each series or latest
        time ``(feature, what, first bucket, last bucket)`` answers, then the profile attributes."""
        fields: list[str] = []
        reads: list[tuple[FeatureRef, str, int, int]] = []
        profile: list[FeatureRef] = []
        windows: dict[float, tuple[int, int]] = {}  # a window's first and last bucket at ``at``, by span
        plan = self._fetch_reads.read
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

    def _field_values(
        self,
        reads: list[tuple[FeatureRef, str, int, int]],
        profile: list[FeatureRef],
        replies: Sequence[Any],
        at: float,
    ) -> dict[str, Any]:
        """Values by feature text from the ``HMGET`` of ``_field_reads``' fields: each window summed here,
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

    def _fetch_args(
        self, user_id: str, features: Sequence[FeatureRef], at: float, consent: ConsentGate | None = None
    ) -> tuple[list[str], list[str], list[FeatureRef], list[FeatureRef]]:
        """KEYS and ARGV for ``FETCH_SCRIPT``, and the features its replies answer, in order."""
        args: list[str] = [""]
        if consent is not None:
            public = [profile_field(ref.name) for ref in consent.allowed(features)]
            args = [profile_field(consent.attribute), str(len(public)), *public]
        reads: list[FeatureRef] = []
        windows: dict[float, tuple[str, str]] = {}  # a window's first and last bucket at ``at``, by span
        plan = self._fetch_reads.read
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
        keys = [self.user_key(user_id)] if len(args) > 1 else []
        return keys, args, reads, profile

    def _fetch_values(
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

    async def record(self, events: Sequence[Event], now: float | None = None) -> RecordResult:
        """One script call per ``EVENTS_PER_CALL`` events: de-duplication, counters, TTLs, pruning.

        The whole batch is checked before the first call, so a bad event stores
        nothing. Each call is atomic, the batch is not: when a call fails, the
        chunks before it are stored. The client retries once on a lost connection;
        give events ids and such a retry (or the caller's) never counts an event twice.
        """
        now = time.time() if now is None else float(now)
        times = check_batch(events, now)  # raises before anything is sent
        result = RecordResult()
        if self.cluster:
            # Per chunk, one call per slot its users hash to, one pipeline per node, the nodes at once.
            for start in range(0, len(events), EVENTS_PER_CALL):
                chunk = range(start, min(start + EVENTS_PER_CALL, len(events)))
                calls = []
                for group in by_slot(chunk, lambda n: self.user_key(events[n].user_id)).values():
                    keys, args, expired = self._record_args([events[n] for n in group], [times[n] for n in group], now)
                    result += RecordResult(expired=expired)
                    if len(args) > RECORD_HEADER:
                        calls.append((keys, args))
                for reply in await self._scripts(self._writes(), RECORD_SCRIPT, RECORD_SHA, calls):
                    result += recorded(reply)
            return result
        # The next chunk's arguments are built while Redis runs the call before it; it is sent once that
        # call has answered, so the calls still run in order, one at a time.
        sent: asyncio.Task[Any] | None = None
        try:
            for start in range(0, len(events), EVENTS_PER_CALL):
                keys, args, expired = self._record_args(
                    events[start : start + EVENTS_PER_CALL], times[start : start + EVENTS_PER_CALL], now
                )
                result += RecordResult(expired=expired)
                if sent is not None:
                    result += recorded(await sent)
                    sent = None
                if len(args) > RECORD_HEADER:
                    sent = asyncio.ensure_future(self._script(self._writes(), RECORD_SCRIPT, RECORD_SHA, keys, args))
            if sent is not None:
                result += recorded(await sent)
                sent = None
        finally:
            if sent is not None:  # cancelled while building or waiting: the call under way is cancelled too
                sent.cancel()
        return result

    async def set_profile(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        sets, deletes = split_attributes(attributes)  # raises before anything is sent
        if not sets and not deletes:
            return
        key = self.user_key(user_id)
        async with self._writes().pipeline(transaction=True) as pipe:
            if sets:
                pipe.hset(key, mapping={profile_field(name): text for name, text in sets.items()})
            if deletes:
                pipe.hdel(key, *map(profile_field, deletes))
            # The user hash lives at least ``profile_ttl`` after this, and as long as its counters need.
            pipe.pexpire(key, math.ceil(self.profile_ttl * 1000), gt=True)
            pipe.pexpire(key, math.ceil(self.profile_ttl * 1000), nx=True)
            self.round_trips += 1
            await pipe.execute()

    async def expose(self, exposures: Sequence[Exposure]) -> int:
        """One script call per experiment phase in the batch (its keys share a cluster slot)."""
        by_phase: dict[tuple[str, str], list[Exposure]] = {}
        for exposure in exposures:
            by_phase.setdefault((exposure.experiment, exposure.phase), []).append(exposure)
        ttl = str(math.ceil(EXPOSURE_TTL * 1000))
        # Each user's index first, so no remembered exposure is ever missing from it (see redis_users.py).
        async with self._writes().pipeline(transaction=False) as pipe:
            for exposure in exposures:
                index = self.exposures_index_key(exposure.user_id)
                pipe.sadd(index, self.phase_name(exposure.experiment, exposure.phase))
                pipe.pexpire(index, ttl)
            self.round_trips += 1
            await pipe.execute()
        new = 0
        for (experiment, phase), batch in by_phase.items():
            keys = [self.exposure_counts_key(experiment, phase)]
            keys += [self.exposure_key(experiment, phase, exposure.user_id) for exposure in batch]
            args = [ttl, *(exposure.arm for exposure in batch)]
            new += int(await self._script(self._writes(), EXPOSE_SCRIPT, EXPOSE_SHA, keys, args))
        return new

    async def exposures(self, experiment: str, phase: str) -> dict[str, int]:
        self.round_trips += 1
        counts = await self._reads().hgetall(self.exposure_counts_key(experiment, phase))
        return {arm.decode() if isinstance(arm, bytes) else arm: int(count) for arm, count in counts.items()}

    async def declined(self, user_ids: Sequence[str], attribute: str) -> set[str]:
        """One pipeline of HGETs, on the readers' pool."""
        users = sorted(set(user_ids))
        if not users:
            return set()
        async with self._reads().pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.hget(self.user_key(user_id), profile_field(attribute))
            self.round_trips += 1
            stored = await pipe.execute()
        return {user_id for user_id, text in zip(users, stored, strict=True) if text in (DECLINED, DECLINED.encode())}

    async def ping(self) -> bool:
        try:
            self.round_trips += 1
            return bool(await self._reads().ping())
        except Exception:  # any failure means "not answering"; ping never raises
            return False

    async def keep_decisions(self, joins: Sequence[Join], keep: float, *, impressions: bool = False) -> None:
        await self.feedback.keep_decisions(joins, keep, impressions)

    async def joins(self, decision_ids: Sequence[str], *, marks: bool = True) -> dict[str, Join]:
        return await self.feedback.joins(decision_ids, marks=marks)

    async def count_feedback(self, tallies: Sequence[Tally], keep: float) -> list[Outcome]:
        return await self.feedback.count_feedback(tallies, keep)

    async def take_feedback(
        self, tallies: Sequence[Tally], events: Sequence[Event], keep: float, now: float
    ) -> list[Outcome]:
        """One call a chunk on one Redis (``redis_feedback_batch.py``); on a cluster, the three steps."""
        if self.cluster:
            return await super().take_feedback(tallies, events, keep, now)
        if self._feedback_calls is None:
            from .redis_feedback_batch import FeedbackCalls  # it runs this module's events script

            self._feedback_calls = FeedbackCalls(self.feedback)
        return await self._feedback_calls.take(tallies, events, keep, now)

    async def arm_totals(self, experiment: str, phase: str) -> ArmTotals:
        return await self.feedback.arm_totals(experiment, phase)

    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        return await self.feedback.kpi_counts(query)

    async def export(self, user_id: str) -> UserData:
        return await self.users.export(user_id)

    async def erase(self, user_id: str) -> StoreErasure:
        return await self.users.erase(user_id)

    async def mark_feedback(self, marks: Sequence[tuple[str, FeedbackMark]]) -> None:
        await self.feedback.mark_feedback(marks)

    async def add_model_counts(self, counts: Mapping[tuple[str, str, str], float]) -> None:
        """One transaction of HINCRBYs (HINCRBYFLOAT for sums that are not whole)."""
        if not counts:
            return
        # One transaction on one Redis; on a cluster each model's key is in a slot of its own.
        async with self._writes().pipeline(transaction=not self.cluster) as pipe:
            for (model, version, name), amount in counts.items():
                key = self.model_counts_key(model, version)
                if float(amount).is_integer():
                    pipe.hincrby(key, name, int(amount))
                else:
                    pipe.hincrbyfloat(key, name, amount)
            await pipe.execute()

    async def model_counts(self, model: str, version: str) -> dict[str, float]:
        self.round_trips += 1
        counts = await self._reads().hgetall(self.model_counts_key(model, version))
        return {name.decode(): float(amount) for name, amount in counts.items()}

    async def keep_predictions(self, predictions: Sequence[StoredPrediction], ttl: float) -> None:
        """One pipeline of HSETs and PEXPIREs, off the response path (not counted as a decision's round trip)."""
        by_user: dict[str, dict[str, str]] = {}
        for user_id, version, entry in predictions:
            by_user.setdefault(user_id, {})[version] = entry
        ttl_ms = math.ceil(ttl * 1000)
        async with self._writes().pipeline(transaction=False) as pipe:
            for user_id, fields in by_user.items():
                key = self.predictions_key(user_id)
                pipe.hset(key, mapping=fields)
                pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    async def beat(self, member: Member) -> None:
        await self.fleet_heartbeats.beat(member)

    async def leave(self, process: str) -> None:
        await self.fleet_heartbeats.leave(process)

    async def fleet(self, now: float) -> list[Member]:
        return await self.fleet_heartbeats.fleet(now)

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None and self._loop is asyncio.get_running_loop():
            for client in clients:
                await client.aclose()
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            blocking.close()

    # --- internals ---------------------------------------------------------------------

    def _reads(self) -> AsyncClient:
        """The client decisions (and pings) use: its pool never waits for a write."""
        return self._connected()[0]

    def _writes(self) -> AsyncClient:
        """The client events and profiles use: at most ``WRITE_CONNECTIONS`` at once (per node on a cluster)."""
        return self._connected()[1]

    def _connected(self) -> tuple[AsyncClient, AsyncClient]:
        """The clients of the running loop: connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        if self._clients is None or self._loop is not loop:
            self._clients = (
                async_client(self.url, cluster=self.cluster, name="tailor-reads", timeout=self.timeout),
                async_client(
                    self.url,
                    cluster=self.cluster,
                    name="tailor-writes",
                    timeout=self.timeout,
                    max_connections=WRITE_CONNECTIONS,
                ),
            )
            self._loop = loop
        return self._clients

    def _blocking_redis(self) -> BlockingClient:
        """The blocking client of ``fetch_now``, with the same timeouts and retry as the others."""
        if self._blocking is None:
            self._blocking = blocking_client(self.url, cluster=self.cluster, name="tailor-reads", timeout=self.timeout)
        return self._blocking

    def _script_now(self, script: str, sha: str, keys: list[str], args: list[str]) -> Any:
        """``_script`` through the blocking client."""
        client = self._blocking_redis()
        try:
            self.round_trips += 1
            return client.evalsha(sha, len(keys), *keys, *args)
        except exceptions.NoScriptError:
            self.round_trips += 1
            return client.eval(script, len(keys), *keys, *args)

    async def _script(
        self,
        client: AsyncClient,
        script: str,
        sha: str,
        keys: list[str],
        args: Sequence[str | bytes],
        *,
        counted: bool = True,
    ) -> Any:
        """One round trip: the script by its digest, or, when this Redis has not seen it
        (new, restarted or flushed), a second one that sends the script itself. ``counted``: a caller's
        round trip (background writes are not)."""
        try:
            self.round_trips += counted
            return await client.evalsha(sha, len(keys), *keys, *args)
        except exceptions.NoScriptError:
            self.round_trips += counted
            return await client.eval(script, len(keys), *keys, *args)

    async def _scripts(
        self,
        client: AsyncClient,
        script: str,
        sha: str,
        calls: Sequence[tuple[list[str], Sequence[str | bytes]]],
        *,
        counted: bool = True,
    ) -> list[Any]:
        """Script calls whose keys may lie on several nodes of a cluster (each call's keys in one slot):
        one pipeline per node, sent to the nodes concurrently; a round trip per node. A node that has not
        seen the script gets it, and the calls it refused are sent again. The replies, in call order."""
        if not calls:
            return []
        if not isinstance(client, RedisCluster):
            return [await self._script(client, script, sha, keys, args, counted=counted) for keys, args in calls]
        replies = await self._pipelined(client, sha, calls, counted)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, exceptions.NoScriptError)]
        if missing:
            await client.execute_command("SCRIPT LOAD", script, target_nodes=RedisCluster.PRIMARIES)
            for i, reply in zip(
                missing, await self._pipelined(client, sha, [calls[i] for i in missing], counted), strict=True
            ):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _pipelined(
        self, client: RedisCluster, sha: str, calls: Sequence[tuple[list[str], Sequence[str | bytes]]], counted: bool
    ) -> list[Any]:
        await client.initialize()  # the map of slots, on the first call (a no-op after)
        nodes = {client.get_node_from_key(keys[0]).name for keys, _ in calls}
        self.round_trips += len(nodes) if counted else 0
        async with client.pipeline() as pipe:
            for keys, args in calls:
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)  # pipe.evalsha is refused on a cluster
            return await pipe.execute(raise_on_error=False)

    def _series_constants(self, now: float) -> dict[str, tuple[str, str, bool]]:
        return series_constants(self.scheme, now)

    def _record_args(
        self, events: Sequence[Event], times: Sequence[float], now: float
    ) -> tuple[list[str], list[str], int]:
        return record_args(self.scheme, self.user_key, events, times, now)
