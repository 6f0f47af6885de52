"""Finding and reading ``.rules`` files, with a parse cache keyed by content.

A ruleset is one file or a directory of ``*.rules`` files (recursively), in
path order; ``*_test.rules`` files hold rule tests and are never part of it.
Hot reload re-reads every file but re-parses only those whose bytes changed.

Hidden entries (a name starting with ``.``) are skipped: a Kubernetes
ConfigMap volume keeps its files in a hidden ``..2026_…`` directory and shows
them through symlinks, so a file is named by the link that reaches it, and a
file reached twice counts once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, error
from .parser import parse_source
from .source import Source

RULES_SUFFIX = ".rules"
TEST_SUFFIX = "_test.rules"


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIX)


def rules_files(root: Path, *, tests: bool = False) -> list[Path]:
    """The ruleset's files under ``root`` in path order (or its test files)."""
    if root.is_file():
        return [root]
    found = sorted(
        ((path, identity) for path, identity in _visible_files(root) if path.name.endswith(RULES_SUFFIX)),
        key=lambda found: found[0].relative_to(root).as_posix(),
    )
    seen: set[tuple[int, int]] = set()
    files = []
    for path, identity in found:  # a file two links reach counts once, by the first of them
        if identity not in seen:
            seen.add(identity)
            if is_test_file(path) == tests:
                files.append(path)
    return files


def _visible_files(
    folder: Path, ancestors: frozenset[tuple[int, int]] = frozenset()
) -> Iterator[tuple[Path, tuple[int, int]]]:
    """Every file under ``folder`` with its (device, inode), through symlinks, hidden entries skipped.

    A symlink to a folder is followed unless it leads back to one being walked.
    """
    try:
        folder_stat = folder.stat()
        entries = list(os.scandir(folder))
    except OSError:  # vanished or unreadable mid-walk: reading the files reports it
        return
    ancestors = ancestors | {(folder_stat.st_dev, folder_stat.st_ino)}
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            stat = entry.stat()  # follows a symlink; a dangling one raises
        except OSError:
            continue
        path = folder / entry.name
        if entry.is_dir():
            if (stat.st_dev, stat.st_ino) not in ancestors:
                yield from _visible_files(path, ancestors)
        elif entry.is_file():
            yield path, (stat.st_dev, stat.st_ino)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: Path
    module: ast.Module
    diagnostics: tuple[Diagnostic, ...]
    digest: str
    text: str = ""  # the source: a served ruleset keeps it to rebuild its checked program on demand


class ParseCache:
    """Parsed modules by (file name, SHA-256 of the text); a bounded LRU."""

    def __init__(self, capacity: int = 4096):
        self._entries: OrderedDict[tuple[str, str], tuple[ast.Module, tuple[Diagnostic, ...]]] = OrderedDict()
        self.capacity = capacity
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def parse(self, name: str, text: str) -> tuple[ast.Module, tuple[Diagnostic, ...], str]:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        key = (name, digest)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[0], entry[1], digest
        module, problems = parse_source(Source(name, text))
        with self._lock:
            self.misses += 1
            self._entries[key] = (module, tuple(problems))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return module, tuple(problems), digest


_DEFAULT_CACHE = ParseCache()


def display_name(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


EMPTY_FILE = "the file is empty; delete a file to remove its rules"


def read_file(path: Path, cache: ParseCache | None = None, *, named: Path | None = None) -> ParsedFile:
    """Read and parse one file; a file that cannot be read, is not UTF-8 or is empty is an error.

    An empty file is usually one caught mid-save (truncated, not yet
    written): compiled as "no rules", it would take its slots off the air.
    ``named``: where the file stands in messages and versions when ``path`` is
    a copy of it (a git revision's file, read into a temporary directory).
    """
    cache = cache or _DEFAULT_CACHE
    shown = named if named is not None else path
    name = display_name(shown)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = error(f"this file is not UTF-8 text ({exc.reason} at byte {exc.start})", None, file_name=name)
        return ParsedFile(shown, ast.Module((), name), (problem,), "")
    except OSError as exc:
        problem = error(f"cannot read this file: {exc.strerror}", None, file_name=name)
        return ParsedFile(shown, ast.Module((), name), (problem,), "")
    if not text.strip():
        return ParsedFile(shown, ast.Module((), name), (error(EMPTY_FILE, None, file_name=name),), "")
    module, problems, digest = cache.parse(name, text)
    return ParsedFile(shown, module, problems, digest, text)


def read_ruleset(root: Path, cache: ParseCache | None = None) -> list[ParsedFile]:
    return [read_file(path, cache) for path in rules_files(root)]


def ruleset_name(root: Path) -> str:
    """A ruleset's name when its files declare none: the file's stem, or the directory's name."""
    if root.is_file():
        return root.name.removesuffix(RULES_SUFFIX) if root.name.endswith(RULES_SUFFIX) else root.stem
    return root.resolve().name
