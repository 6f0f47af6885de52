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

from tailor.compiler.features import FeatureRef

from .buckets import (
    Scheme,
    check_batch,
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
)
from .redis_event_record import series_name as cached_series_name
from .redis_feedback import RedisFeedback
from .redis_fleet import RedisFleet
from .redis_keys import key_part
from .redis_reads import FETCH_SCRIPT, FETCH_SHA, FetchReads
from .redis_series import (
    profile_field,
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
            fields, reads, profile = self._fetch_reads.fields(features, at)
            key = self.user_key(user_id)
            if not predictions:
                if not fields:
                    return {}
                self.round_trips += 1
                replies = await self._reads().execute_command("HMGET", key, *fields)
                return self._fetch_reads.values(reads, profile, replies, at)
            # The user hash and the predictions hash share a hash tag: two commands, one round trip.
            self.round_trips += 1
            async with self._reads().pipeline(transaction=False) as pipe:
                if fields:
                    pipe.execute_command("HMGET", key, *fields)
                pipe.execute_command("HMGET", self.predictions_key(user_id), *predictions)
                *answered, cached = await pipe.execute()
            replies = answered[0] if answered else []
            values = self._fetch_reads.values(reads, profile, replies, at)
            values[CACHED_PREDICTIONS] = {
                version: entry for version, entry in zip(predictions, cached, strict=True) if entry is not None
            }
            return values
        args, reads, profile = self._fetch_reads.script_args(features, at, consent)
        keys = [self.user_key(user_id)] if len(args) > 1 else []
        if predictions:  # a profile-like read ('m') of the user's predictions hash, KEYS[2]
            keys = [self.user_key(user_id), self.predictions_key(user_id)]
            args += ["m", str(len(predictions)), *predictions]
        if not keys:
            return {}
        replies = await self._script(self._reads(), FETCH_SCRIPT, FETCH_SHA, keys, args)
        # A user who declined gets no further reads, the predictions' included.
        declined = replies and replies[0] in (DECLINED, DECLINED.encode())
        cached = replies.pop() if predictions and not declined else None
        values = self._fetch_reads.script_values(reads, profile, replies, at, consent, features)
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
            fields, reads, profile = self._fetch_reads.fields(features, at)
            if not fields:
                return {}
            self.round_trips += 1
            replies = self._blocking_redis().execute_command("HMGET", self.user_key(user_id), *fields)
            return self._fetch_reads.values(reads, profile, replies, at)
        args, reads, profile = self._fetch_reads.script_args(features, at, consent)
        if len(args) <= 1:
            return {}
        replies = self._script_now(FETCH_SCRIPT, FETCH_SHA, [self.user_key(user_id)], args)
        return self._fetch_reads.script_values(reads, profile, replies, at, consent, features)

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
        return await self.feedback.counters.arm_totals(experiment, phase)

    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        return await self.feedback.counters.kpi_counts(query)

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

    def _record_args(
        self, events: Sequence[Event], times: Sequence[float], now: float
    ) -> tuple[list[str], list[str], int]:
        return record_args(self.scheme, self.user_key, events, times, now)
