"""Source text and the spans that point into it.

Tokens and AST nodes carry only character offsets; lines and columns are
computed on demand, because a hot-reload parse of a large file should not pay
for line bookkeeping that only an error message will ever read.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

_NEWLINE = re.compile("\n")
_END = re.Match.end  # a match's end offset: here, where the next line starts


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """One source file (or in-memory text) and its line table."""

    name: str
    text: str
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def _starts(self) -> list[int]:
        starts = self._line_starts
        if not starts:
            # Filled in one step (the offsets after each newline, found without a Python loop:
            # a large file has millions of lines), so a reader in another thread sees all or none.
            starts[:] = [0, *map(_END, _NEWLINE.finditer(self.text))]
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of a character offset."""
        starts = self._starts()
        line = bisect_right(starts, offset) - 1
        return line + 1, offset - starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        starts = self._starts()
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end].rstrip("\r")


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) of a source."""

    source: Source
    start: int
    end: int

    @property
    def file(self) -> str:
        return self.source.name

    @property
    def line(self) -> int:
        # position()'s line, without making its tuple: planning reads every rule's line
        return bisect_right(self.source._starts(), self.start)

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def end_position(self) -> tuple[int, int]:
        return self.source.position(max(self.start, self.end - 1))

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def to(self, other: Span) -> Span:
        """The span covering this one through ``other``."""
        return Span(self.source, self.start, other.end)

    def __repr__(self) -> str:
        return f"<{self.file}:{self.line}:{self.column}>"
