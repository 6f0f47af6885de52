"""Errors and warnings as data, and the one place that renders them.

Every stage (tokenizer, parser, checker, linter) reports problems as
``Diagnostic`` values with a span; only the front ends decide how to show
them (text with a caret, JSON, CI annotations).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .source import Span


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"  # information, not a problem: lint's suggestions and summaries

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Related:
    """A second location that explains a diagnostic (the other side of a conflict).

    Its value is the message and the place; the span, when there is one, is
    kept for drawing the source line and takes no part in equality.
    """

    message: str
    span: Span | None = field(compare=False, repr=False)
    file: str = ""
    line: int = 0
    column: int = 0

    def __post_init__(self) -> None:
        if self.span is not None:
            line, column = self.span.source.position(self.span.start)
            object.__setattr__(self, "file", self.span.file)
            object.__setattr__(self, "line", line)
            object.__setattr__(self, "column", column)

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "file": self.file, "line": self.line, "column": self.column}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Related:
        return cls(data["message"], None, data["file"], data["line"], data["column"])


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem at a place in the sources.

    Its value is what ``to_dict`` writes: the place is resolved to lines and
    columns when the diagnostic is made, so one read back from JSON equals
    the original. The span, when there is one, is kept for drawing the
    source line and takes no part in equality.
    """

    severity: Severity
    message: str
    span: Span | None = field(compare=False, repr=False)
    code: str = ""
    hint: str = field(default="", metadata={"optional": True})
    related: tuple[Related, ...] = field(default=(), metadata={"optional": True})
    file: str = ""  # given for problems with no span (a missing file); the span's file otherwise
    line: int = 0
    column: int = 0
    end_line: int | None = field(default=None, metadata={"optional": True})
    end_column: int | None = field(default=None, metadata={"optional": True})  # one past the last character

    def __post_init__(self) -> None:
        span = self.span
        if span is not None:
            line, column = span.source.position(span.start)
            end_line, end_column = span.end_position
            object.__setattr__(self, "file", span.file)
            object.__setattr__(self, "line", line)
            object.__setattr__(self, "column", column)
            object.__setattr__(self, "end_line", end_line)
            object.__setattr__(self, "end_column", end_column + 1)

    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, self.span.start if self.span else -1, 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``tailor lint --format json`` and of ``last_error``: optional keys only when set."""
        data: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }
        if self.end_line is not None:
            data["end_line"] = self.end_line
            data["end_column"] = self.end_column
        if self.hint:
            data["hint"] = self.hint
        if self.related:
            data["related"] = [r.to_dict() for r in self.related]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnostic:
        return cls(
            Severity(data["severity"]),
            data["message"],
            None,
            data.get("code", ""),
            data.get("hint", ""),
            tuple(Related.from_dict(r) for r in data.get("related", ())),
            data["file"],
            data["line"],
            data["column"],
            data.get("end_line"),
            data.get("end_column"),
        )


def error(
    message: str, span: Span | None, *, code: str = "", hint: str = "", related=(), file_name: str = ""
) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, span, code, hint, tuple(related), file_name)


def warning(
    message: str, span: Span | None, *, code: str = "", hint: str = "", related=(), file_name: str = ""
) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, span, code, hint, tuple(related), file_name)


def note(
    message: str, span: Span | None, *, code: str = "", hint: str = "", related=(), file_name: str = ""
) -> Diagnostic:
    return Diagnostic(Severity.NOTE, message, span, code, hint, tuple(related), file_name)


def is_problem(diagnostic: Diagnostic) -> bool:
    """An error or a warning: a note is information, and fails nothing."""
    return diagnostic.severity is not Severity.NOTE


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


_COLORS = {
    "error": "\033[1;31m",
    "warning": "\033[1;33m",
    "note": "\033[1;36m",
    "bold": "\033[1m",
    "blue": "\033[1;34m",
    "reset": "\033[0m",
}


def render(diag: Diagnostic, *, color: bool = False) -> str:
    """``file:line:col: severity: message`` followed by the source line and a caret."""

    def paint(text: str, style: str) -> str:
        return f"{_COLORS[style]}{text}{_COLORS['reset']}" if color else text

    severity = paint(diag.severity.value, diag.severity.value)
    where = f"{diag.file}:{diag.line}:{diag.column}" if diag.line else diag.file
    lines = [f"{paint(where, 'bold')}: {severity}: {paint(diag.message, 'bold')}"]
    if diag.span is not None:
        lines.extend(_snippet(diag.span, diag.hint, paint))
    elif diag.hint:
        lines.append(f"  = {diag.hint}")
    for related in diag.related:
        lines.append(f"  {paint('note', 'blue')}: {related.message} at {related.file}:{related.line}:{related.column}")
        if related.span is not None:  # a diagnostic read back from JSON has no source to show
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
    kind = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(diag.severity, "notice")
    message = github_escape(diag.message + (f" ({diag.hint})" if diag.hint else ""))
    if diag.span is None:
        return f"::{kind} file={diag.file}::{message}"
    return f"::{kind} file={diag.file},line={diag.line},col={diag.column}::{message}"


def github_escape(message: str) -> str:
    """A message as a GitHub Actions workflow command carries it: on one line."""
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
