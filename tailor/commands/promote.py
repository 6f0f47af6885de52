"""``tailor promote``: replace a ruleset's model with a candidate, only if it is not worse on the newest slice."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .kpis import DEFAULT_URL
from .parser import Parser, typed
from .paths import missing
from .remote import ServerError, api_key, joined_lookup

if TYPE_CHECKING:
    from tailor.runtime.promotion import Comparison, Margins


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "promote",
        help="replace a ruleset's model with a candidate that is not worse on the newest decisions",
        description="Score the candidate and the ruleset's current model on the newest logged decisions (from "
        "the candidate's holdout on), labelled by their feedback: AUC, log-loss and calibration error. When the "
        "candidate is not worse by more than the margins, write it over the model file the ruleset declares, "
        "atomically: a running server reloads it. Exits with 1 when it is worse (the file is left alone).",
        epilog="example:\n  tailor promote candidate.onnx --model p_click --ruleset rulesets/retail",
    )
    parser.add_argument("candidate", type=Path, metavar="CANDIDATE", help="the candidate model file")
    add_promote_options(parser)
    return parser


def add_promote_options(parser: Parser, *, sources: bool = True) -> None:
    """The options of promotion, shared with ``tailor retrain`` (which names its own sources)."""
    parser.add_argument("--model", required=True, metavar="NAME", help="the model, as the rules declare it")
    parser.add_argument("--ruleset", required=True, type=Path, metavar="PATH", help="the ruleset that declares it")
    if sources:
        add_source_options(parser)
    parser.add_argument(
        "--since", type=float, metavar="EPOCH", help="compare on decisions from then on (default: the holdout's start)"
    )
    parser.add_argument("--max-auc-drop", type=float, metavar="X", help="(default: %(default)s)")
    parser.add_argument("--max-logloss-rise", type=float, metavar="FRACTION", help="relative (default: %(default)s)")
    parser.add_argument("--max-calibration-rise", type=float, metavar="X", help="(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="compare only; never write")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")
    parser.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $TAILOR_API_KEY)")
    parser.defaults_from(_margin_defaults)


def add_source_options(parser: Parser) -> None:
    parser.add_argument(
        "--from-log",
        metavar="SOURCE",
        help="the decision log to compare on (default: the one the candidate was trained from)",
    )
    parser.add_argument("--feedback", metavar="URL", help="the server holding the feedback (default: as trained)")


def _margin_defaults() -> dict[str, str]:
    from tailor.runtime.promotion import Margins

    default = {field.name: field.default for field in fields(Margins)}
    return {
        "max_auc_drop": typed(default["auc_drop"]),
        "max_logloss_rise": typed(default["logloss_rise"]),
        "max_calibration_rise": typed(default["calibration_rise"]),
    }


def margins(args: argparse.Namespace) -> Margins:
    from tailor.runtime.promotion import Margins

    return Margins(args.max_auc_drop, args.max_logloss_rise, args.max_calibration_rise)


def run(args: argparse.Namespace) -> int:
    if missing([args.candidate, args.ruleset]):
        return EXIT_USAGE
    return promote(args.candidate, args)


def promote(candidate_path: Path, args: argparse.Namespace) -> int:
    """Compare, and write when the candidate passes; the exit code."""
    from tailor.runtime.log_training import FEEDBACK_KEY, FROM_LOG_KEY
    from tailor.runtime.promotion import (
        check_in_ruleset,
        compare,
        current_model,
        holdout_from,
        read_candidate,
        replace_atomically,
    )
    from tailor.runtime.train import TrainError

    try:
        candidate = read_candidate(candidate_path)
        metadata = candidate.metadata
        source = args.from_log or metadata.get(FROM_LOG_KEY)
        if source is None:
            print(
                "tailor: the candidate does not say which decision log it was trained from: give --from-log",
                file=sys.stderr,
            )
            return EXIT_USAGE
        url = args.feedback or metadata.get(FEEDBACK_KEY) or DEFAULT_URL
        current = current_model(args.ruleset, args.model)
        comparison = compare(
            candidate,
            current,
            model=args.model,
            source=source,
            joined=joined_lookup(url, api_key(args)),
            label=metadata.get("tailor.label", "click"),
            targets=tuple(json.loads(metadata.get("tailor.targets", "[]"))),
            label_window=duration(metadata.get("tailor.label_window", "30m")),
            since=args.since if args.since is not None else holdout_from(candidate),
            margins=margins(args),
        )
        if not comparison.reasons and not args.dry_run:
            check_in_ruleset(candidate_path, args.ruleset, comparison.file)
            replace_atomically(candidate_path, comparison.file)
            comparison = _promoted(comparison)
    except ServerError:
        return EXIT_PROBLEMS
    except TrainError as exc:
        print(f"tailor: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.format == "json":
        sys.stdout.write(json.dumps(comparison.to_dict(), indent=2) + "\n")
    else:
        sys.stderr.write(describe(comparison, args.dry_run))
    return EXIT_OK if not comparison.reasons else EXIT_PROBLEMS


def _promoted(comparison: Comparison) -> Comparison:
    from dataclasses import replace

    return replace(comparison, promoted=True)


def describe(comparison: Comparison, dry_run: bool) -> str:
    first, second = comparison.candidate, comparison.current
    lines = [
        f"{comparison.rows:,} decisions of model {comparison.model} ({comparison.positives:,} positive) "
        f"since {comparison.since:.0f}:",
        f"  candidate {first.version}: AUC {first.auc:.4f}, log-loss {first.logloss:.4f}, "
        f"calibration error {first.calibration_error:.4f}",
        f"  current   {second.version}: AUC {second.auc:.4f}, log-loss {second.logloss:.4f}, "
        f"calibration error {second.calibration_error:.4f}",
    ]
    if comparison.reasons:
        lines += [f"not promoted: {reason}" for reason in comparison.reasons]
    elif comparison.promoted:
        lines.append(f"promoted: wrote {comparison.file}")
    else:
        lines.append("the candidate passes" + (" (--dry-run: nothing written)" if dry_run else ""))
    return "\n".join(lines) + "\n"
