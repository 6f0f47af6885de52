"""Starting the server: options, the store, the app, logging, and uvicorn.

``serve`` runs the app with uvicorn on uvloop and httptools; ``tailor serve``
is a thin layer over it. With more than one worker, each worker process
rebuilds the app from the options in ``OPTIONS_ENV`` (``app_from_env``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI

from tailor.compiler.plan import PredicateStats

from .buckets import Scheme
from .canary import DEFAULT_CANARY_SHARE, Canary
from .consent import consent_attribute
from .decision_log import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEN, DEFAULT_QUEUE, DEFAULT_SAMPLE, LogSettings, open_log
from .events import DEFAULT_RETENTION
from .feedback import DEFAULT_ATTRIBUTION, Impressions
from .fleet import DEFAULT_HEARTBEAT
from .http import create_app
from .http.console_routes import DEFAULT_CONSOLE
from .http.middleware import authentication
from .memory_store import DEFAULT_MAX_USERS
from .model_limits import DEFAULT_MODEL_MAX_BYTES, DEFAULT_MODEL_READ_TIMEOUT, ModelLimits
from .prediction_cache import DEFAULT_PREDICTION_CACHE, PredictionCache
from .redis_urls import redis_url_problem, without_password
from .reload import DEFAULT_RELOAD_TIMEOUT, DEFAULT_SETTLE_MS
from .ruleset_loader import load
from .service import DEFAULT_DEADLINE_MS, DEFAULT_SAMPLE_EVERY, DecisionService
from .shadow import DEFAULT_SHADOW_SAMPLE, Shadow
from .store import FeatureStore

log = logging.getLogger("tailor.runtime")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``tailor serve`` takes; JSON-able, so worker processes can rebuild the app."""

    path: str
    redis: str | None = None
    redis_cluster: bool = False  # treat --redis as a Redis Cluster without asking it
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    deadline_ms: float = DEFAULT_DEADLINE_MS
    retention: float = DEFAULT_RETENTION
    stats: str | None = None
    sample_every: int = DEFAULT_SAMPLE_EVERY
    api_key: str | None = None  # None: no authentication; never empty
    public_decisions: bool = False  # with a key: /v1/decide alone needs none
    log_level: str = "info"
    access_log: bool = False
    reload_timeout: float = DEFAULT_RELOAD_TIMEOUT  # seconds a whole reload may take
    settle_ms: float = DEFAULT_SETTLE_MS  # quiet time before an edit is compiled
    model_max_bytes: int = DEFAULT_MODEL_MAX_BYTES
    model_read_timeout: float = DEFAULT_MODEL_READ_TIMEOUT
    memory_max_users: int = DEFAULT_MAX_USERS  # without --redis: the least recently active users beyond it go
    decision_log: str | None = None  # "off", a directory, a Redis URL; None: the --redis Stream, else off
    log_sample: float = DEFAULT_SAMPLE
    log_queue: int = DEFAULT_QUEUE
    log_max_len: int = DEFAULT_MAX_LEN
    log_max_bytes: int = DEFAULT_MAX_BYTES
    attribution: float = DEFAULT_ATTRIBUTION  # seconds a served decision's join record is kept for feedback
    impressions: str = Impressions.FEEDBACK.value  # where impressions come from: feedback items, or served slots
    consent_attribute: str | None = None  # "user.consent": the profile attribute whose false means "declined"
    shadow: str | None = None  # a candidate ruleset decided beside the served one, never served
    shadow_sample: float = DEFAULT_SHADOW_SAMPLE
    canary: str | None = None  # a candidate ruleset served to canary_share of users
    canary_share: float = DEFAULT_CANARY_SHARE
    prediction_cache: str = DEFAULT_PREDICTION_CACHE.value  # "process": each its own; "store": shared by the fleet
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds between the heartbeats GET /v1/ruleset's fleet is read from
    console: bool = DEFAULT_CONSOLE  # the browser console at /

    @property
    def model_limits(self) -> ModelLimits:
        return ModelLimits(self.model_max_bytes, self.model_read_timeout)

    @property
    def log_settings(self) -> LogSettings:
        return LogSettings(self.decision_log, self.log_sample, self.log_queue, self.log_max_len, self.log_max_bytes)


OPTIONS_ENV = "TAILOR_SERVE_OPTIONS"


def open_store(
    redis: str | None,
    retention: float = DEFAULT_RETENTION,
    memory_max_users: int = DEFAULT_MAX_USERS,
    *,
    cluster: bool | None = None,
) -> FeatureStore:
    """Redis when a URL is given, else the in-process memory store; ``ValueError`` for a URL of another scheme.

    ``cluster``: True for a Redis Cluster, False for one Redis, None to ask the Redis at the URL (a
    Redis that does not answer counts as one Redis). ``tailor serve`` and any other command that
    opens the store call this, so they all find a cluster the same way."""
    if redis is not None:
        problem = redis_url_problem(redis)
        if problem is not None:
            raise ValueError(problem)
        from .redis_clients import cluster_enabled
        from .redis_store import RedisStore

        if cluster is None:
            cluster = cluster_enabled(redis)
        return RedisStore(redis, retention=retention, cluster=cluster)
    from .memory_store import MemoryStore

    return MemoryStore(retention=retention, max_users=memory_max_users)


def build_app(options: ServeOptions) -> FastAPI:
    """Load the ruleset (``RulesError`` when it does not compile) and build the app."""
    stats = PredicateStats.load(Path(options.stats)) if options.stats else None
    store = open_store(
        options.redis, options.retention, options.memory_max_users, cluster=True if options.redis_cluster else None
    )
    cluster = getattr(store, "cluster", False)
    service = DecisionService(
        options.path,
        store,
        deadline_ms=options.deadline_ms,
        stats=stats,
        sample_every=options.sample_every,
        freeze_heap=True,
        model_limits=options.model_limits,
        consent_attribute=consent_attribute(options.consent_attribute) if options.consent_attribute else None,
        prediction_cache=PredictionCache(options.prediction_cache),
    )
    served = service.open()
    where = (
        f"{'the Redis Cluster' if cluster else 'Redis'} at {without_password(options.redis)}"
        if options.redis
        else f"the memory store (at most {options.memory_max_users:,} users; its data is lost when the process exits)"
    )
    log.info("serving ruleset %s %s (%d rules) with %s", served.ruleset.name, served.version, len(served.rules), where)
    decision_log = open_log(options.log_settings, options.redis, service.metrics.decision_log, cluster)
    if decision_log is not None:
        service.listen(decision_log)
    else:
        log.info("decision log: off")
    shadow = canary = None
    if options.shadow is not None:
        shadow = Shadow(service, _candidate(options.shadow, service, "shadow"), options.shadow_sample)
    if options.canary is not None:
        canary = service.canary = Canary(service, _candidate(options.canary, service, "canary"), options.canary_share)
    app = create_app(
        service,
        decision_log=decision_log,
        api_key=options.api_key,
        public_decisions=options.public_decisions,
        reload_timeout=options.reload_timeout,
        settle_ms=options.settle_ms,
        attribution=options.attribution,
        impressions=Impressions(options.impressions),
        shadow=shadow,
        canary=canary,
        heartbeat=options.heartbeat,
        console=options.console,
    )
    if service.shared_predictions is not None:
        log.info("model predictions are cached in the store, shared by every server process")
    log.info("%s", authentication(options.api_key, options.public_decisions))
    return app


def _candidate(path: str, live: DecisionService, role: str) -> DecisionService:
    """A candidate ruleset, compiled and hot-reloaded like the served one but never asked to decide on its own."""
    candidate = DecisionService(
        path, live.store, deadline_ms=live.deadline * 1000, sample_every=0, model_limits=live.model_limits
    )
    served = candidate.open()
    log.info("%s candidate: ruleset %s %s (%d rules)", role, served.ruleset.name, served.version, len(served.rules))
    return candidate


def check(options: ServeOptions) -> None:
    """Raise what starting would raise (``RulesError``, a bad statistics file), without a store."""
    stats = PredicateStats.load(Path(options.stats)) if options.stats else None
    load(options.path, stats=stats, model_limits=options.model_limits)
    for candidate in (options.shadow, options.canary):
        if candidate is not None:
            load(candidate, model_limits=options.model_limits)
    Scheme.for_retention(options.retention)


def app_from_env() -> FastAPI:
    """The app factory each worker process calls when ``--workers`` is above 1."""
    options = ServeOptions(**json.loads(os.environ[OPTIONS_ENV]))
    _configure_logging(options.log_level)
    return build_app(options)


def _configure_logging(level: str) -> None:
    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("tailor")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))  # uvicorn's own look
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def serve(options: ServeOptions) -> None:
    """Run the server until interrupted; raises ``RulesError`` if the ruleset does not compile."""
    import uvicorn

    _configure_logging(options.log_level)
    speed = {
        "loop": "uvloop" if find_spec("uvloop") else "asyncio",
        "http": "httptools" if find_spec("httptools") else "h11",
    }
    common = {
        "host": options.host,
        "port": options.port,
        "log_level": options.log_level,
        "access_log": options.access_log,
        "timeout_graceful_shutdown": 5,
        **speed,
    }
    if options.workers > 1:
        check(options)  # fail fast, with diagnostics, before starting workers
        os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
        uvicorn.run("tailor.runtime.launch:app_from_env", factory=True, workers=options.workers, **common)
        return
    uvicorn.run(build_app(options), **common)
