"""``tailor migrate-store``: move a Redis store from the earlier key layout to one hash per user."""

from __future__ import annotations

import argparse
import sys

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .terminal import plural


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "migrate-store",
        help="move a Redis store to one hash per user",
        description="Move the profiles and counters a Redis store kept in the earlier layout (a profile hash "
        "and a hash per series and resolution) into one hash per user, one user at a time. Each user moves "
        "whole or not at all, so the command can be stopped and run again: a second run moves nothing twice. "
        "Servers of this version may keep serving meanwhile; stop those of the earlier version first.",
        epilog="example:\n  tailor migrate-store --redis redis://localhost:6379/0 --dry-run\n"
        "  tailor migrate-store --redis redis://localhost:6379/0",
    )
    parser.add_argument("--redis", required=True, metavar="URL", help="the store's Redis (redis://host:port/db)")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="the URL names a node of a Redis Cluster, whose masters are all scanned (found by asking the node "
        "when not given)",
    )
    parser.add_argument("--prefix", metavar="P", help="what the store's keys start with (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="count what would move, and change nothing")
    parser.defaults_from(_defaults)
    return parser


def _defaults() -> dict[str, str]:
    from tailor.runtime.redis_store import DEFAULT_PREFIX

    return {"prefix": DEFAULT_PREFIX}


def run(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from tailor.runtime.redis_clients import blocking_client, cluster_enabled
    from tailor.runtime.redis_urls import redis_url_problem, without_password
    from tailor.runtime.store_migration import TIMEOUT, migrate

    if why := redis_url_problem(args.redis):
        print(f"tailor: --redis {why}", file=sys.stderr)
        return EXIT_USAGE
    cluster = args.redis_cluster or cluster_enabled(args.redis)
    try:
        client = blocking_client(args.redis, cluster=cluster, name="tailor-migrate-store", timeout=TIMEOUT)
    except (RedisError, ValueError) as exc:  # a cluster that does not answer, or a database it does not have
        print(f"tailor: {without_password(args.redis)}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        done = migrate(client, args.prefix, dry_run=args.dry_run)
    except RedisError as exc:
        shown = without_password(args.redis)
        print(f"tailor: {shown}: {exc}; the users moved so far stay moved: run it again", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        client.close()
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {plural(done.users, 'user')}: {plural(done.attributes, 'profile attribute')}, "
        f"{done.series} series, {plural(done.buckets, 'count bucket')}"
    )
    return EXIT_OK
