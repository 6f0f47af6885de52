"""``tailor compile``: compile a ruleset and show its decision plan, its DAG, or the generated Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    parser.add_argument(
        "--emit",
        choices=("check", "normalize", "model_inputs", "plan", "dot", "python"),
        default="plan",
        help="which stage's product to print: the checked program, the rules in normal form, the models' inputs, "
        "the decision plan (as text or as a Graphviz graph), or the generated Python",
    )
    parser.add_argument("--timings", action="store_true", help="print each stage's time on stderr")
    parser.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tailor.compiler.display import stage_text
    from tailor.compiler.plan import PredicateStats
    from tailor.runtime.ruleset_loader import compile_path

    if missing([args.path]) or (args.stats is not None and missing([args.stats])):
        return EXIT_USAGE
    try:
        stats = PredicateStats.load(args.stats) if args.stats is not None else None
    except (ValueError, KeyError) as exc:
        print(f"tailor: {args.stats}: not a statistics file ({exc})", file=sys.stderr)
        return EXIT_USAGE
    loaded = compile_path(args.path, stats=stats)
    if args.timings:
        print_timings(loaded.compilation.timings)
    if not loaded.compilation.ok:
        print_diagnostics(loaded.diagnostics, "text")
        return EXIT_PROBLEMS
    sys.stdout.write(stage_text(loaded.compilation, args.emit, loaded.version()))
    return EXIT_OK


def print_timings(timings: dict[str, float]) -> None:
    """Per-stage times on stderr, so that stdout stays the emitted product."""
    width = max(len(name) for name in timings)
    for name, seconds in timings.items():
        print(f"{name:<{width}}  {seconds * 1000:9.1f} ms", file=sys.stderr)
    print(f"{'total':<{width}}  {sum(timings.values()) * 1000:9.1f} ms", file=sys.stderr)
