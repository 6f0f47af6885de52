"""What the commands print for a person: diagnostics, counts of things, and whether in colour."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from tailor.dsl.diagnostics import Diagnostic, Severity, render, render_github


def color(stream: TextIO) -> bool:
    """Colour only on a terminal, and not when NO_COLOR is set or the terminal is dumb."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def print_diagnostics(diagnostics: Sequence[Diagnostic], output: str) -> None:
    """As text (with a count of errors and warnings on standard error, and notes there too), JSON,
    or GitHub annotations."""
    if output == "json":
        print(json.dumps([d.to_dict() for d in diagnostics], indent=2))
        return
    if output == "github":
        for diag in diagnostics:
            print(render_github(diag))
        return
    colored, colored_notes = color(sys.stdout), color(sys.stderr)
    for diag in diagnostics:  # notes are not problems: standard output holds problems only
        stream = sys.stderr if diag.severity is Severity.NOTE else sys.stdout
        print(render(diag, color=colored_notes if stream is sys.stderr else colored), file=stream)
        print(file=stream)
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    notes = sum(d.severity is Severity.NOTE for d in diagnostics)
    warnings = len(diagnostics) - errors - notes
    if errors or warnings:
        print(
            f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
            + (f", {plural(notes, 'note')}" if notes else ""),
            file=sys.stderr,
        )
