"""Writing Python source: indentation, comments and the literals of a plan's values.

Every literal is spelled from the value alone (sets in sorted order), so the
same plan gives the same text in every process, whatever the hash seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .ir import UNKNOWN

# Candidate sets of up to this many bits are written in binary, one digit per
# bit, so they can be read against the legend; wider ones in hexadecimal.
BINARY_BITS = 32
# A table whose literal is at most this long is written where it is used;
# a longer one becomes a named module-level constant, one entry per line.
INLINE_LENGTH = 64
# A candidate set written longer than this is a named constant where code uses it.
MASK_LENGTH = 42
# A dictionary constant longer than this has one entry per line.
DICT_LENGTH = 100
# A comment quoting rules is cut at this length.
COMMENT_LENGTH = 110


class CodeWriter:
    """Indentation-aware source builder, after Jinja2's code generator."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._indent = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self._indent + text) if text else "")

    def comment(self, text: str) -> None:
        self.line("# " + one_line(text) if text else "#")

    def indent(self) -> None:
        self._indent += 1

    def outdent(self) -> None:
        self._indent -= 1

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def one_line(text: str, limit: int = 0) -> str:
    """Text fit for a comment: no line breaks, cut at ``limit`` characters when one is given."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if limit and len(text) > limit:
        return text[: limit - 4].rstrip() + " ..."
    return text


def mask_literal(mask: int, width: int) -> str:
    """A candidate set: ``0b0000_0110_0000`` (bit 0 rightmost) for narrow plans, hexadecimal for wide ones."""
    if width > BINARY_BITS:
        return f"0x{mask:x}"
    digits = format(mask, f"0{max(width, 1)}b")
    groups = []
    while digits:
        groups.append(digits[-4:])
        digits = digits[:-4]
    return "0b" + "_".join(reversed(groups))


def value_literal(value: Any) -> str:
    """A constant of the rules language as a Python expression; unknown is None."""
    if value is UNKNOWN or value is None:
        return "None"
    if isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    if isinstance(value, frozenset):
        if not value:
            return "frozenset()"
        return "{" + ", ".join(sorted(value_literal(v) for v in value)) + "}"
    raise TypeError(f"no literal for {value!r}")


def tuple_literal(items: Iterable[str]) -> str:
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def block_literal(open_: str, entries: Iterable[tuple[str, str]], close: str) -> list[str]:
    """A multi-line tuple or dict: one ``entry,  # comment`` per line."""
    lines = [open_]
    for entry, note in entries:
        lines.append(f"    {entry},  # {one_line(note)}" if note else f"    {entry},")
    lines.append(close)
    return lines


def dict_lines(name: str, entries: Iterable[tuple[str, str, str]], multiline: bool = False) -> list[str]:
    """``NAME = {key: value, ...}`` on one line when short, else one ``key: value,  # note`` per line."""
    entries = list(entries)
    single = f"{name} = {{" + ", ".join(f"{key}: {value}" for key, value, _ in entries) + "}"
    if not multiline and len(single) <= DICT_LENGTH:
        return [single]
    return block_literal(f"{name} = {{", [(f"{key}: {value}", note) for key, value, note in entries], "}")


class Constants:
    """The module-level constants the code asks for, in the order asked.

    A candidate set or table short enough to read in place stays a literal
    where it is used; a longer one gets a name, ``FEATURE_ROLE``, defined once.
    """

    def __init__(self, width: int, all_bits: int):
        self.width = width  # bits in a candidate set
        self.all_bits = all_bits
        self.blocks: list[list[str]] = []
        self._named: set[str] = set()

    def mask(self, mask: int, name: str, role: str) -> str:
        if mask == self.all_bits and self.width > BINARY_BITS:
            return "ALL"
        literal = mask_literal(mask, self.width)
        if len(literal) <= MASK_LENGTH:
            return literal
        constant = f"{name.upper()}_{role}"
        return self.define(constant, [f"{constant} = {literal}"])

    def fits(self, mask: int) -> bool:
        """Whether the mask is written in place."""
        return len(mask_literal(mask, self.width)) <= MASK_LENGTH

    def table(self, name: str, role: str, items: list[str], notes: list[str], limit: int = INLINE_LENGTH) -> str:
        literal = tuple_literal(items)
        if len(literal) <= limit:
            return literal
        constant = f"{name.upper()}_{role}"
        return self.define(constant, block_literal(f"{constant} = (", zip(items, notes, strict=True), ")"))

    def define(self, constant: str, lines: list[str]) -> str:
        if constant not in self._named:
            self._named.add(constant)
            self.blocks.append(lines)
        return constant
