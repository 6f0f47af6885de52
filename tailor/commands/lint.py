"""``tailor lint``: check rules for errors and likely mistakes.

As text, the problems are followed by their count, and a clean ruleset gets
one line saying what was checked (``rulesets/retail: 10 rules in 4 files, no
problems``), on standard error: standard output holds problems only, and
``--format json`` and ``github`` print nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, has_errors, is_problem
from tailor.dsl.loader import ParseCache, read_ruleset
from tailor.dsl.printer import duration_text
from tailor.runtime.ruleset_loader import lint_path

from .durations import duration
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .terminal import plural, print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "lint",
        help="check rules for errors and likely mistakes",
        description="Check .rules files for errors and likely mistakes.",
        epilog="example:\n  tailor lint rulesets/retail\n  tailor lint --format github rulesets/",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument(
        "--retention",
        type=duration,
        default=duration_text(DEFAULT_RETENTION),
        metavar="DURATION",
        help="how long the server keeps events; longer windows are flagged (default: %(default)s)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if missing(args.paths):
        return EXIT_USAGE
    diagnostics: list[Diagnostic] = []
    cache = ParseCache()  # the summary counts what lint parsed, without parsing it again
    for path in args.paths:
        diagnostics.extend(lint_path(path, retention=args.retention, cache=cache))
    print_diagnostics(diagnostics, args.format)
    problems = [d for d in diagnostics if is_problem(d)]  # notes inform: they fail nothing
    if args.format == "text" and not problems:
        for path in args.paths:
            print(f"{path}: {_checked(path, cache)}, no problems", file=sys.stderr)
    failing = has_errors(diagnostics) or (args.strict and problems)
    return EXIT_PROBLEMS if failing else EXIT_OK


def _checked(path: Path, cache: ParseCache) -> str:
    """What linting ``path`` read: ``10 rules in 4 files``."""
    files = read_ruleset(path, cache)
    rules = sum(isinstance(decl, ast.RuleDecl) for parsed in files for decl in parsed.module.declarations)
    return f"{plural(rules, 'rule')} in {plural(len(files), 'file')}"
