"""The ``tailor`` command line.

Exit codes follow the usual convention of linters and formatters: 0 when all
is well, 1 when the input has problems (errors, or files ``fmt --check``
would change), 2 for a usage error such as a path that does not exist.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tailor.compiler.frontend import has_errors, lint_path
from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity, render, render_github
from tailor.dsl.formatter import format_text
from tailor.dsl.loader import display_name, rules_files

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class _Parser(argparse.ArgumentParser):
    """Shows examples under each command's help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tailor", description="Personalization rules: lint, format, compile and serve them.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    lint = commands.add_parser(
        "lint",
        help="check rules for errors and likely mistakes",
        description="Check .rules files for errors and likely mistakes.",
        epilog="example:\n  tailor lint rulesets/retail\n  tailor lint --format github rulesets/",
    )
    lint.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    lint.add_argument("--strict", action="store_true", help="fail on warnings too")
    lint.set_defaults(run=_lint)

    fmt = commands.add_parser(
        "fmt",
        help="rewrite rules files in the canonical style",
        description="Rewrite .rules files in the canonical style (use - to format standard input).",
        epilog="example:\n  tailor fmt rulesets/\n  tailor fmt --check rulesets/   # in CI",
    )
    fmt.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (- for standard input)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 and list files that would change")
    mode.add_argument("--diff", action="store_true", help="change nothing; print what would change as a diff")
    fmt.set_defaults(run=_fmt)

    compile_ = commands.add_parser(
        "compile",
        help="compile a ruleset and show its decision plan",
        description="Compile a ruleset and show the decision plan, its DAG, or the generated Python.",
        epilog="example:\n  tailor compile rulesets/retail --emit plan\n"
        "  tailor compile rulesets/retail --emit dot | dot -Tsvg > plan.svg",
    )
    compile_.add_argument("path", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    compile_.add_argument("--emit", choices=("plan", "dot", "python"), default="plan", help="what to print")
    compile_.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    compile_.set_defaults(run=_compile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _missing(paths: Sequence[Path]) -> list[Path]:
    missing = [p for p in paths if str(p) != "-" and not Path(p).exists()]
    for path in missing:
        print(f"tailor: {path}: no such file or directory", file=sys.stderr)
    return missing


# --- lint ---


def _lint(args: argparse.Namespace) -> int:
    if _missing(args.paths):
        return EXIT_USAGE
    diagnostics: list[Diagnostic] = []
    for path in args.paths:
        diagnostics.extend(lint_path(path))
    _print_diagnostics(diagnostics, args.format)
    failing = has_errors(diagnostics) or (args.strict and diagnostics)
    return EXIT_PROBLEMS if failing else EXIT_OK


def _print_diagnostics(diagnostics: list[Diagnostic], output: str) -> None:
    if output == "json":
        print(json.dumps([d.to_dict() for d in diagnostics], indent=2))
        return
    if output == "github":
        for diag in diagnostics:
            print(render_github(diag))
        return
    color = _color(sys.stdout)
    for diag in diagnostics:
        print(render(diag, color=color))
        print()
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        print(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}", file=sys.stderr)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


# --- compile ---


def _compile(args: argparse.Namespace) -> int:
    from tailor.compiler.display import plan_dot, plan_text
    from tailor.compiler.ruleset import load

    if _missing([args.path]) or (args.stats is not None and _missing([args.stats])):
        return EXIT_USAGE
    try:
        ruleset = load(args.path, stats=args.stats)
    except RulesError as exc:
        _print_diagnostics(exc.diagnostics, "text")
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


# --- fmt ---


def _fmt(args: argparse.Namespace) -> int:
    if _missing(args.paths):
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
            _print_diagnostics(exc.diagnostics, "text")
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
            f"{_plural(len(changed), 'file')} would be reformatted, {len(files) - len(changed)} already formatted",
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
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
