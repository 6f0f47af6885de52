"""``tailor log``: read the decision log a server writes, from its Redis Stream or its files."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser

if TYPE_CHECKING:
    from tailor.runtime.decision_record import DecisionRecord

DEFAULT_TAIL = 10
FORMATS = ("text", "ndjson")


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    source = argparse.ArgumentParser(add_help=False)
    where = source.add_argument_group("the log to read (one of)").add_mutually_exclusive_group(required=True)
    where.add_argument("--redis", metavar="URL", help="the Redis the server logs to (its Stream tailor:decisions)")
    where.add_argument("--dir", type=Path, metavar="DIR", help="the directory given to tailor serve --decision-log")
    parser = subparsers.add_parser(
        "log",
        help="read the decision log: the newest records, one decision, or a time range",
        description="Read the records of served decisions that tailor serve logs (see --decision-log), "
        "from its Redis Stream or its files.",
        epilog="example:\n  tailor log tail --redis redis://localhost:6379/0 --follow\n"
        "  tailor log show 9f1c2a7b4e0d3c5a0000000000000007 --dir /var/log/tailor\n"
        "  tailor log export --since 24h --dir /var/log/tailor > decisions.ndjson",
    )
    commands = parser.add_subparsers(dest="log_command", metavar="COMMAND", required=True)
    tail = commands.add_parser(
        "tail", parents=[source], help="the newest records, oldest first", description="The newest records."
    )
    tail.add_argument("-n", type=int, default=DEFAULT_TAIL, metavar="N", help="how many (default: %(default)s)")
    tail.add_argument("-f", "--follow", action="store_true", help="then print new records as they are written")
    tail.add_argument("--format", choices=FORMATS, default="text", help="one line per record (default: %(default)s)")
    show = commands.add_parser(
        "show", parents=[source], help="one decision's record", description="One decision's record, as JSON."
    )
    show.add_argument("decision_id", metavar="ID", help="the decision_id /v1/decide answered")
    export = commands.add_parser(
        "export",
        parents=[source],
        help="the records of a time range, as NDJSON",
        description="The records of decisions made in a time range, oldest first, one JSON object a line.",
    )
    export.add_argument(
        "--since", type=moment, metavar="WHEN", help="a duration ago (24h, 7d) or a time (2026-11-29T15:00Z)"
    )
    export.add_argument("--until", type=moment, metavar="WHEN", help="before this: a duration ago, or a time")
    export.add_argument("--format", choices=("ndjson",), default="ndjson", help="(default: %(default)s)")
    return parser


def moment(text: str) -> float:
    """Epoch seconds: ``24h`` is a day ago; an ISO 8601 time without a zone is UTC."""
    if text[:1].isdigit() and text[-1:].isalpha() and not any(c in text for c in "-:T"):
        return time.time() - duration(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        problem = f"{text!r} is neither a duration like 24h nor a time like 2026-11-29T15:00Z"
        raise argparse.ArgumentTypeError(problem) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def run(args: argparse.Namespace) -> int:
    from tailor.runtime import decision_log_reader as reader
    from tailor.runtime.redis_urls import redis_url_problem

    if args.redis is not None and (why := redis_url_problem(args.redis)):
        print(f"tailor: --redis {why}", file=sys.stderr)
        return EXIT_USAGE
    if args.dir is not None and not args.dir.is_dir():
        print(f"tailor: {args.dir}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    source = args.redis if args.redis is not None else args.dir
    try:
        if args.log_command == "show":
            record = reader.find_record(source, args.decision_id)
            if record is None:
                print(f"tailor: decision {args.decision_id} is not in the log", file=sys.stderr)
                return EXIT_PROBLEMS
            print(_json(record, indent=True))
        elif args.log_command == "tail":
            _print(reader.tail(source, max(args.n, 0), follow=args.follow), args.format)
        else:
            _print(reader.read_records(source, args.since, args.until), "ndjson")
    except BrokenPipeError:
        raise  # the reader went away (| head): the command line's own handling
    except OSError as exc:
        print(f"tailor: cannot read the log: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except Exception as exc:  # redis-py's errors: a Redis that does not answer
        if type(exc).__module__.startswith("redis"):
            print(f"tailor: cannot read the log from Redis: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        raise
    return EXIT_OK


def _print(records: Iterable[DecisionRecord], form: str) -> None:
    line = _json if form == "ndjson" else text
    out = sys.stdout
    for record in records:
        out.write(line(record) + "\n")
        out.flush()


def _json(record: DecisionRecord, indent: bool = False) -> str:
    import orjson

    return orjson.dumps(record.to_dict(), option=orjson.OPT_INDENT_2 if indent else 0).decode()


def text(record: DecisionRecord) -> str:
    """One line for a person: when, the id, the user, the version, and what each slot showed and why."""
    when = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    slots = []
    for slot, served in record.slots.items():
        if served.content is None:
            slots.append(f"{slot}=-")
        elif served.priority is None:
            slots.append(f"{slot}={served.content} ({served.rule})")
        else:
            slots.append(f"{slot}={served.content} ({served.rule}, priority {served.priority})")
    parts = [when, record.decision_id, f"user {record.user_id}", f"{record.ruleset} {record.version}", *slots]
    if record.models:
        scores = (f"{name}={'failed' if score is None else f'{score:.4g}'}" for name, score in record.models.items())
        parts.append("models " + ", ".join(scores))
    if record.degraded:
        parts.append(f"degraded: {record.reason}")
    return "  ".join(parts)
