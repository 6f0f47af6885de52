"""``tailor report``: rule health, from the decision log and a server's KPIs.

Standard output holds the report alone (``--format json`` and ``github``
print nothing else); what could not be judged, and why, goes to standard
error. ``--fail-on`` makes chosen findings fail the run, for a weekly CI job.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from tailor.dsl.diagnostics import RulesError
from tailor.runtime.redis_urls import is_redis_url

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .remote import api_key, server_json
from .terminal import plural, print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "report",
        help="review every rule: how often it applies, wins and is clicked",
        description="Review every rule of PATH with its file:line: how often its condition was true and how often "
        "it won, from the decision log (--log); how often its content was clicked, from a running server's KPIs "
        "(--url). Findings: never_fired, never_won, mostly_capped, low_ctr, low_traffic, each with advice. "
        "Decisions made by other versions of the rules are left out unless --all-versions.",
        epilog="example:\n  tailor report rulesets/retail --log /var/log/tailor/decisions\n"
        "  tailor report rulesets/retail --log decisions/ --url http://127.0.0.1:8080 \\\n"
        "      --format github --fail-on never_fired,low_ctr",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="the ruleset: a .rules file or a directory of them")
    parser.add_argument(
        "--log", metavar="DIR|URL", help="the decision log: the server's log directory, or the Redis URL of its Stream"
    )
    parser.add_argument("--url", help="a running server's base URL, to read its KPIs")
    parser.add_argument(
        "--since", type=duration, default="7d", metavar="DURATION", help="how far back to look (default: 7d)"
    )
    parser.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    parser.add_argument(
        "--fail-on",
        type=_names,
        default=(),
        metavar="FINDINGS",
        help="exit 1 when any of these findings is made, e.g. never_fired,low_ctr",
    )
    parser.add_argument(
        "--all-versions",
        action="store_true",
        help="replay every logged decision against PATH's rules, whichever version made it",
    )
    parser.add_argument("--api-key", metavar="KEY", help="for a server that protects reads (default: $TAILOR_API_KEY)")
    return parser


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def run(args: argparse.Namespace) -> int:
    from tailor.runtime.rule_health import KINDS

    if args.log is None and args.url is None:
        needs = "the decision log (--log DIR), a server's KPIs (--url URL), or both"
        print(f"tailor: report needs {needs}", file=sys.stderr)
        return EXIT_USAGE
    unknown = [name for name in args.fail_on if name not in KINDS]
    if unknown:
        print(f"tailor: --fail-on {unknown[0]}: not a finding; the findings are {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_USAGE
    if missing([args.path, *([Path(args.log)] if args.log is not None and not is_redis_url(args.log) else [])]):
        return EXIT_USAGE
    from tailor.runtime.decision_log_reader import read_records
    from tailor.runtime.rule_health import kpi_totals, replay_log, review
    from tailor.runtime.rule_health_formats import EMITTERS
    from tailor.runtime.ruleset_loader import load

    try:
        ruleset = load(args.path)
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    until = time.time()
    since = until - args.since
    notes: list[str] = []
    tallies = None
    if args.log is not None:
        replay = replay_log(ruleset, read_records(args.log, since, until), all_versions=args.all_versions)
        tallies = replay.tallies
        notes += replay.notes()
    else:
        notes.append("never_fired, never_won and mostly_capped need the decision log (--log DIR)")
    kpis = None
    if args.url is not None:
        from tailor.runtime.feedback import utc_day

        query = {"since": utc_day(since), "until": utc_day(until)}  # KPIs are counted by UTC day, both inclusive
        if not args.all_versions:
            query["version"] = ruleset.version
        url = args.url.rstrip("/") + "/v1/kpis?" + urlencode(query)
        data = server_json(url, None, api_key(args))
        if data is None:
            return EXIT_PROBLEMS
        rows = data.get("rows") if isinstance(data, dict) else None
        try:
            if not isinstance(rows, list):
                raise ValueError('the answer has no "rows"')
            kpis = kpi_totals(rows)
        except ValueError as exc:
            print(f"tailor: {url}: the answer is not KPIs: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        if not rows:
            notes.append(f"the server has no KPIs for version {ruleset.version} in this period")
    else:
        notes.append("low_ctr needs the KPIs of a running server (--url URL)")
    report = review(ruleset, tallies, kpis, notes)
    sys.stdout.write(EMITTERS[args.format](report))
    for note in report.notes:
        print(f"tailor: report: {note}", file=sys.stderr)
    findings = report.findings
    if args.format == "text":
        print(f"{plural(len(findings), 'finding')} in {plural(len(report.rules), 'rule')}", file=sys.stderr)
    failing = [finding for finding in findings if finding.finding in args.fail_on]
    return EXIT_PROBLEMS if failing else EXIT_OK
