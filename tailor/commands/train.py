"""``tailor train``: train a click model from an event log and write it as a model file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.dsl.printer import duration_text

from .durations import MIN_RETENTION, RETENTION_TOO_SHORT, duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser, typed
from .paths import missing
from .terminal import plural


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "train",
        help="train a click model from an event log and write it as a model file",
        description="Replay an event log into the feature store and train a LightGBM click model on the "
        "features as they were just before each impression of the target contents; write it as an ONNX "
        "model file with its features and holdout metrics in its metadata (see docs/models.md).",
        epilog="example:\n  tailor train --events events.jsonl --label click --target acc-42 \\\n"
        "      --features rulesets/retail/models/p_click.features --out rulesets/retail/models/p_click.onnx\n"
        "  tailor train --events events.jsonl --label click --target acc-42 --out p.onnx \\\n"
        '      --features \'views("Electronics", 24h), since("purchase"), context.device == "mobile"\'',
    )
    parser.add_argument("--events", type=Path, required=True, metavar="FILE", help="the event log (JSON lines)")
    parser.add_argument(
        "--label", required=True, metavar="TYPE", help="the event type that makes an impression positive (click)"
    )
    parser.add_argument(
        "--target",
        required=True,
        nargs="+",
        action="extend",
        metavar="KEY",
        help="the content ids whose impressions are learned from",
    )
    parser.add_argument(
        "--features",
        required=True,
        metavar="FILE_OR_LIST",
        help="the model's features: a file with one per line, or a comma-separated list",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="the model file to write (.onnx)")
    parser.add_argument(
        "--holdout", type=float, metavar="FRACTION", help="the latest rows kept for scoring (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="LightGBM's random seed (default: %(default)s)")
    parser.add_argument(
        "--label-window",
        type=duration,
        metavar="DURATION",
        help="how long after an impression a click counts (default: %(default)s)",
    )
    parser.add_argument(
        "--retention",
        type=duration,
        default=duration_text(DEFAULT_RETENTION),
        metavar="DURATION",
        help="as for tailor serve (default: %(default)s)",
    )
    parser.add_argument("--trees", type=int, metavar="N", help="boosting rounds (default: %(default)s)")
    parser.add_argument("--leaves", type=int, metavar="N", help="leaves per tree (default: %(default)s)")
    parser.defaults_from(_training_defaults)
    return parser


def _training_defaults() -> dict[str, str]:
    """Training's own defaults (``TrainOptions``), read once train is used: training imports numpy."""
    from tailor.runtime.train import TrainOptions

    default = {field.name: field.default for field in fields(TrainOptions)}
    return {
        "holdout": typed(default["holdout"]),
        "seed": typed(default["seed"]),
        "label_window": duration_text(default["label_window"]),
        "trees": typed(default["trees"]),
        "leaves": typed(default["leaves"]),
    }


def run(args: argparse.Namespace) -> int:
    if missing([args.events]):
        return EXIT_USAGE
    if _looks_like_a_file(args.features) and missing([Path(args.features)]):
        return EXIT_USAGE
    problem = None
    if not 0 < args.holdout < 1:
        problem = "--holdout must be between 0 and 1 (0.2 scores on the latest fifth of the rows)"
    elif args.retention < MIN_RETENTION:
        problem = RETENTION_TOO_SHORT
    elif args.trees < 1 or args.leaves < 2:
        problem = "--trees must be at least 1 and --leaves at least 2"
    if problem:
        print(f"tailor: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.train import TrainError, TrainOptions, read_feature_list, terminal_progress, train

    options = TrainOptions(
        events=args.events,
        label=args.label,
        targets=tuple(dict.fromkeys(args.target)),
        features=tuple(read_feature_list(args.features)),
        out=args.out,
        holdout=args.holdout,
        seed=args.seed,
        label_window=args.label_window,
        retention=args.retention,
        trees=args.trees,
        leaves=args.leaves,
    )
    try:
        report = train(options, progress=terminal_progress(sys.stderr))
    except TrainError as exc:
        print(f"tailor: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_PROBLEMS
    except OSError as exc:
        print(f"tailor: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {report.out} ({report.size / 1024:.0f} KiB, version {report.version}): "
        f"{plural(len(options.features), 'feature')}, {report.rows:,} rows "
        f"({report.train_rows:,} to train, {report.holdout_rows:,} to score; {report.positive_rate:.1%} clicked)\n"
        f"holdout AUC {report.auc:.4f}, log-loss {report.logloss:.4f}; "
        f"ONNX Runtime matches LightGBM within {report.agreement:.1g}",
        file=sys.stderr,
    )
    return EXIT_OK


def _looks_like_a_file(spec: str) -> bool:
    """A --features value meant as a file name rather than a list of features."""
    return "(" not in spec and " " not in spec and ("/" in spec or spec.endswith((".txt", ".features")))
