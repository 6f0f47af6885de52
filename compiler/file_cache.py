"""Stage products kept per file between compiles, so a reload redoes only the files that changed.

A file's entry is found by its name and the SHA-256 of its text, and is kept
under a *context*: what the stage read of the other files when it made the
entry. A compile whose context differs in any way finds no entries, so an
entry is never served for a program whose declarations changed its meaning.
Only the latest compile's files are kept: each compile replaces the entries
with its own, so an edited file's old entry does not linger.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .check import CheckedFile
    from .normal_forms import NormalForm

Entry = TypeVar("Entry")
FileKey = tuple[str, str]  # (file name, SHA-256 of its text)


class FileEntries(Generic[Entry]):
    """One stage's entries by file, for one context at a time."""

    def __init__(self) -> None:
        self._context: Hashable = None
        self._entries: dict[FileKey, Entry] = {}
        self._lock = threading.Lock()
        self.hits = 0  # files the stage did not redo
        self.misses = 0

    def entries(self, context: Hashable) -> dict[FileKey, Entry]:
        """The entries made under an equal context; none when the context differs."""
        with self._lock:
            return dict(self._entries) if context == self._context else {}

    def replace(self, context: Hashable, entries: dict[FileKey, Entry]) -> None:
        """Keep exactly ``entries`` (the compile just done), under ``context``."""
        with self._lock:
            self._context = context
            self._entries = entries


class FileCache:
    """The per-file products of the front end: checked files and normalized rules."""

    def __init__(self) -> None:
        self.check: FileEntries[CheckedFile] = FileEntries()
        self.normal: FileEntries[tuple[NormalForm, ...]] = FileEntries()
