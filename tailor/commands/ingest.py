"""``tailor ingest``: consume events and feedback from a Redis Stream into the store, with a consumer group."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.dsl.printer import duration_text

from .durations import MIN_RETENTION, RETENTION_TOO_SHORT, duration
from .exit_codes import EXIT_OK, EXIT_USAGE
from .parser import Parser, typed

if TYPE_CHECKING:
    from tailor.runtime.stream_source import Source

log = logging.getLogger("tailor.runtime")


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "ingest",
        help="consume events and feedback from a Redis Stream into the store",
        description="Consume events and feedback from a Redis Stream with a consumer group, into the store the "
        "servers read. Each entry holds one event or one feedback item, as JSON in the schema of POST /v1/events "
        "or /v1/feedback (see docs/ingest.md). Run several to share the work: same group, other consumer names. "
        "An entry is acknowledged only once stored; refused ones go to the dead-letter stream with their reason.",
        epilog="example:\n  tailor ingest --redis redis://localhost:6379/0 --stream tailor:in --group tailor "
        "--metrics-port 9108",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--redis", metavar="URL", help="the Redis holding the stream")
    source.add_argument(
        "--kafka",
        metavar="SERVERS",
        help="read the Kafka topic --stream names instead, from these bootstrap servers (host:port,...); "
        "needs --store and the extra kafka (pip install 'tailor[kafka]')",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="the Redis URLs name nodes of a Redis Cluster (found by asking the node when not given)",
    )
    parser.add_argument("--stream", required=True, metavar="NAME", help="the stream (or Kafka topic) to consume")
    parser.add_argument("--group", required=True, metavar="NAME", help="the consumer group, made when missing")
    parser.add_argument(
        "--consumer", metavar="NAME", help="this consumer's name in the group (default: host name and process id)"
    )
    parser.add_argument(
        "--dead-letter",
        metavar="NAME",
        help="the stream (or topic) refused records go to (default: the stream's name + :dead, or .dead for Kafka)",
    )
    parser.add_argument("--batch", type=int, metavar="N", help="entries per read (default: %(default)s)")
    parser.add_argument(
        "--in-flight",
        type=int,
        metavar="N",
        help="batches read and not yet acknowledged, at most: the next is read while one is stored "
        "(default: %(default)s; 1 takes turns)",
    )
    parser.add_argument(
        "--min-idle",
        type=duration,
        metavar="DURATION",
        help="claim entries pending this long at another consumer, as left by one that died (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the Redis the servers read, where events and feedback are stored (default: --redis)",
    )
    parser.add_argument(
        "--retention",
        type=duration,
        default=duration_text(DEFAULT_RETENTION),
        metavar="DURATION",
        help="how long events count: the servers' --retention (default: %(default)s)",
    )
    parser.add_argument(
        "--attribution",
        type=duration,
        metavar="DURATION",
        help="feedback on a decision older than this is expired: the servers' --attribution (default: %(default)s)",
    )
    parser.add_argument(
        "--impressions",
        choices=("feedback", "served"),
        help="the servers' --impressions: with served, impression items are ignored (default: %(default)s)",
    )
    parser.add_argument(
        "--consent-attribute",
        metavar="ATTRIBUTE",
        help="the servers' --consent-attribute: records of users whose attribute is false are dropped",
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics at http://HOST:PORT/metrics"
    )
    parser.add_argument("--metrics-host", help="the address of the metrics endpoint (default: %(default)s)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="(default: %(default)s)")
    parser.defaults_from(_ingest_defaults)
    return parser


def _ingest_defaults() -> dict[str, str]:
    """The runtime's defaults, read once ingest is used."""
    from tailor.runtime.feedback import DEFAULT_ATTRIBUTION, Impressions
    from tailor.runtime.redis_stream_source import DEFAULT_MIN_IDLE
    from tailor.runtime.stream_ingest import DEFAULT_BATCH, DEFAULT_IN_FLIGHT

    return {
        "batch": typed(DEFAULT_BATCH),
        "in_flight": typed(DEFAULT_IN_FLIGHT),
        "min_idle": duration_text(DEFAULT_MIN_IDLE),
        "attribution": duration_text(DEFAULT_ATTRIBUTION),
        "impressions": Impressions.FEEDBACK.value,
        "metrics_host": "127.0.0.1",
        "log_level": "info",
    }


def _usage_problem(args: argparse.Namespace) -> str | None:
    from tailor.runtime.redis_urls import redis_url_problem

    for flag, url in (("--redis", args.redis), ("--store", args.store)):
        if url is not None and (why := redis_url_problem(url)):
            return f"{flag} {why}"
    if args.kafka is not None and args.store is None:
        return "--kafka needs --store: the Redis the servers read"
    if not args.stream.strip() or not args.group.strip():
        return "--stream and --group must not be empty"
    if args.batch < 1:
        return "--batch must be at least 1"
    if args.in_flight < 1:
        return "--in-flight must be at least 1"
    if args.retention < MIN_RETENTION:
        return RETENTION_TOO_SHORT
    if args.metrics_port is not None and not 0 <= args.metrics_port < 65536:
        return "--metrics-port must be a port number"
    if args.consent_attribute is not None:
        from tailor.runtime.consent import consent_attribute

        try:
            consent_attribute(args.consent_attribute)
        except ValueError as exc:
            return f"--consent-attribute: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        print(f"tailor: {problem}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(format="%(levelname)s %(message)s")
    logging.getLogger("tailor").setLevel(args.log_level.upper())
    try:
        asyncio.run(_ingest(args))
    except MetricsPortBusy as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


class MetricsPortBusy(OSError):
    """The metrics endpoint could not listen where it was asked to."""


async def _ingest(args: argparse.Namespace) -> None:
    from prometheus_client import start_http_server

    from tailor.runtime.consent import consent_attribute
    from tailor.runtime.feedback import Impressions
    from tailor.runtime.ingest_metrics import IngestMetrics
    from tailor.runtime.launch import open_store
    from tailor.runtime.redis_urls import without_password
    from tailor.runtime.stream_ingest import Ingester

    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    source = _source(args, consumer)
    store = open_store(args.store or args.redis, args.retention, cluster=True if args.redis_cluster else None)
    metrics = IngestMetrics()
    if args.metrics_port is not None:
        try:
            start_http_server(args.metrics_port, args.metrics_host, registry=metrics.registry)
        except OSError as exc:
            await source.close()
            await store.close()
            raise MetricsPortBusy(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from None
    ingester = Ingester(
        source,
        store,
        metrics,
        batch=args.batch,
        in_flight=args.in_flight,
        attribution=args.attribution,
        impressions=Impressions(args.impressions),
        consent_attribute=consent_attribute(args.consent_attribute) if args.consent_attribute else None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "ingesting %s %s (group %s, consumer %s) of %s into %s",
        "topic" if args.kafka else "stream",
        args.stream,
        args.group,
        consumer,
        args.kafka or without_password(args.redis),
        without_password(args.store or args.redis),
    )
    try:
        await ingester.run(stop)
    finally:
        await source.close()
        await store.close()
    log.info("stopped: the batches under way were stored and acknowledged")


def _source(args: argparse.Namespace, consumer: str) -> Source:
    """The Redis Stream, or with ``--kafka`` the Kafka topic, to read."""
    if args.kafka is not None:
        from tailor.runtime.kafka_source import KafkaSource

        dead = args.dead_letter or f"{args.stream}.dead"
        return KafkaSource(args.kafka, args.stream, args.group, consumer, dead_letters=dead)
    from tailor.runtime.redis_clients import cluster_enabled
    from tailor.runtime.redis_stream_source import RedisStreamSource

    dead = args.dead_letter or f"{args.stream}:dead"
    cluster = args.redis_cluster or cluster_enabled(args.redis)
    return RedisStreamSource(
        args.redis, args.stream, args.group, consumer, dead_letters=dead, min_idle=args.min_idle, cluster=cluster
    )
