"""``tailor retrain``: train a candidate from what was served, then promote it if it is not worse; for cron."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .kpis import DEFAULT_URL
from .parser import Parser
from .paths import missing
from .promote import add_promote_options, promote
from .remote import ServerError, api_key, joined_lookup
from .train import log_summary, summary


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "retrain",
        help="retrain a ruleset's model on its decision log and promote it if it is not worse",
        description="tailor train --from-log, then tailor promote: train a candidate on the logged decisions "
        "in which the model ran (its current features, labelled by the feedback joined to each decision), and "
        "replace the model file when the candidate is not worse on the newest slice. Exits with 0 when it was "
        "promoted, 1 when it was not (or could not be trained). See docs/models.md for a cron example.",
        epilog="example:\n  tailor retrain --from-log /var/log/tailor --feedback http://127.0.0.1:8080 \\\n"
        "      --label click --model p_click --ruleset rulesets/retail",
    )
    parser.add_argument(
        "--from-log", required=True, metavar="SOURCE", help="the decision log: a directory, or a Redis URL"
    )
    parser.add_argument("--label", default="click", metavar="TYPE", help="(default: %(default)s)")
    parser.add_argument(
        "--target",
        nargs="+",
        action="extend",
        metavar="CONTENT",
        help="the contents whose slots' feedback labels a decision (default: every slot)",
    )
    parser.add_argument("--label-window", type=duration, default=1800.0, metavar="DURATION", help="(default: 30m)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="the candidate (default: NAME.candidate.onnx beside "
                        "the model file)")  # fmt: skip
    parser.add_argument("--holdout", type=float, default=0.2, metavar="FRACTION", help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="(default: %(default)s)")
    parser.add_argument("--trees", type=int, default=100, metavar="N", help="(default: %(default)s)")
    parser.add_argument("--leaves", type=int, default=15, metavar="N", help="(default: %(default)s)")
    parser.add_argument(
        "--feedback", metavar="URL", help=f"the server holding the feedback on each decision (default: {DEFAULT_URL})"
    )
    add_promote_options(parser, sources=False)
    return parser


def run(args: argparse.Namespace) -> int:
    if missing([args.ruleset]):
        return EXIT_USAGE
    if not 0 < args.holdout < 1 or args.trees < 1 or args.leaves < 2:
        print("tailor: --holdout must be between 0 and 1, --trees at least 1 and --leaves at least 2", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.log_training import LogTrainOptions, train_from_log
    from tailor.runtime.promotion import current_model
    from tailor.runtime.train import TrainError

    url = args.feedback or DEFAULT_URL
    try:
        current = current_model(args.ruleset, args.model)
        out = args.out or current.path.with_name(f"{args.model}.candidate.onnx")
        options = LogTrainOptions(
            source=args.from_log,
            joined=joined_lookup(url, api_key(args)),
            feedback=url,
            label=args.label,
            model=args.model,
            features=current.features,
            out=out,
            targets=tuple(dict.fromkeys(args.target or ())),
            holdout=args.holdout,
            seed=args.seed,
            label_window=args.label_window,
            trees=args.trees,
            leaves=args.leaves,
        )
        report, rows = train_from_log(options)
    except ServerError:
        return EXIT_PROBLEMS
    except TrainError as exc:
        print(f"tailor: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(log_summary(rows), file=sys.stderr)
    print(summary(report, len(options.features)), file=sys.stderr)
    args.from_log, args.feedback = options.source, url
    code = promote(out, args)
    return EXIT_OK if code == EXIT_OK else EXIT_PROBLEMS
