"""``tailor compile``: compile a ruleset and show its decision plan, its DAG, or the generated Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailor.dsl.diagnostics import RulesError

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .terminal import print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "compile",
        help="compile a ruleset and show its decision plan",
        description="Compile a ruleset and show the decision plan, its DAG, or the generated Python.",
        epilog="example:\n  tailor compile rulesets/retail --emit plan\n"
        "  tailor compile rulesets/retail --emit dot | dot -Tsvg > plan.svg",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    parser.add_argument("--emit", choices=("plan", "dot", "python"), default="plan", help="what to print")
    parser.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tailor.compiler.display import plan_dot, plan_text
    from tailor.runtime.loading import load

    if missing([args.path]) or (args.stats is not None and missing([args.stats])):
        return EXIT_USAGE
    try:
        ruleset = load(args.path, stats=args.stats)
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    except (ValueError, KeyError) as exc:
        print(f"tailor: {args.stats}: not a statistics file ({exc})", file=sys.stderr)
        return EXIT_USAGE
    if args.emit == "python":
        sys.stdout.write(ruleset.compiled.source)
    elif args.emit == "dot":
        sys.stdout.write(plan_dot(ruleset.plan))
    else:
        sys.stdout.write(plan_text(ruleset.plan, ruleset.version))
    return EXIT_OK
