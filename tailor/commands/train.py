"""``tailor train``: train a click model from an event log and write it as a model file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.dsl.printer import duration_text

from .durations import MIN_RETENTION, RETENTION_TOO_SHORT, duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .kpis import DEFAULT_URL
from .parser import Parser, typed
from .paths import missing
from .remote import ServerError, api_key, joined_lookup
from .terminal import plural

if TYPE_CHECKING:
    from tailor.runtime.log_dataset import LogRows
    from tailor.runtime.train import TrainReport


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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, metavar="FILE", help="the event log (JSON lines)")
    source.add_argument(
        "--from-log",
        metavar="SOURCE",
        help="train on what was served: a decision log (a directory, or a Redis URL), labelled by the feedback "
        "joined to each decision (see --feedback)",
    )
    parser.add_argument(
        "--label", required=True, metavar="TYPE", help="the event type that makes an impression positive (click)"
    )
    parser.add_argument(
        "--target",
        nargs="+",
        action="extend",
        metavar="KEY",
        help="the content ids whose impressions are learned from (required with --events); with --from-log, "
        "the content names (as the rules name them) whose slots' feedback labels a decision (default: every slot)",
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
    add_log_options(parser)
    parser.add_argument("--trees", type=int, metavar="N", help="boosting rounds (default: %(default)s)")
    parser.add_argument("--leaves", type=int, metavar="N", help="leaves per tree (default: %(default)s)")
    parser.defaults_from(_training_defaults)
    return parser


def add_log_options(parser: Parser, *, model_required: bool = False) -> None:
    """The options of training from the decision log, shared with ``tailor retrain``."""
    parser.add_argument(
        "--feedback",
        metavar="URL",
        help="with --from-log: the running server whose join records hold the feedback on each decision "
        f"(default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--model",
        required=model_required,
        metavar="NAME",
        help="the model whose logged decisions are the rows" + ("" if model_required else " (default: --out's stem)"),
    )
    parser.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $TAILOR_API_KEY)")


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
    if args.from_log is not None:
        return run_from_log(args)
    if not args.target:
        print("tailor: --target is required with --events", file=sys.stderr)
        return EXIT_USAGE
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
    print(summary(report, len(options.features)), file=sys.stderr)
    return EXIT_OK


def _looks_like_a_file(spec: str) -> bool:
    """A --features value meant as a file name rather than a list of features."""
    return "(" not in spec and " " not in spec and ("/" in spec or spec.endswith((".txt", ".features")))


def run_from_log(args: argparse.Namespace) -> int:
    """``--from-log``: the rows are the logged decisions in which the model ran."""
    if _looks_like_a_file(args.features) and missing([Path(args.features)]):
        return EXIT_USAGE
    if not 0 < args.holdout < 1 or args.trees < 1 or args.leaves < 2:
        print("tailor: --holdout must be between 0 and 1, --trees at least 1 and --leaves at least 2", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.log_training import LogTrainOptions, train_from_log
    from tailor.runtime.train import TrainError, read_feature_list

    url = args.feedback or DEFAULT_URL
    options = LogTrainOptions(
        source=args.from_log,
        joined=joined_lookup(url, api_key(args)),
        feedback=url,
        label=args.label,
        model=args.model or args.out.stem,
        features=tuple(read_feature_list(args.features)),
        out=args.out,
        targets=tuple(dict.fromkeys(args.target or ())),
        holdout=args.holdout,
        seed=args.seed,
        label_window=args.label_window,
        trees=args.trees,
        leaves=args.leaves,
    )
    try:
        report, rows = train_from_log(options)
    except ServerError:
        return EXIT_PROBLEMS
    except TrainError as exc:
        print(f"tailor: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_PROBLEMS
    except OSError as exc:
        print(f"tailor: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(log_summary(rows), file=sys.stderr)
    print(summary(report, len(options.features)), file=sys.stderr)
    return EXIT_OK


def log_summary(rows: LogRows) -> str:
    left = [
        (rows.no_target, "showed no target"),
        (rows.incomplete, "lacked a value the features read"),
        (rows.unjoined, "had no join record left (feedback unknown)"),
        (rows.recent, "were younger than the label window"),
    ]
    out = ", ".join(f"{count:,} {why}" for count, why in left if count)
    return f"{rows.logged:,} logged decisions ran the model; {len(rows.decisions):,} rows" + (
        f" (left out: {out})" if out else ""
    )


def summary(report: TrainReport, features: int) -> str:
    return (
        f"wrote {report.out} ({report.size / 1024:.0f} KiB, version {report.version}): "
        f"{plural(features, 'feature')}, {report.rows:,} rows "
        f"({report.train_rows:,} to train, {report.holdout_rows:,} to score; {report.positive_rate:.1%} clicked)\n"
        f"holdout AUC {report.auc:.4f}, log-loss {report.logloss:.4f}; "
        f"ONNX Runtime matches LightGBM within {report.agreement:.1g}"
    )
