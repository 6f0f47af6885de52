"""``tailor diff``: what a change to the rules does to decisions, replayed on logged traffic.

Standard output holds the report alone (``--format markdown`` is ready to
paste as a pull-request comment); problems go to standard error. With
``--fail-over``, more changed decisions than the share given fail the run,
for CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tailor.dsl.diagnostics import RulesError

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .log import moment
from .parser import Parser
from .terminal import print_diagnostics

if TYPE_CHECKING:
    from tailor.compiler.ruleset import Ruleset


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "diff",
        help="which decisions a change to the rules changes, replayed on logged traffic",
        description="Replay logged decisions through two versions of the rules, each deciding from the values "
        "the log holds, and report what changes: how many decisions in total and per slot, the top "
        "transitions with example users, rules that newly win or stop winning, model runs per decision, and "
        "which declarations changed. OLD and NEW are ruleset paths or git revisions (git:REV:PATH). A "
        "decision that needs a value the log lacks is counted as not replayable, never guessed.",
        epilog="example:\n  tailor diff git:main:rulesets/retail rulesets/retail --replay /var/log/tailor\n"
        "  tailor diff git:HEAD~1:rulesets/retail rulesets/retail --replay decisions.ndjson \\\n"
        "      --format markdown --fail-over 5%",
    )
    parser.add_argument("old", metavar="OLD", help="the rules now: a path, or git:REV:PATH")
    parser.add_argument("new", metavar="NEW", help="the rules proposed: a path, or git:REV:PATH")
    parser.add_argument(
        "--replay",
        required=True,
        metavar="SOURCE",
        help="the decision log: a log directory, the Redis URL of its Stream, or a tailor log export file",
    )
    parser.add_argument(
        "--since", type=moment, metavar="WHEN", help="decisions from then on: a duration ago (24h) or a time"
    )
    parser.add_argument("--until", type=moment, metavar="WHEN", help="decisions before then")
    parser.add_argument("--limit", type=int, metavar="N", help="replay at most N decisions, the oldest first")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="output format")
    parser.add_argument(
        "--fail-over",
        type=percent,
        metavar="PCT",
        help="exit 1 when more than this share of decisions changes (5%% or 5)",
    )
    return parser


def percent(text: str) -> float:
    """``5%`` or ``5`` as the fraction 0.05."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 5% or 5") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0% and 100%")
    return value / 100


def run(args: argparse.Namespace) -> int:
    from tailor.runtime.redis_urls import is_redis_url, redis_url_problem

    source = args.replay
    if is_redis_url(source):
        if why := redis_url_problem(source):
            print(f"tailor: --replay {why}", file=sys.stderr)
            return EXIT_USAGE
    elif not Path(source).exists():
        print(f"tailor: --replay {source}: no such file or directory", file=sys.stderr)
        return EXIT_USAGE
    if args.limit is not None and args.limit < 0:
        print("tailor: --limit must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    from tailor.compiler.decide import Decider
    from tailor.compiler.ruleset_changes import changes
    from tailor.runtime.decision_diff import replay_all
    from tailor.runtime.decision_log_reader import read_records
    from tailor.runtime.decision_replay import Replayer
    from tailor.runtime.diff_formats import EMITTERS
    from tailor.runtime.ruleset_revision import RevisionError

    try:
        old = _load(args.old)
        new = old if args.new == args.old else _load(args.new)
    except RevisionError as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    before = Replayer(Decider(old))  # the log's server: its scores are the log's
    logged_models = {name: model.version for name, model in old.models.items()}
    after = before if new is old else Replayer(Decider(new), logged_models)
    try:
        records = read_records(source, args.since, args.until)
        diff = replay_all(records, before, after, args.limit, changes(old, new))
    except OSError as exc:
        print(f"tailor: cannot read the log: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except Exception as exc:  # redis-py's errors: a Redis that does not answer
        if type(exc).__module__.startswith("redis"):
            print(f"tailor: cannot read the log from Redis: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        raise
    sys.stdout.write(EMITTERS[args.format](diff, args.old, args.new))
    if args.format != "text":
        for note in diff.notes:
            print(f"tailor: diff: {note}", file=sys.stderr)
    if args.old == args.new or old.version == new.version:
        verdict = "reports 0 changed" if diff.changed == 0 else f"reports {diff.changed} changed: a bug"
        print(f"tailor: diff: {args.old} replayed against itself (a self-check) {verdict}", file=sys.stderr)
    if args.fail_over is not None and diff.changed_share > args.fail_over:
        print(
            f"tailor: diff: {diff.changed_share:.1%} of decisions change, over --fail-over {args.fail_over:.1%}",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    return EXIT_OK


def _load(spec: str) -> Ruleset:
    from tailor.runtime.ruleset_loader import load
    from tailor.runtime.ruleset_revision import is_revision, load_revision

    if is_revision(spec):
        return load_revision(spec)
    if not Path(spec).exists():
        raise FileNotFoundError(f"{spec}: no such file or directory")
    return load(spec)
