"""Errors and warnings as data, and the one place that renders them.

Every stage (tokenizer, parser, checker, linter) reports problems as
``Diagnostic`` values with a span; only the front ends decide how to show
them (text with a caret, JSON, CI annotations).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from .source import Span


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Related:
    """A second location that explains a diagnostic (the other side of a conflict)."""

    message: str
    span: Span


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span | None
    code: str = ""
    hint: str = ""
    related: tuple[Related, ...] = field(default=())
    file_name: str = ""  # for problems with no span (a missing file)

    @property
    def file(self) -> str:
        return self.span.file if self.span is not None else self.file_name

    @property
    def line(self) -> int:
        return self.span.line if self.span is not None else 0

    @property
    def column(self) -> int:
        return self.span.column if self.span is not None else 0

    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, self.span.start if self.span else -1, 0)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }
        if self.span is not None:
            end_line, end_column = self.span.end_position
            data["end_line"] = end_line
            data["end_column"] = end_column + 1
        if self.hint:
            data["hint"] = self.hint
        if self.related:
            data["related"] = [
                {"message": r.message, "file": r.span.file, "line": r.span.line, "column": r.span.column}
                for r in self.related
            ]
        return data


def error(
    message: str, span: Span | None, *, code: str = "", hint: str = "", related=(), file_name: str = ""
) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, span, code, hint, tuple(related), file_name)


def warning(
    message: str, span: Span | None, *, code: str = "", hint: str = "", related=(), file_name: str = ""
) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, span, code, hint, tuple(related), file_name)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A "did you mean …?" hint, or "" when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


class RulesError(Exception):
    """Raised when sources have errors; carries every diagnostic found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__(render_all(self.diagnostics, color=False))


def sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Source order, each problem once."""
    seen: set[tuple] = set()
    result = []
    for diag in sorted(diagnostics, key=Diagnostic.sort_key):
        key = (diag.file, diag.span.start if diag.span else -1, diag.message)
        if key not in seen:
            seen.add(key)
            result.append(diag)
    return result


_COLORS = {"error": "\033[1;31m", "warning": "\033[1;33m", "bold": "\033[1m", "blue": "\033[1;34m", "reset": "\033[0m"}


def render(diag: Diagnostic, *, color: bool = False) -> str:
    """``file:line:col: severity: message`` followed by the source line and a caret."""

    def paint(text: str, style: str) -> str:
        return f"{_COLORS[style]}{text}{_COLORS['reset']}" if color else text

    severity = paint(diag.severity.value, diag.severity.value)
    where = f"{diag.file}:{diag.line}:{diag.column}" if diag.span else diag.file
    lines = [f"{paint(where, 'bold')}: {severity}: {paint(diag.message, 'bold')}"]
    if diag.span is not None:
        lines.extend(_snippet(diag.span, diag.hint, paint))
    elif diag.hint:
        lines.append(f"  = {diag.hint}")
    for related in diag.related:
        lines.append(
            f"  {paint('note', 'blue')}: {related.message}"
            f" at {related.span.file}:{related.span.line}:{related.span.column}"
        )
        lines.extend(_snippet(related.span, "", paint))
    return "\n".join(lines)


def _snippet(span: Span, label: str, paint) -> list[str]:
    line, column = span.line, span.column
    text = span.source.line_text(line).expandtabs(1)
    end_line, end_column = span.end_position
    width = (end_column - column + 1) if end_line == line else len(text) - column + 1
    width = max(1, width)
    gutter = " " * len(str(line))
    caret = " " * (column - 1) + "^" * width
    result = [
        f"{gutter} {paint('|', 'blue')}",
        f"{paint(str(line), 'blue')} {paint('|', 'blue')} {text}",
        f"{gutter} {paint('|', 'blue')} {paint(caret, 'bold')}" + (f" {label}" if label else ""),
    ]
    return result


def render_all(diagnostics: Iterable[Diagnostic], *, color: bool = False) -> str:
    return "\n\n".join(render(d, color=color) for d in diagnostics)


def render_github(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command, so CI shows the problem on the line."""
    kind = "error" if diag.severity is Severity.ERROR else "warning"
    message = diag.message + (f" ({diag.hint})" if diag.hint else "")
    message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if diag.span is None:
        return f"::{kind} file={diag.file}::{message}"
    return f"::{kind} file={diag.file},line={diag.line},col={diag.column}::{message}"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
