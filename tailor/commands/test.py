"""``tailor test``: run the rule tests (``*_test.rules``) of a ruleset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .terminal import color, print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "test",
        help="run the rule tests (*_test.rules) of a ruleset",
        description="Run the tests in the *_test.rules files of a ruleset against the compiled rules. "
        "Models do not run: a test gives the scores it needs. A failure shows why the slot was decided "
        "as it was.",
        epilog="example:\n  tailor test rulesets/retail\n  tailor test rulesets/retail -k vip\n"
        "  tailor test rulesets/retail --coverage --threshold 100\n"
        "  tailor test rulesets/retail --format junit > report.xml",
    )
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="a ruleset directory, a .rules file or a _test.rules file"
    )
    parser.add_argument("-k", dest="pattern", metavar="PATTERN", help="run only tests whose title contains PATTERN")
    parser.add_argument("--coverage", action="store_true", help="report which rules and predicates the tests exercise")
    parser.add_argument(
        "--threshold", type=float, metavar="PCT", help="fail when under PCT percent of the rules win in some test"
    )
    parser.add_argument("--format", choices=("text", "json", "junit"), default="text", help="output format")
    return parser


def run(args: argparse.Namespace) -> int:
    from tailor.runtime.ruletest import dumps, prepare, render_junit, render_text, report_json
    from tailor.runtime.ruletest import run as run_tests

    if missing([args.path]):
        return EXIT_USAGE
    if args.threshold is not None and not 0 <= args.threshold <= 100:
        print("tailor: --threshold must be a percentage between 0 and 100", file=sys.stderr)
        return EXIT_USAGE
    suite, diagnostics = prepare(args.path)
    if suite is None:
        print_diagnostics(diagnostics, "text")
        return EXIT_PROBLEMS
    report = run_tests(suite, args.pattern)
    if args.format == "json":
        print(dumps(report_json(report)))
    elif args.format == "junit":
        sys.stdout.write(render_junit(report))
    else:
        print(render_text(report, coverage=args.coverage or args.threshold is not None, color=color(sys.stdout)))
    if not report.results:
        print("tailor: no tests " + ("match -k " + repr(args.pattern) if args.pattern else "found"), file=sys.stderr)
    below = args.threshold is not None and report.coverage.rule_percent < args.threshold
    if below:
        print(
            f"tailor: rule coverage {report.coverage.rule_percent:.1f}% is below the threshold {args.threshold:g}%",
            file=sys.stderr,
        )
    return EXIT_PROBLEMS if report.failed or below else EXIT_OK
