"""Finding and reading ``.rules`` files, with a parse cache keyed by content.

A ruleset is one file or a directory of ``*.rules`` files (recursively), in
path order; ``*_test.rules`` files hold rule tests and are never part of it.
Hot reload re-reads every file but re-parses only those whose bytes changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
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
    found = [p for p in root.rglob("*" + RULES_SUFFIX) if p.is_file() and is_test_file(p) == tests]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: Path
    module: ast.Module
    diagnostics: tuple[Diagnostic, ...]
    digest: str


class ParseCache:
    """Parsed modules by (file name, SHA-256 of the text); a bounded LRU."""

    def __init__(self, capacity: int = 4096):
        self._entries: OrderedDict[tuple[str, str], tuple[ast.Module, tuple[Diagnostic, ...]]] = OrderedDict()
        self._capacity = capacity
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
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return module, tuple(problems), digest


_DEFAULT_CACHE = ParseCache()


def display_name(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_file(path: Path, cache: ParseCache | None = None) -> ParsedFile:
    cache = cache or _DEFAULT_CACHE
    name = display_name(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = error(f"this file is not UTF-8 text ({exc.reason} at byte {exc.start})", None, file_name=name)
        return ParsedFile(path, ast.Module((), name), (problem,), "")
    except OSError as exc:
        problem = error(f"cannot read this file: {exc.strerror}", None, file_name=name)
        return ParsedFile(path, ast.Module((), name), (problem,), "")
    module, problems, digest = cache.parse(name, text)
    return ParsedFile(path, module, problems, digest)


def read_ruleset(root: Path, cache: ParseCache | None = None) -> list[ParsedFile]:
    return [read_file(path, cache) for path in rules_files(root)]


def ruleset_name(root: Path) -> str:
    """A ruleset's name when its files declare none: the file's stem, or the directory's name."""
    if root.is_file():
        return root.name.removesuffix(RULES_SUFFIX) if root.name.endswith(RULES_SUFFIX) else root.stem
    return root.resolve().name
