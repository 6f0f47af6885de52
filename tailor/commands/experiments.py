"""``tailor experiments``: each experiment's results, from a running server or the decision log.

From a server (``--url``): per arm the exposed users, impressions, clicks,
users who converted and value, with rates and intervals; each arm's lift over
the first; the sample-ratio check; and what may be concluded. From the
decision log alone (``--log``): users per arm and the SRM check, and the
holdout's share, since the log holds no feedback (rates need ``--url``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tailor.runtime.redis_urls import is_redis_url

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .kpis import DEFAULT_URL
from .parser import Parser
from .paths import missing
from .remote import api_key, server_json


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "experiments",
        help="show each experiment's results: rates, lifts with intervals, sample ratio mismatch",
        description="Show the results of the experiments a running server serves (--url, the default), in their "
        "current phase: per arm the exposed users, impressions, clicks, users who converted and value; CTR, "
        "conversion rate and value per user with 95%% intervals; each arm's lift over the first arm by Welch's "
        "test, the always-valid sequential test and a Bayesian test; the sample-ratio-mismatch check; and what "
        "may be concluded. With --log, from the decision log instead: users per arm, the SRM check (weights from "
        "--rules) and the holdout's share; the log holds no feedback, so rates need --url.",
        epilog="examples:\n  tailor experiments --url http://127.0.0.1:8080\n"
        "  tailor experiments hero_test --format json\n"
        "  tailor experiments hero_test --plot lift.png\n"
        "  tailor experiments --log decisions/ --rules rulesets/retail",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="one experiment (default: every one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help=f"a running server's base URL (default: {DEFAULT_URL})")
    source.add_argument(
        "--log", metavar="DIR|URL", help="the decision log: the server's log directory, or the Redis URL of its Stream"
    )
    parser.add_argument("--rules", type=Path, metavar="PATH", help="with --log: the rules, for the arms' weights")
    parser.add_argument(
        "--since", type=duration, default="30d", metavar="DURATION", help="with --log: how far back (default: 30d)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="draw each arm's CTR lift over time to a PNG")
    parser.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $TAILOR_API_KEY)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.log is not None:
        if args.plot is not None:
            print("tailor: --plot needs the server's counts (--url): the log holds no feedback", file=sys.stderr)
            return EXIT_USAGE
        return _from_log(args)
    return _from_server(args)


# --- from a server ---


def _from_server(args: argparse.Namespace) -> int:
    from tailor.runtime.experiment_report import ExperimentList, ExperimentReport

    base = (args.url or DEFAULT_URL).rstrip("/")
    key = api_key(args)
    listed = server_json(base + "/v1/experiments", None, key)
    if listed is None:
        return EXIT_PROBLEMS
    try:
        experiments = ExperimentList.from_dict(listed)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        print(f"tailor: {base}/v1/experiments: the answer is not a list of experiments", file=sys.stderr)
        return EXIT_PROBLEMS
    names = [info.name for info in experiments.experiments]
    if args.name is not None and args.name not in names:
        print(
            f"tailor: no experiment {args.name!r} in the served rules ({', '.join(names) or 'none'})", file=sys.stderr
        )
        return EXIT_PROBLEMS
    reports = []
    for name in [args.name] if args.name is not None else names:
        data = server_json(f"{base}/v1/experiments/{quote(name, safe='')}", None, key)
        if data is None:
            return EXIT_PROBLEMS
        reports.append(ExperimentReport.from_dict(data))  # type: ignore[arg-type]
    if args.format == "json":
        sys.stdout.write(json.dumps({"experiments": [r.to_dict() for r in reports]}, indent=2) + "\n")
    else:
        if not reports:
            sys.stdout.write("the served rules declare no experiment\n")
        sys.stdout.write("\n".join(render(report) for report in reports))
    if args.plot is not None:
        from tailor.runtime.experiment_plot import plot_lifts

        try:
            plot_lifts(reports, args.plot)
        except ImportError:
            print("tailor: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return EXIT_PROBLEMS
        print(f"tailor: wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _rate(rate: Any, percent: bool = True) -> str:
    if rate.value is None:
        return "-"
    if percent:
        text = f"{rate.value * 100:.2f}%"
        return text if rate.low is None else f"{text} [{rate.low * 100:.2f}-{rate.high * 100:.2f}]"
    text = f"{rate.value:,.2f}"
    return text if rate.low is None else f"{text} [{rate.low:,.2f}-{rate.high:,.2f}]"


def render(report: Any) -> str:
    """One experiment's report as text: a table of arms, the lifts, then the conclusions."""
    from tailor.runtime.experiment_report import LABELS

    info = report.experiment
    weights = ", ".join(f"{arm} {weight * 100:g}%" for arm, weight in zip(info.arms, info.weights, strict=True))
    lines = [f"experiment {info.name} (phase {report.phase}; {weights}; coverage {info.coverage * 100:g}%)"]
    header = ("arm", "users", "impressions", "clicks", "ctr [95%]", "converted", "conv. rate [95%]", "value/user [95%]")
    rows = [
        (
            arm.arm,
            f"{arm.users:,}",
            f"{arm.impressions:,}",
            f"{arm.clicks:,}",
            _rate(arm.ctr),
            f"{arm.conversions:,}",
            _rate(arm.conversion_rate),
            _rate(arm.value_per_user, percent=False),
        )
        for arm in report.result.arms
    ]
    lines += _table(header, rows)
    lift_rows = []
    for comparison in report.result.comparisons:
        cells = [comparison.arm, LABELS[comparison.metric]]
        for method in ("welch", "sequential", "bayesian"):
            lift = getattr(comparison, method)
            if lift.error is not None:
                cells.append("-")
            else:
                cells.append(f"{lift.expected * 100:+.1f}% [{lift.low * 100:+.1f}, {lift.high * 100:+.1f}]")
        bayesian = comparison.bayesian
        cells.append("-" if bayesian.error is not None else f"{bayesian.chance_to_win * 100:.0f}%")
        lift_rows.append(tuple(cells))
    if lift_rows:
        control = info.arms[0]
        lines.append(f"lift over {control} (95% intervals):")
        lines += _table(("arm", "metric", "welch", "sequential (always-valid)", "bayesian", "chance to win"), lift_rows)
    lines += [f"- {sentence}" for sentence in report.conclusions]
    return "\n".join(lines) + "\n"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(len(header))
    ]
    out = []
    for line in (header, *rows):
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
    return out


# --- from the decision log ---


def _from_log(args: argparse.Namespace) -> int:
    if missing([*([Path(args.log)] if not is_redis_url(args.log) else []), *([args.rules] if args.rules else [])]):
        return EXIT_USAGE
    from tailor.runtime.decision_log_reader import read_records
    from tailor.runtime.experiment_log import log_report

    weights: dict[str, tuple[str, ...] | Any] = {}
    holdout_share = None
    if args.rules is not None:
        from tailor.dsl.diagnostics import RulesError
        from tailor.runtime.ruleset_loader import load

        from .terminal import print_diagnostics

        try:
            ruleset = load(args.rules)
        except RulesError as exc:
            print_diagnostics(exc.diagnostics, "text")
            return EXIT_PROBLEMS
        plan = ruleset.plan
        weights = {name: (e.phase, dict(zip(e.arms, e.weights, strict=True))) for name, e in plan.experiments.items()}
        holdout_share = plan.holdout.share if plan.holdout is not None else None
    until = time.time()
    report = log_report(read_records(args.log, until - args.since, until), weights, holdout_share, args.name)
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.render())
    for note in report.notes:
        print(f"tailor: experiments: {note}", file=sys.stderr)
    return EXIT_OK
