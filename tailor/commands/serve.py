"""``tailor serve``: serve decisions over HTTP, reloading the rules as they change."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.printer import duration_text
from tailor.runtime.prediction_cache import PredictionCache

from .diff import percent
from .durations import MIN_RETENTION, RETENTION_TOO_SHORT, duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser, typed
from .paths import missing
from .terminal import print_diagnostics

KEY_ENV = "TAILOR_API_KEY"


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "serve",
        help="serve decisions over HTTP, reloading the rules as they change",
        description="Serve decisions over HTTP. Edits to the rules are picked up without a restart; "
        "without --redis, events and profiles live in memory.",
        epilog="example:\n  tailor serve rulesets/retail\n"
        "  tailor serve rulesets/retail --redis redis://localhost:6379/0 --host 0.0.0.0 --api-key $KEY",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    parser.add_argument("--redis", metavar="URL", help="keep events and profiles in Redis (redis://host:port/db)")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="the --redis URL names a node of a Redis Cluster (found by asking the node when not given)",
    )
    parser.add_argument("--host", help="the address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, help="the port to listen on (default: %(default)s)")
    parser.add_argument("--workers", type=int, metavar="N", help="processes (more than 1 needs --redis)")
    parser.add_argument(
        "--deadline-ms", type=float, metavar="MS", help="time for a decision's store read (default: %(default)s)"
    )
    parser.add_argument(
        "--retention",
        type=duration,
        default=duration_text(DEFAULT_RETENTION),
        metavar="DURATION",
        help="how long events count (default: %(default)s)",
    )
    parser.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    parser.add_argument("--stats-sample", type=int, metavar="N", help="sample 1 decision in N for statistics (0: none)")
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="require it on every endpoint but /healthz, /readyz and /metrics (default: $TAILOR_API_KEY)",
    )
    parser.add_argument(
        "--public-decisions", action="store_true", help="with an API key, let /v1/decide alone be called without it"
    )
    # Reads need the key whenever there is one; the flag stays so that existing command lines still start.
    parser.add_argument("--protect-reads", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--no-console",
        dest="console",
        action="store_false",
        help="do not serve the browser console at / (its API endpoints stay; see docs/console.md)",
    )
    parser.add_argument(
        "--memory-max-users",
        type=int,
        metavar="N",
        help="without --redis: keep at most N users, dropping the least recently active (default: %(default)s)",
    )
    parser.add_argument(
        "--reload-timeout",
        type=float,
        metavar="SECONDS",
        help="abandon a reload that takes longer; the old version keeps serving and GET /v1/ruleset says why "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--settle-ms",
        type=float,
        metavar="MS",
        help="compile an edit only once the files have not changed for this long (default: %(default)s)",
    )
    parser.add_argument(
        "--model-max-bytes", type=int, metavar="N", help="refuse model files larger than this (default: %(default)s)"
    )
    parser.add_argument(
        "--model-read-timeout",
        type=float,
        metavar="SECONDS",
        help="refuse a model file that takes longer to read, as on a stuck mount (default: %(default)s)",
    )
    log = parser.add_argument_group(
        "decision log", "every served decision's record (see docs/runtime.md); read it back with tailor log"
    )
    log.add_argument(
        "--decision-log",
        metavar="DIR|URL|off",
        help="write NDJSON files into DIR, or the Redis Stream at URL, or nothing (default: the Stream in the "
        "--redis store, off without --redis)",
    )
    log.add_argument(
        "--log-sample", type=float, metavar="FRACTION", help="log this share of decisions (default: %(default)s)"
    )
    log.add_argument(
        "--log-max-len",
        type=int,
        metavar="N",
        help="the Redis Stream keeps about the N newest records (default: %(default)s)",
    )
    log.add_argument(
        "--log-max-bytes",
        type=int,
        metavar="N",
        help="start a new log file past N bytes, compressing the full one (default: %(default)s)",
    )
    log.add_argument(
        "--log-queue",
        type=int,
        metavar="N",
        help="records waiting to be written, at most; beyond it they are dropped and counted (default: %(default)s)",
    )
    parser.add_argument(
        "--attribution",
        type=duration,
        metavar="DURATION",
        help="keep each served decision this long for POST /v1/feedback to join to (default: %(default)s)",
    )
    parser.add_argument(
        "--impressions",
        choices=("feedback", "served"),
        help="count impressions from feedback items, or count every served slot as one, for sites that send "
        "no feedback (default: %(default)s)",
    )
    parser.add_argument(
        "--consent-attribute",
        metavar="ATTRIBUTE",
        help="a profile attribute, like user.consent, whose value false means the user declined personalization:"
        " rules reading personal data are skipped for them, and their events and feedback dropped",
    )
    parser.add_argument(
        "--drift-interval",
        type=float,
        metavar="SECONDS",
        help="read each model's drift this often into its history, GET /v1/models/NAME/drift/history "
        "(default: %(default)s)",
    )
    fleet = parser.add_argument_group("fleet", "several server processes over one Redis (see docs/deploy.md)")
    fleet.add_argument(
        "--prediction-cache",
        choices=[cache.value for cache in PredictionCache],
        help="cache model predictions in each process, or in the store, shared by every process (default: %(default)s)",
    )
    fleet.add_argument(
        "--heartbeat",
        type=float,
        metavar="SECONDS",
        help="write this process's versions to the store this often, for GET /v1/ruleset's fleet "
        "(default: %(default)s)",
    )
    candidates = parser.add_argument_group(
        "candidates", "another version of the rules beside the served one (see docs/runtime.md), hot-reloaded like it"
    )
    candidates.add_argument(
        "--shadow",
        type=Path,
        metavar="CANDIDATE",
        help="also decide a sample of live requests with CANDIDATE, off the response path, never serving it; "
        "GET /v1/shadow reports the running diff",
    )
    candidates.add_argument(
        "--shadow-sample",
        type=float,
        metavar="FRACTION",
        help="the share of served decisions the shadow decides too (default: %(default)s)",
    )
    candidates.add_argument(
        "--canary",
        type=Path,
        metavar="CANDIDATE",
        help="serve CANDIDATE to a fixed share of users, rolled back when it degrades or fails more than live",
    )
    candidates.add_argument(
        "--canary-share",
        type=percent,
        metavar="PCT",
        help="the share of users served the canary: 5%% or 5 (default: %(default)s)",
    )
    parser.defaults_from(_server_defaults)
    return parser


def _server_defaults() -> dict[str, str]:
    """The server's own defaults (``ServeOptions``), read once serve is used: the server imports FastAPI."""
    from tailor.runtime.launch import ServeOptions

    default = {field.name: field.default for field in fields(ServeOptions)}
    return {
        "host": default["host"],
        "port": typed(default["port"]),
        "workers": typed(default["workers"]),
        "deadline_ms": typed(default["deadline_ms"]),
        "stats_sample": typed(default["sample_every"]),
        "reload_timeout": typed(default["reload_timeout"]),
        "settle_ms": typed(default["settle_ms"]),
        "model_max_bytes": typed(default["model_max_bytes"]),
        "model_read_timeout": typed(default["model_read_timeout"]),
        "memory_max_users": typed(default["memory_max_users"]),
        "log_sample": typed(default["log_sample"]),
        "log_max_len": typed(default["log_max_len"]),
        "log_max_bytes": typed(default["log_max_bytes"]),
        "log_queue": typed(default["log_queue"]),
        "attribution": duration_text(default["attribution"]),
        "impressions": default["impressions"],
        "shadow_sample": typed(default["shadow_sample"]),
        "canary_share": f"{default['canary_share'] * 100:g}%",
        "prediction_cache": default["prediction_cache"],
        "heartbeat": typed(default["heartbeat"]),
        "drift_interval": typed(default["drift_interval"]),
        "console": default["console"],
    }


def _server_key(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The API key (None: no authentication) and, when it is set but empty, why that is refused.

    An empty key is what a secret that failed to mount gives: it must stop
    the server, not serve every endpoint without authentication.
    """
    given, source = args.api_key, "--api-key"
    if given is None:
        given, source = os.environ.get(KEY_ENV), KEY_ENV
    if given is not None and not given.strip():
        return None, f"{source} is set but empty; give the key, or unset {KEY_ENV} to serve without authentication"
    return given, None


def _usage_problem(args: argparse.Namespace, key: str | None) -> str | None:
    """The first option that cannot work, said plainly; None when they all can."""
    from tailor.runtime.redis_urls import redis_url_problem

    if args.redis is not None and (why := redis_url_problem(args.redis)):
        return f"--redis {why}"
    if args.redis_cluster and not args.redis:
        return "--redis-cluster needs --redis, the URL of one of the cluster's nodes"
    if args.workers < 1:
        return "--workers must be at least 1"
    if args.workers > 1 and not args.redis:
        return "--workers above 1 needs --redis: each worker would have its own memory store"
    if (args.protect_reads or args.public_decisions) and key is None:
        flag = "--public-decisions" if args.public_decisions else "--protect-reads"
        return f"{flag} needs an API key (--api-key or {KEY_ENV})"
    if args.protect_reads and args.public_decisions:
        return "--protect-reads and --public-decisions contradict each other"
    if not 0 < args.deadline_ms < float("inf"):
        return "--deadline-ms must be a positive number"
    if args.retention < MIN_RETENTION:
        return RETENTION_TOO_SHORT
    if args.stats_sample < 0:
        return "--stats-sample must be 0 or more"
    for flag, value in (
        ("--reload-timeout", args.reload_timeout),
        ("--model-max-bytes", args.model_max_bytes),
        ("--model-read-timeout", args.model_read_timeout),
    ):
        if not 0 < value < float("inf"):
            return f"{flag} must be a positive number"
    if args.memory_max_users < 1:
        return "--memory-max-users must be at least 1"
    if not 0 <= args.settle_ms < float("inf"):
        return "--settle-ms must be 0 or more"
    if not 0 < args.heartbeat < float("inf"):
        return "--heartbeat must be a positive number"
    if not 0 < args.drift_interval < float("inf"):
        return "--drift-interval must be a positive number"
    if args.consent_attribute is not None:
        from tailor.runtime.consent import consent_attribute

        try:
            consent_attribute(args.consent_attribute)
        except ValueError as exc:
            return f"--consent-attribute: {exc}"
    return _log_problem(args) or _candidate_problem(args)


def _candidate_problem(args: argparse.Namespace) -> str | None:
    if not 0 <= args.shadow_sample <= 1:
        return "--shadow-sample must be a fraction from 0 to 1"
    for flag, path in (("--shadow", args.shadow), ("--canary", args.canary)):
        if path is not None and not path.exists():
            return f"{flag} {path}: no such file or directory"
    return None


def _log_problem(args: argparse.Namespace) -> str | None:
    from tailor.runtime.decision_log import OFF
    from tailor.runtime.redis_urls import is_redis_url, redis_url_problem

    target = args.decision_log
    if target is not None and target != OFF:
        if "://" in target and (why := redis_url_problem(target)):
            return f"--decision-log {why}"
        if not is_redis_url(target) and Path(target).exists() and not Path(target).is_dir():
            return f"--decision-log {target}: not a directory"
    if not 0 <= args.log_sample <= 1:
        return "--log-sample must be a fraction from 0 to 1"
    for flag, value in (("--log-max-len", args.log_max_len), ("--log-max-bytes", args.log_max_bytes)):
        if value < 1:
            return f"{flag} must be at least 1"
    if args.log_queue < 1:
        return "--log-queue must be at least 1"
    return None


def _log_target(given: str | None) -> str | None:
    """A directory as an absolute path: worker processes, and the log's lines, should not depend on the cwd."""
    from tailor.runtime.decision_log import OFF
    from tailor.runtime.redis_urls import is_redis_url

    if given is None or given == OFF or is_redis_url(given):
        return given
    return str(Path(given).resolve())


def run(args: argparse.Namespace) -> int:
    if missing([args.path]) or (args.stats is not None and missing([args.stats])):
        return EXIT_USAGE
    key, problem = _server_key(args)
    problem = problem or _usage_problem(args, key)
    if problem:
        print(f"tailor: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.protect_reads:
        print(
            "tailor: --protect-reads is the default now: every endpoint but /healthz, /readyz and /metrics "
            "needs the API key",
            file=sys.stderr,
        )
    from tailor.runtime.launch import ServeOptions, serve

    options = ServeOptions(
        path=str(args.path),
        redis=args.redis,
        redis_cluster=args.redis_cluster,
        host=args.host,
        port=args.port,
        workers=args.workers,
        deadline_ms=args.deadline_ms,
        retention=args.retention,
        stats=str(args.stats) if args.stats is not None else None,
        sample_every=args.stats_sample,
        api_key=key,
        public_decisions=args.public_decisions,
        access_log=args.access_log,
        reload_timeout=args.reload_timeout,
        settle_ms=args.settle_ms,
        model_max_bytes=args.model_max_bytes,
        model_read_timeout=args.model_read_timeout,
        memory_max_users=args.memory_max_users,
        decision_log=_log_target(args.decision_log),
        log_sample=args.log_sample,
        log_queue=args.log_queue,
        log_max_len=args.log_max_len,
        log_max_bytes=args.log_max_bytes,
        attribution=args.attribution,
        impressions=args.impressions,
        consent_attribute=args.consent_attribute,
        shadow=str(args.shadow) if args.shadow is not None else None,
        shadow_sample=args.shadow_sample,
        canary=str(args.canary) if args.canary is not None else None,
        canary_share=args.canary_share,
        prediction_cache=args.prediction_cache,
        heartbeat=args.heartbeat,
        drift_interval=args.drift_interval,
        console=args.console,
    )
    try:
        serve(options)
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    except (ValueError, KeyError) as exc:
        print(f"tailor: {args.stats}: not a statistics file ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
