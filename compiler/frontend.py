"""From a path on disk to a checked ``Program``: read, parse (cached), check."""

from __future__ import annotations

from pathlib import Path

from tailor.dsl.diagnostics import Diagnostic, Severity, error, sorted_unique
from tailor.dsl.loader import ParseCache, ParsedFile, display_name, read_ruleset
from tailor.dsl.parser import collector_paused

from .check import Program, check


def ruleset_name(root: Path) -> str:
    """The default name: the file's stem, or the directory's name."""
    if root.is_file():
        name = root.name
        return name[: -len(".rules")] if name.endswith(".rules") else root.stem
    return root.resolve().name


def check_path(root: Path, cache: ParseCache | None = None) -> tuple[Program | None, list[Diagnostic]]:
    """Parse and check the ruleset at ``root``; the program is None when nothing could be read."""
    _files, program, diagnostics = read_and_check(root, cache)
    return program, diagnostics


def read_and_check(
    root: Path, cache: ParseCache | None = None
) -> tuple[list[ParsedFile], Program | None, list[Diagnostic]]:
    if not root.exists():
        return [], None, [error("no such file or directory", None, file_name=display_name(root))]
    files = read_ruleset(root, cache)
    if not files:
        return [], None, [error("no .rules files here", None, file_name=display_name(root))]
    program, diagnostics = check_files(files, ruleset_name(root))
    return files, program, diagnostics


def check_files(files: list[ParsedFile], name: str) -> tuple[Program, list[Diagnostic]]:
    problems: list[Diagnostic] = [d for f in files for d in f.diagnostics]
    program, checked = check([f.module for f in files], name)
    return program, sorted_unique([*problems, *checked])


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def lint_path(root: Path, cache: ParseCache | None = None, retention: float | None = None) -> list[Diagnostic]:
    """Errors, then (for a ruleset without errors) the lint analyses' warnings."""
    from .lint import DEFAULT_RETENTION, lint
    from .plan import build_plan

    program, diagnostics = check_path(root, cache)
    if program is None or has_errors(diagnostics):
        return diagnostics
    with collector_paused():  # as compiling does: planning allocates much and frees little
        found = lint(build_plan(program), retention if retention is not None else DEFAULT_RETENTION)
    return sorted_unique([*diagnostics, *found])
