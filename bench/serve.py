"""The HTTP decision server against a floor measured in the same run.

Run: python -m bench.serve [--quick] [--redis URL] [--db N]

Absolute latencies on a small shared machine swing from run to run, so the
server is always compared with floors measured alongside it: minimal
FastAPI endpoints (``bench.floor_app``) that parse the same request body and
make one Redis call, served the same way (uvicorn, uvloop, httptools, one
worker, orjson). The layout-copying floor reads the user's keys as the store
laid them out (one pipeline of many HMGETs); the layout-free floor sends one
HMGET to one hash per user, which the benchmark writes from the same events.
The floor issue's targets are against the layout-free one. All run as
subprocesses on free ports of 127.0.0.1; ``tailor serve`` serves a generated
1,000-rule ruleset (``bench.workload``) with Redis.

Two workloads are measured, each in its own run (``bench.serve_workloads``):
the benchmark's own, described below, and one shaped like a real site (1,000
users with session-shaped histories, an experiment in the ruleset, the
decision log on), under ``"site"`` in the result.

Redis (``--redis``, else ``TAILOR_TEST_REDIS_URL``, else the local default)
is used in database ``--db`` (15 unless told), which is emptied before and
after the run; database 0 never is. It is seeded through ``RedisStore`` with
the event history of a few thousand users (views, clicks, add-to-carts and
purchases over the last two weeks in the workload's categories, with event
ids) and their profiles (tier, country), and the layout-free floor's hashes. Requests name a seeded user and a
context (page, device) and ask for every slot, so each decision reads its
features from Redis.

A third contender measures what the decision log costs: the same ``tailor
serve`` with the log on (``LOGGED_FLAGS``: the Redis Stream in the same
Redis, every decision logged, and with ``--impressions served`` every served
slot counted and recorded as an impression), against the plain server, which
runs with the log off. Its targets compare the two servers measured back to back in the
same rounds.

Measured, in rounds that alternate the order of the contenders:

- saturation: decisions per second with several connections sending back to
  back (closed loop), completions counted after a warm-up;
- latency: p50 and p99 at a fixed moderate rate (open loop: latency from each
  request's scheduled send time, so queueing shows; see ``bench.loadgen``);
- Redis round trips per decision, from the server's ``/metrics``;
- CPU per request of each process and of Redis, and the server's own stage
  histograms, at the fixed rate;
- the in-process engine on the same requests (``tailor.Engine`` with the
  features the store holds for them supplied): what HTTP, parsing and the
  store read add. A sample of HTTP decisions (at a fixed ``at``) is checked
  against the engine's answers for the same features.

The targets compare the server with the floor measured right before or
after it: the median over the rounds of the per-round ratios.

The load generator, Redis and both servers share the machine's cores, and
so does anything else running on it. Before each round the benchmark waits
(a bounded time) for a second in which other processes are nearly idle, and
it reports their load during every phase (from /proc: the machine's busy
time minus that of the benchmark's processes and of a local Redis), so a
disturbed round can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis
import redis.asyncio

import tailor
from tailor.compiler.decide import Decider
from tailor.runtime.events import Event
from tailor.runtime.redis_store import RedisStore

from . import floor_app, loadgen, writes
from .ports import free_port
from .serve_workloads import BENCH, LOGGED_FLAGS, RULES, SITE, ServeWorkload, bench_events
from .targets import Target
from .workload import COUNTRIES, DEVICES, PAGES, TIERS

EventsOf = Callable[[random.Random, str, float], list[Event]]

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DB = 15
PREFIX = "tailor:"  # RedisStore's default: tailor serve has no option for another
STARTUP_TIMEOUT = 60.0
BATCH = 1000  # events per RedisStore.record call
# The benchmark's own Redis clients (seeding, reading what is stored) wait this long: on a busy machine a
# 1,000-event batch can take longer than the server's short timeout, and nothing here is timed through them.
PATIENT_TIMEOUT = 30.0
SEED_CONCURRENCY = 4

# The runtime issue's targets, as ratios to the layout-copying floor measured in the same run.
P50_RATIO = 1.5  # /v1/decide p50 at most this times the floor's
THROUGHPUT_RATIO = 0.6  # saturation at least this times the floor's
# The floor issue's, as ratios to the layout-free floor, on each workload.
FREE_THROUGHPUT_RATIO = 1.0  # saturation at least this times the layout-free floor's
FREE_P50_RATIO = 1.0  # p50 at most this times the layout-free floor's
FREE_P99_RATIO = 1.2  # p99 at most this times the layout-free floor's
ROUND_TRIPS = 1.0  # per decision, at most
# The decision log's targets, as ratios of the server with the log on to the same server with it off.
LOG_THROUGHPUT_RATIO = 0.9  # saturation at least this times the server's without the log
LOG_P50_RATIO = 1.1  # p50 at most this times the server's without the log

ORDER = ("floor", "floor_free", "server", "logged")  # in even rounds; reversed in odd ones
LOG_OUTCOMES = ("written", "dropped", "sampled_out", "failed")


@dataclass(frozen=True)
class Settings:
    users: int
    rounds: int
    rate: float  # requests per second in the open loop
    open_seconds: float
    open_connections: int
    saturation_seconds: float
    saturation_warmup: float
    saturation_connections: int
    pool: int  # distinct requests, cycled
    engine_repeats: int
    agreement: int  # HTTP decisions checked against the engine
    settle_seconds: float  # at most this long, before each round, waiting for other processes to quiet down


FULL = Settings(
    users=3000,
    rounds=3,
    rate=300.0,
    open_seconds=10.0,
    open_connections=16,
    saturation_seconds=8.0,
    saturation_warmup=1.0,
    saturation_connections=8,
    pool=3000,
    engine_repeats=3,
    agreement=100,
    settle_seconds=30.0,
)
QUICK = Settings(
    users=300,
    rounds=1,
    rate=300.0,
    open_seconds=3.0,
    open_connections=16,
    saturation_seconds=2.0,
    saturation_warmup=0.5,
    saturation_connections=8,
    pool=300,
    engine_repeats=1,
    agreement=30,
    settle_seconds=1.5,
)


# --- Redis ---


def redis_url(base: str | None, db: int) -> str:
    """``base`` (its host, port and credentials) with database ``db``; never database 0."""
    if db == 0:
        raise SystemExit("the benchmark empties its Redis database: choose one other than 0 (--db)")
    parts = urlsplit(base or os.environ.get("TAILOR_TEST_REDIS_URL") or DEFAULT_REDIS)
    if parts.scheme not in ("redis", "rediss"):
        raise SystemExit(f"not a redis:// URL: {parts.scheme}://")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def shown(url: str) -> str:
    """The URL as it may be printed: no user or password."""
    parts = urlsplit(url)
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def empty_db(url: str) -> None:
    """FLUSHDB the benchmark's database, unless it holds keys that are not the benchmark's kind."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        db = client.connection_pool.connection_kwargs.get("db", 0)
        if int(db) == 0:
            raise SystemExit("refusing to empty Redis database 0")
        foreign = next((key for key in client.scan_iter(count=1000) if not key.startswith(PREFIX.encode())), None)
        if foreign is not None:
            raise SystemExit(f"Redis database {db} holds keys that are not tailor's ({foreign[:60]!r}); choose --db")
        client.flushdb()
    finally:
        client.close()


def user_id(index: int) -> str:
    return f"u{index:05d}"


async def _seed(url: str, users: int, seed: int, events: EventsOf) -> int:
    store = RedisStore(url, timeout=PATIENT_TIMEOUT)
    day = store.scheme.day
    rng = random.Random(seed)
    now = time.time()
    pending: list[Event] = []
    batches: list[list[Event]] = []
    hashes: list[dict[str, Any]] = []  # the layout-free floor's, by user
    for index in range(users):
        history = events(rng, user_id(index), now)
        hashes.append(floor_app.user_fields(history, day))
        pending += history
        while len(pending) >= BATCH:
            batches.append(pending[:BATCH])
            pending = pending[BATCH:]
    if pending:
        batches.append(pending)
    try:
        gate = asyncio.Semaphore(SEED_CONCURRENCY)

        async def record(batch: list[Event]) -> None:
            async with gate:
                await store.record(batch)

        profiles = [{"tier": rng.choice(TIERS), "country": rng.choice(COUNTRIES)} for _ in range(users)]

        async def profile(index: int) -> None:
            async with gate:
                await store.set_profile(user_id(index), profiles[index])

        await asyncio.gather(*(record(batch) for batch in batches))
        await asyncio.gather(*(profile(index) for index in range(users)))
    finally:
        await store.close()
    client = redis.asyncio.Redis.from_url(url, socket_timeout=PATIENT_TIMEOUT)
    try:
        for first in range(0, users, BATCH):
            pipe = client.pipeline(transaction=False)
            for index in range(first, min(users, first + BATCH)):
                pipe.hset(floor_app.user_key(user_id(index)), mapping={**profiles[index], **hashes[index]})
            await pipe.execute()
    finally:
        await client.aclose()
    return sum(len(batch) for batch in batches)


def seed(url: str, users: int, seed: int = 5, events: EventsOf = bench_events) -> dict[str, Any]:
    """Record ``users`` users' histories through the store, and write the layout-free floor's hashes."""
    start = time.perf_counter()
    events_seeded = asyncio.run(_seed(url, users, seed, events))
    seconds = time.perf_counter() - start
    client = redis.Redis.from_url(url)
    try:
        keys = int(client.dbsize())
        info = client.info("server")
    finally:
        client.close()
    return {
        "users": users,
        "events": events_seeded,
        "keys": keys,
        "seconds": seconds,
        "redis_version": info.get("redis_version", "?"),
    }


# --- requests ---


def make_requests(users: int, n: int, seed: int = 13) -> list[dict[str, Any]]:
    """Decisions for seeded users: a page and a device as context, every slot."""
    rng = random.Random(seed)
    return [
        {
            "user_id": user_id(rng.randrange(users)),
            "context": {"page": rng.choice(PAGES), "device": rng.choice(DEVICES)},
        }
        for _ in range(n)
    ]


# --- processes ---


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, args: Sequence[str], port: int, workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT)
    return Process(name, port, popen, log)


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(process: Process, path: str) -> None:
    deadline = time.perf_counter() + STARTUP_TIMEOUT
    while time.perf_counter() < deadline:
        if process.popen.poll() is not None:
            raise SystemExit(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            if http_get(process.port, path, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{process.name} was not ready within {STARTUP_TIMEOUT:g} s:\n{process.tail()}")


def scrape(port: int) -> dict[str, float]:
    """The server's Prometheus samples, by name and labels as written."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise SystemExit(f"GET /metrics answered {status}")
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


# --- measurements ---


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    return _nearest_rank(sorted(values), q) if values else math.nan


def _nearest_rank(ordered: Sequence[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# Where a latency distribution is sampled for plotting: every half percent, and the tail.
CDF_POINTS = (*(i / 200 for i in range(1, 200)), 0.995, 0.999, 1.0)


def cdf(values: Sequence[float]) -> list[tuple[float, float]]:
    """(share of requests, latency) at ``CDF_POINTS``: the distribution in a few hundred numbers."""
    ordered = sorted(values)
    return [(q, _nearest_rank(ordered, q)) for q in CDF_POINTS] if ordered else []


def encode(requests: Sequence[dict[str, Any]], port: int) -> list[bytes]:
    return [loadgen.post("/v1/decide", orjson.dumps(body), port) for body in requests]


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a process has used; NaN where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def machine_cpu() -> float:
    """CPU seconds processes of the machine have spent (user and system time of every core); NaN without /proc.

    Interrupt time is left out: the loopback traffic of the benchmark itself is handled there.
    """
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    except (OSError, ValueError):
        return math.nan
    return sum(fields) / os.sysconf("SC_CLK_TCK")  # user, nice, system


@dataclass
class Background:
    """CPU used by processes other than the benchmark's (the generator, both servers, a local Redis)."""

    pids: list[int]
    client: redis.Redis
    local_redis: bool
    start: float = 0.0
    wall: float = 0.0

    def _others(self) -> float:
        ours = sum(process_cpu(pid) for pid in self.pids)
        if self.local_redis:
            ours += redis_cpu(self.client)
        return machine_cpu() - ours

    def __enter__(self) -> Background:
        self.wall = time.perf_counter()
        self.start = self._others()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.start = self._others() - self.start

    @property
    def cores(self) -> float:
        """The other processes' average load, in cores (accounting slop can make it a little negative: 0)."""
        cores = self.start / self.wall if self.wall > 0 else math.nan
        return cores if math.isnan(cores) else max(0.0, cores)


QUIET_CORES = 0.15  # other processes' load below which the machine counts as quiet
QUIET_WINDOW = 1.0


def settle(background: Background, limit: float) -> float:
    """Wait, at most ``limit`` seconds, for a second in which other processes use little CPU; the time waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        with background:
            time.sleep(QUIET_WINDOW)
        if not background.cores > QUIET_CORES:  # NaN (no /proc) counts as quiet
            break
    return time.perf_counter() - start


DEGRADED_SAMPLES = [f'tailor_degraded_decisions_total{{reason="{reason}"}}' for reason in ("timeout", "error")]
PHASE_SAMPLES = [
    *(
        f'tailor_decision_seconds_{part}{{stage="{stage}"}}'
        for stage in ("total", "fetch")
        for part in ("count", "sum")
    ),
    *DEGRADED_SAMPLES,
]


@dataclass
class Side:
    """One contender: where it listens, and its measurements over the rounds."""

    name: str
    process: Process
    requests: list[bytes]
    throughputs: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    from_schedule: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    sent: int = 0
    not_ok: int = 0  # errors and non-200 answers
    # During the open-loop phases: completions, CPU seconds of the process and of Redis,
    # and (for the server) its stage histograms' growth.
    timed: int = 0
    saturation_other: list[float] = field(default_factory=list)  # other processes' load, cores, per phase
    latency_other: list[float] = field(default_factory=list)
    cpu: float = 0.0
    redis_cpu: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.process.port

    def summary(self) -> dict[str, Any]:
        summary = {
            "throughput": statistics.median(self.throughputs),
            "throughputs": self.throughputs,
            "p50_ms": percentile(self.latencies, 0.5) * 1000,
            "p99_ms": percentile(self.latencies, 0.99) * 1000,
            "p50_ms_by_round": [p * 1000 for p in self.p50s],
            "p99_ms_by_round": [p * 1000 for p in self.p99s],
            "cdf_ms": [(q, seconds * 1000) for q, seconds in cdf(self.latencies)],
            "p50_from_schedule_ms": percentile(self.from_schedule, 0.5) * 1000,
            "p99_from_schedule_ms": percentile(self.from_schedule, 0.99) * 1000,
            "requests": self.sent,
            "not_ok": self.not_ok,
            "saturation_other_cores": self.saturation_other,
            "latency_other_cores": self.latency_other,
            "cpu_ms_per_decision": self.cpu / self.timed * 1000 if self.timed else math.nan,
            "redis_cpu_ms_per_decision": self.redis_cpu / self.timed * 1000 if self.timed else math.nan,
        }
        if self.stages:
            stages = self.stages
            for stage in ("total", "fetch"):
                count = stages[f'tailor_decision_seconds_count{{stage="{stage}"}}']
                total = stages[f'tailor_decision_seconds_sum{{stage="{stage}"}}']
                summary[f"mean_{stage}_ms"] = total / count * 1000 if count else math.nan
            summary["degraded_at_rate"] = int(sum(stages[name] for name in DEGRADED_SAMPLES))
        return summary


def saturate(side: Side, settings: Settings, background: Background) -> None:
    with background:
        result = loadgen.run(
            loadgen.closed_loop(
                side.port,
                side.requests,
                connections=settings.saturation_connections,
                duration=settings.saturation_seconds,
                warmup=settings.saturation_warmup,
            )
        )
    side.saturation_other.append(background.cores)
    side.throughputs.append(result.throughput)
    side.sent += result.completed + result.errors
    side.not_ok += result.errors + result.completed - result.statuses[200]


def latency(side: Side, settings: Settings, client: redis.Redis, background: Background, scraped: bool) -> None:
    pid = side.process.popen.pid
    before = scrape(side.port) if scraped else {}
    cpu, store_cpu = process_cpu(pid), redis_cpu(client)
    with background:
        result = loadgen.run(
            loadgen.open_loop(
                side.port, side.requests, settings.rate, settings.open_seconds, connections=settings.open_connections
            )
        )
    side.latency_other.append(background.cores)
    side.cpu += process_cpu(pid) - cpu
    side.redis_cpu += redis_cpu(client) - store_cpu
    if scraped:
        after = scrape(side.port)
        for name in PHASE_SAMPLES:
            side.stages[name] = side.stages.get(name, 0.0) + after[name] - before[name]
    side.timed += result.completed
    side.latencies += result.latencies
    side.from_schedule += result.from_schedule
    side.p50s.append(percentile(result.latencies, 0.5))
    side.p99s.append(percentile(result.latencies, 0.99))
    side.sent += result.scheduled
    side.not_ok += result.errors + result.completed - result.statuses[200]


async def _store_features(
    url: str, decider: Decider, requests: Sequence[dict[str, Any]], at: float | None
) -> tuple[list[dict[str, Any]], list[float]]:
    """What the store holds for each request (as the server would read it), and each read's time."""
    store = RedisStore(url, timeout=PATIENT_TIMEOUT)
    features: list[dict[str, Any]] = []
    times: list[float] = []
    clock = time.perf_counter
    try:
        for body in requests:
            start = clock()
            _, needed = decider.begin(body["context"])
            features.append(await store.fetch(body["user_id"], decider.refs(needed), at))
            times.append(clock() - start)
    finally:
        await store.close()
    return features, times


def in_process(url: str, text: str, requests: Sequence[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """The engine on the same requests with the stored features supplied; and the store read alone."""
    ruleset = tailor.loads(text)
    engine = tailor.Engine(ruleset)
    decider = Decider(ruleset)
    features, reads = asyncio.run(_store_features(url, decider, requests, None))
    clock = time.perf_counter
    times: list[float] = []
    for _ in range(repeats):
        for body, supplied in zip(requests, features, strict=True):
            start = clock()
            engine.decide(body["user_id"], context=body["context"], features=supplied)
            times.append(clock() - start)
    return {
        "engine_p50_ms": percentile(times, 0.5) * 1000,
        "engine_p99_ms": percentile(times, 0.99) * 1000,
        "store_read_p50_ms": percentile(reads, 0.5) * 1000,
        "features_per_decision": statistics.mean(len(f) for f in features),
    }


def agreement(url: str, text: str, port: int, requests: Sequence[dict[str, Any]]) -> dict[str, int]:
    """HTTP decisions at a fixed ``at`` against the engine given the store's features as of then."""
    ruleset = tailor.loads(text)
    engine = tailor.Engine(ruleset)
    at = time.time()
    features, _ = asyncio.run(_store_features(url, Decider(ruleset), requests, at))

    async def ask() -> list[tuple[int, bytes]]:
        conn = await loadgen.connect(port)
        try:
            return [
                await conn.request(loadgen.post("/v1/decide", orjson.dumps({**body, "at": at}), port))
                for body in requests
            ]
        finally:
            conn.close()

    agreed = 0
    for body, supplied, (status, answer) in zip(requests, features, loadgen.run(ask()), strict=True):
        if status != 200:
            continue
        served = {slot: (value or {}).get("content") for slot, value in orjson.loads(answer)["slots"].items()}
        decision = engine.decide(body["user_id"], context=body["context"], features=supplied)
        expected = {slot: chosen.content for slot, chosen in decision.slots.items()}
        agreed += served == expected
    return {"checked": len(requests), "agreed": agreed}


# --- the run ---


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.system(),
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
    }


def run(
    quick: bool = False,
    redis_base: str | None = None,
    db: int = DEFAULT_DB,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Both workloads (``serve_workloads``): bench.serve's own, and under ``"site"`` the real-site one."""
    say = progress or (lambda message: None)
    runs = {
        workload.name: run_workload(
            workload, quick, redis_base, db, settings, lambda text, w=workload: say(f"{w.name}: {text}")
        )
        for workload in (BENCH, SITE)
    }
    return {**runs[BENCH.name], SITE.name: runs[SITE.name]}


def run_workload(
    workload: ServeWorkload,
    quick: bool = False,
    redis_base: str | None = None,
    db: int = DEFAULT_DB,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Seed Redis, start the server and both floors, measure them; the results as a dict."""
    settings = settings or (QUICK if quick else FULL)
    users = workload.users or settings.users
    if quick and workload.users:
        users = min(users, settings.users)
    say = progress or (lambda message: None)
    url = redis_url(redis_base, db)
    began = time.perf_counter()
    results: dict[str, Any] = {
        "workload": workload.name,
        "title": workload.title,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "redis": shown(url),
        "rules": RULES,
        "settings": asdict(settings),
        "server_flags": list(workload.server_flags),
    }
    empty_db(url)
    workdir = Path(tempfile.mkdtemp(prefix="tailor-bench-"))
    processes: list[Process] = []
    try:
        rules = workdir / "rules"
        rules.mkdir()
        (rules / "bench.rules").write_text(workload.ruleset)
        # All start while Redis is seeded: compiling the ruleset takes a while.
        serve_args = ["tailor.cli", "serve", str(rules), "--redis", url]
        ports: dict[str, int] = {}

        def launch(name: str, args: list[str]) -> Process:
            ports[name] = port = free_port()
            process = start(name, [*args, "--port", str(port)], port, workdir)
            processes.append(process)
            return process

        contenders = {"server": launch("server", [*serve_args, *workload.server_flags])}
        if workload.logged:
            contenders["logged"] = launch("logged", [*serve_args, *LOGGED_FLAGS])
        for name, layout in (("floor", "keys"), ("floor_free", "user")):
            contenders[name] = launch(name, ["bench.floor_app", "--redis", url, "--layout", layout])
        say(f"seeding {users:,} users")
        results["seed"] = seed(url, users, events=workload.events)
        for name, process in contenders.items():
            wait_ready(process, "/healthz" if name.startswith("floor") else "/readyz")

        bodies = make_requests(users, settings.pool)
        sides = {name: Side(name, process, encode(bodies, process.port)) for name, process in contenders.items()}
        say("warming up")
        for side in sides.values():
            loadgen.run(loadgen.open_loop(side.port, side.requests, 200.0, 1.0, connections=4))
        client = redis.Redis.from_url(url)
        pids = [os.getpid(), *(process.popen.pid for process in processes)]
        local = urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
        # In even rounds in this order, reversed in odd ones, so the floors and the server run back to back.
        order = tuple(name for name in ORDER if name in sides)
        try:
            before = scrape(ports["server"])
            logged_before = scrape(ports["logged"]) if workload.logged else {}
            background, phase = Background(pids, client, local), Background(pids, client, local)
            settled: list[float] = []
            with background:
                for round_ in range(settings.rounds):
                    say(f"round {round_ + 1}/{settings.rounds}: waiting for a quiet second")
                    settled.append(settle(phase, settings.settle_seconds))
                    names = order if round_ % 2 == 0 else order[::-1]
                    for name in names:
                        say(f"round {round_ + 1}/{settings.rounds}: {name} at saturation")
                        saturate(sides[name], settings, phase)
                    for name in names:
                        say(f"round {round_ + 1}/{settings.rounds}: {name} at {settings.rate:g} requests/s")
                        latency(sides[name], settings, client, phase, scraped=not name.startswith("floor"))
            after = scrape(ports["server"])
            logged_after = wait_logged(ports["logged"], logged_before) if workload.logged else {}
        finally:
            client.close()
        results["other_load_cores"] = background.cores
        results["settled_seconds"] = settled

        count = 'tailor_decision_seconds_count{stage="total"}'
        decisions = after[count] - before[count]
        trips = after["tailor_store_round_trips_total"] - before["tailor_store_round_trips_total"]
        degraded = {
            name.partition('reason="')[2].rstrip('"}'): int(value - before.get(name, 0.0))
            for name, value in after.items()
            if name.startswith("tailor_degraded_decisions_total")
        }
        results["floor"] = sides["floor"].summary()
        results["floor_free"] = sides["floor_free"].summary()
        results["server"] = {
            **sides["server"].summary(),
            "decisions": int(decisions),
            "round_trips": int(trips),
            "round_trips_per_decision": trips / decisions if decisions else math.nan,
            "degraded": sum(degraded.values()),
            "degraded_by_reason": degraded,
            "log": log_counts(after, before),
        }
        if workload.logged:
            results["logged"] = {
                **sides["logged"].summary(),
                "flags": list(LOGGED_FLAGS),
                "log": log_counts(logged_after, logged_before),
            }
            say("batched writes: /v1/feedback against /v1/events")
            results["writes"] = writes.measure(
                ports["server"],
                bodies[: settings.agreement * 10],
                [user_id(index) for index in range(users)],
                rounds=settings.rounds,
                seconds=settings.saturation_seconds,
                warmup=settings.saturation_warmup,
                connections=settings.saturation_connections,
                batches=settings.pool // 10,
            )
        say("the in-process engine")
        results["in_process"] = in_process(url, workload.ruleset, bodies, settings.engine_repeats)
        results["agreement"] = agreement(url, workload.ruleset, ports["server"], bodies[: settings.agreement])
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        empty_db(url)
    results["seconds"] = time.perf_counter() - began
    return results


def log_counts(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    """The decision log's records by outcome between two scrapes (none when the log is off)."""
    return {
        outcome: int(after[name] - before.get(name, 0.0))
        for outcome in LOG_OUTCOMES
        if (name := f'tailor_decision_log_records_total{{outcome="{outcome}"}}') in after
    }


def wait_logged(port: int, before: dict[str, float], limit: float = 30.0) -> dict[str, float]:
    """The logged server's samples once its log's queue is empty (a bounded wait): every record accounted for."""
    deadline = time.perf_counter() + limit
    while True:
        samples = scrape(port)
        if samples.get("tailor_decision_log_queued", 0.0) == 0 or time.perf_counter() > deadline:
            return samples
        time.sleep(0.1)


def paired(server: dict[str, Any], floor: dict[str, Any], key: str) -> float:
    """The median over the rounds of the server's value over the floor's (measured back to back)."""
    return statistics.median(a / b for a, b in zip(server[key], floor[key], strict=True))


def targets(results: dict[str, Any]) -> list[Target]:
    """The runtime issue's serving targets, from a ``run``'s result (the floor issue's: ``free_targets``)."""
    floor, server = results["floor"], results["server"]
    return [
        Target(
            f"/v1/decide p50 ≤ {P50_RATIO:g}x the floor's", paired(server, floor, "p50_ms_by_round"), P50_RATIO, "x"
        ),
        Target(
            f"saturation ≥ {THROUGHPUT_RATIO:g}x the floor's",
            paired(server, floor, "throughputs"),
            THROUGHPUT_RATIO,
            "x",
            lower_is_better=False,
        ),
        Target(
            f"≤ {ROUND_TRIPS:g} Redis round trip per decision (no models)",
            server["round_trips_per_decision"],
            ROUND_TRIPS,
            "",
        ),
        *log_targets(results),
        *writes.targets(results),
    ]


def free_targets(results: dict[str, Any]) -> list[Target]:
    """The floor issue's targets: against the layout-free floor, on each workload (none in older runs)."""
    found: list[Target] = []
    for result in (results, results.get("site")):
        if result is None or "floor_free" not in result:
            continue
        floor, server = result["floor_free"], result["server"]
        on = f"on {result['title']}"
        found += [
            Target(
                f"saturation ≥ {FREE_THROUGHPUT_RATIO:g}x the layout-free floor's, {on}",
                paired(server, floor, "throughputs"),
                FREE_THROUGHPUT_RATIO,
                "x",
                lower_is_better=False,
            ),
            Target(
                f"/v1/decide p50 ≤ {FREE_P50_RATIO:g}x the layout-free floor's, {on}",
                paired(server, floor, "p50_ms_by_round"),
                FREE_P50_RATIO,
                "x",
            ),
            Target(
                f"/v1/decide p99 ≤ {FREE_P99_RATIO:g}x the layout-free floor's, {on}",
                paired(server, floor, "p99_ms_by_round"),
                FREE_P99_RATIO,
                "x",
            ),
        ]
    return found


def log_targets(results: dict[str, Any]) -> list[Target]:
    """The decision log's targets: the server with the log on against it with the log off (none in older runs)."""
    if "logged" not in results:
        return []
    server, logged = results["server"], results["logged"]
    server_cpu, logged_cpu = server.get("cpu_ms_per_decision"), logged.get("cpu_ms_per_decision")
    redis_cpu, logged_redis = server.get("redis_cpu_ms_per_decision"), logged.get("redis_cpu_ms_per_decision")
    why = ""
    if None not in (server_cpu, logged_cpu, redis_cpu, logged_redis):
        why = (
            f"Per decision at the fixed rate, the logged server spent {logged_cpu * 1000:,.0f} µs of its CPU against "
            f"{server_cpu * 1000:,.0f} µs, and Redis {logged_redis * 1000:,.0f} µs against {redis_cpu * 1000:,.0f} µs, "
            "on the same 2 CPUs as the load generator. Most of Redis's extra is not the Stream entry (one XADD, "
            "about 8 µs) but --impressions served: each served slot is an impression event, merged into its "
            'content\'s and the "any" series at three resolutions, a dozen series rewritten in Lua a decision.'
        )
    return [
        Target(
            f"decision log on: saturation ≥ {LOG_THROUGHPUT_RATIO:g}x the server's with it off",
            paired(logged, server, "throughputs"),
            LOG_THROUGHPUT_RATIO,
            "x",
            lower_is_better=False,
            why=why,
        ),
        Target(
            f"decision log on: /v1/decide p50 ≤ {LOG_P50_RATIO:g}x the server's with it off",
            paired(logged, server, "p50_ms_by_round"),
            LOG_P50_RATIO,
            "x",
        ),
    ]


def report(results: dict[str, Any], command: str, out: TextIO = sys.stdout) -> None:
    m, s, seeded = results["machine"], results["settings"], results["seed"]
    floor, server, local = results["floor"], results["server"], results["in_process"]

    def line(text: str = "") -> None:
        print(text, file=out)

    line(f"HTTP decision server against the floor: {results['rules']:,} rules, Redis")
    line(f"machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}")
    line(f"date: {results['date']}; command: {command}")
    line(
        f"Redis {seeded['redis_version']} ({results['redis']}): {seeded['users']:,} users, "
        f"{seeded['events']:,} events, {seeded['keys']:,} keys, seeded in {seeded['seconds']:.1f} s"
    )
    line(
        f"other processes' load on the machine during the rounds: {results['other_load_cores']:.2f} cores "
        f"(load average at the start: {m['load_average']}); waited for quiet before each round: "
        + ", ".join(f"{seconds:.0f} s" for seconds in results["settled_seconds"])
    )
    line(
        f"load: {s['rounds']} round(s); saturation: {s['saturation_connections']} connections back to back for "
        f"{s['saturation_seconds']:g} s after {s['saturation_warmup']:g} s; latency: open loop at "
        f"{s['rate']:g} requests/s for {s['open_seconds']:g} s over {s['open_connections']} connections"
    )
    line()
    floors_table(results, line)
    line(
        "latency runs from each request's scheduled send time; a connection that was idle until then counts "
        "from when its timer let it send (the rows 'from the schedule alone' do not correct for that)"
    )
    line()
    line("per round, back to back (other: the load of other processes on the machine, in cores, floor/server):")
    line(
        f"{'round':>7}{'saturation':>12}{'':>8}{'ratio':>7}{'other':>11}{'p50 ms':>10}{'':>7}{'ratio':>7}{'other':>11}"
    )
    for index in range(s["rounds"]):
        fs, ss = floor["throughputs"][index], server["throughputs"][index]
        fp, sp = floor["p50_ms_by_round"][index], server["p50_ms_by_round"][index]
        line(
            f"{index + 1:>7}{fs:>12,.0f}{ss:>8,.0f}{ss / fs:>6.2f}x"
            f"{floor['saturation_other_cores'][index]:>6.2f}/{server['saturation_other_cores'][index]:.2f}"
            f"{fp:>10.2f}{sp:>7.2f}{sp / fp:>6.2f}x"
            f"{floor['latency_other_cores'][index]:>6.2f}/{server['latency_other_cores'][index]:.2f}"
        )
    line(
        f"requests sent: floor {floor['requests']:,}, server {server['requests']:,}; not 200: "
        f"floor {floor['not_ok']}, server {server['not_ok']}"
    )
    line()
    line(
        f"Redis round trips per decision: {server['round_trips_per_decision']:.3f} "
        f"({server['round_trips']:,} for {server['decisions']:,} decisions, from /metrics); "
        f"degraded decisions: {server['degraded']} {server['degraded_by_reason']}, "
        f"{server['degraded_at_rate']} of them at {s['rate']:g}/s"
    )
    line(
        f"at {s['rate']:g}/s, the server's histograms: mean decision {server['mean_total_ms']:.3f} ms, "
        f"of which the store read {server['mean_fetch_ms']:.3f} ms"
    )
    line(
        f"CPU per request at {s['rate']:g}/s: floor {floor['cpu_ms_per_decision']:.2f} ms + Redis "
        f"{floor['redis_cpu_ms_per_decision']:.3f} ms; server {server['cpu_ms_per_decision']:.2f} ms + Redis "
        f"{server['redis_cpu_ms_per_decision']:.3f} ms"
    )
    line(
        f"in-process engine, features supplied ({local['features_per_decision']:.0f} per decision): "
        f"p50 {local['engine_p50_ms']:.3f} ms, p99 {local['engine_p99_ms']:.3f} ms; "
        f"RedisStore.fetch alone: p50 {local['store_read_p50_ms']:.3f} ms"
    )
    overhead = server["p50_ms"] - local["engine_p50_ms"]
    line(
        f"server overhead over the in-process engine: p50 {server['p50_ms']:.2f} ms over HTTP - "
        f"{local['engine_p50_ms']:.3f} ms = {overhead:.2f} ms ({server['p50_ms'] / local['engine_p50_ms']:.1f}x)"
    )
    if "writes" in results:
        w = results["writes"]
        line(
            f"batched writes at saturation ({w['batch']} a batch, batches/s by round): /v1/events "
            + ", ".join(f"{rate:,.1f}" for rate in w["events_batches_per_s"])
            + "; /v1/feedback "
            + ", ".join(f"{rate:,.1f}" for rate in w["feedback_batches_per_s"])
            + f" (on {w['decisions']:,} decisions); median ratio {w['ratio']:.2f}x; not 200: {w['not_ok']}"
        )
    agreed = results["agreement"]
    line(f"HTTP decisions agreeing with the in-process engine: {agreed['agreed']}/{agreed['checked']}")
    if "logged" in results:
        log_report(results, line)
    if "site" in results:
        site = results["site"]
        line()
        line(
            f"{site['title']}: {site['seed']['users']:,} users, {site['seed']['events']:,} events, "
            f"server flags: {' '.join(site['server_flags']) or '(the defaults: the decision log on, to the Stream)'}"
        )
        floors_table(site, line)
        line(
            f"decision log records: {site['server']['log']}; degraded decisions: {site['server']['degraded']}; "
            f"HTTP decisions agreeing with the in-process engine: "
            f"{site['agreement']['agreed']}/{site['agreement']['checked']}"
        )
    line()
    line("targets (the median over the rounds of the ratio to the contender measured back to back):")
    for target in [*targets(results), *free_targets(results)]:
        line(target.line())
    line(f"({results['seconds'] + results.get('site', {}).get('seconds', 0.0):.0f} s)")


def floors_table(results: dict[str, Any], line: Callable[..., None]) -> None:
    """The server against both floors: the layout-copying one and, where measured, the layout-free one."""
    s, floor, server = results["settings"], results["floor"], results["server"]
    free = results.get("floor_free")
    rows = [
        ("decisions/s at saturation", "throughput", "{:,.0f}", "throughputs"),
        (f"p50 at {s['rate']:g}/s (ms)", "p50_ms", "{:.2f}", "p50_ms_by_round"),
        (f"p99 at {s['rate']:g}/s (ms)", "p99_ms", "{:.2f}", "p99_ms_by_round"),
        ("  p50 from the schedule alone (ms)", "p50_from_schedule_ms", "{:.2f}", None),
        ("  p99 from the schedule alone (ms)", "p99_from_schedule_ms", "{:.2f}", None),
    ]
    head = f"{'':34}{'floor':>10}{'/v1/decide':>12}{'ratio':>8}"
    line(head + (f"{'free floor':>12}{'ratio':>8}{'paired':>8}" if free else ""))
    for label, key, fmt, by_round in rows:
        text = f"{label:34}{fmt.format(floor[key]):>10}{fmt.format(server[key]):>12}{server[key] / floor[key]:>7.2f}x"
        if free:
            paired_ratio = f"{paired(server, free, by_round):>7.2f}x" if by_round and by_round in free else ""
            text += f"{fmt.format(free[key]):>12}{server[key] / free[key]:>7.2f}x{paired_ratio}"
        line(text)
    line(
        f"floor: the server's request model, one pipeline of {floor_app.COMMANDS} HMGETs on the user's keys, "
        "an orjson body shaped like a decision"
        + (
            f"; free floor: the same with {floor_app.COMMANDS_FREE} HMGET of one hash per user (the layout-free "
            "floor; paired: the median over the rounds of the per-round ratio)"
            if free
            else ""
        )
    )


def log_report(results: dict[str, Any], line: Callable[..., None]) -> None:
    """The server with the decision log on against itself with the log off, round by round."""
    s, server, logged = results["settings"], results["server"], results["logged"]
    flags = " ".join(logged["flags"]) or "the default with --redis: the Redis Stream"
    line()
    line(f"the decision log on ({flags}) against off (--decision-log off), back to back:")
    line(f"{'':34}{'log off':>10}{'log on':>12}{'ratio':>8}")
    for label, key, fmt in (
        ("decisions/s at saturation", "throughput", "{:,.0f}"),
        (f"p50 at {s['rate']:g}/s (ms)", "p50_ms", "{:.2f}"),
        (f"p99 at {s['rate']:g}/s (ms)", "p99_ms", "{:.2f}"),
    ):
        line(f"{label:34}{fmt.format(server[key]):>10}{fmt.format(logged[key]):>12}{logged[key] / server[key]:>7.2f}x")
    for index in range(s["rounds"]):
        off, on = server["throughputs"][index], logged["throughputs"][index]
        p_off, p_on = server["p50_ms_by_round"][index], logged["p50_ms_by_round"][index]
        line(f"  round {index + 1}: saturation {on / off:.2f}x, p50 {p_on / p_off:.2f}x")
    counts = ", ".join(f"{outcome} {count:,}" for outcome, count in logged["log"].items())
    line(
        f"records: {counts}; CPU per request at {s['rate']:g}/s: {logged['cpu_ms_per_decision']:.2f} ms "
        f"(off: {server['cpu_ms_per_decision']:.2f} ms) + Redis {logged['redis_cpu_ms_per_decision']:.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer users, one short round (under a minute)")
    parser.add_argument("--redis", metavar="URL", help=f"Redis (default: $TAILOR_TEST_REDIS_URL or {DEFAULT_REDIS})")
    parser.add_argument(
        "--db", type=int, default=DEFAULT_DB, help=f"the database to seed and empty (default: {DEFAULT_DB}; not 0)"
    )
    args = parser.parse_args(argv)
    command = "python -m bench.serve" + (" --quick" if args.quick else "")
    command += f" --redis {shown(args.redis)}" if args.redis else ""
    command += f" --db {args.db}" if args.db != DEFAULT_DB else ""
    results = run(args.quick, args.redis, args.db, progress=lambda message: print(f"... {message}", file=sys.stderr))
    report(results, command)


if __name__ == "__main__":
    main()
