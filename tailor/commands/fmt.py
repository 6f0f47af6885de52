"""``tailor fmt``: rewrite rules files in the canonical style."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from tailor.dsl.diagnostics import RulesError
from tailor.dsl.formatter import format_text
from tailor.dsl.loader import display_name, rules_files

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .terminal import plural, print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "fmt",
        help="rewrite rules files in the canonical style",
        description="Rewrite .rules files in the canonical style (use - to format standard input).",
        epilog="example:\n  tailor fmt rulesets/\n  tailor fmt --check rulesets/   # in CI",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (- for standard input)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 and list files that would change")
    mode.add_argument("--diff", action="store_true", help="change nothing; print what would change as a diff")
    return parser


def run(args: argparse.Namespace) -> int:
    if missing(args.paths):
        return EXIT_USAGE
    if args.paths == ["-"]:
        return _fmt_stdin()
    files = [f for p in args.paths for f in _all_rules_files(Path(p))]
    changed: list[Path] = []
    failed = False
    for path in files:
        original = path.read_text(encoding="utf-8")
        try:
            formatted = format_text(original, display_name(path))
        except RulesError as exc:
            print_diagnostics(exc.diagnostics, "text")
            failed = True
            continue
        if formatted == original:
            continue
        changed.append(path)
        if args.diff:
            name = display_name(path)
            sys.stdout.writelines(
                difflib.unified_diff(
                    original.splitlines(keepends=True), formatted.splitlines(keepends=True), name, name
                )
            )
        elif args.check:
            print(f"would reformat {display_name(path)}")
        else:
            path.write_text(formatted, encoding="utf-8")
            print(f"reformatted {display_name(path)}")
    if args.check or args.diff:
        print(
            f"{plural(len(changed), 'file')} would be reformatted, {len(files) - len(changed)} already formatted",
            file=sys.stderr,
        )
    if failed or ((args.check or args.diff) and changed):
        return EXIT_PROBLEMS
    return EXIT_OK


def _all_rules_files(root: Path) -> list[Path]:
    """Rules and rule-test files alike: both are formatted."""
    if root.is_file():
        return [root]
    return sorted({*rules_files(root), *rules_files(root, tests=True)})


def _fmt_stdin() -> int:
    try:
        sys.stdout.write(format_text(sys.stdin.read(), "<stdin>"))
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    return EXIT_OK
