"""A served ruleset's checked program, kept as its source text and rebuilt when asked for.

The checked program (every declaration's syntax tree, with spans) is most of
what a compiled ruleset would hold, yet serving never reads it: decisions and
explanations read the plan. Diffs, tests and listings read it rarely. So a
served ruleset keeps each file's text (a few percent of the trees' size) and
parses and checks it again on demand. The rebuilt program is the one the
compile checked: the same texts, names and order give the same trees and
spans. It is cached weakly, so callers that read it in a burst share one
copy, and the memory goes back once they are done.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from tailor.dsl.collector import collector_paused
from tailor.dsl.loader import ParsedFile
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source

from .check import Program, check


@dataclass(frozen=True, slots=True, eq=False)
class ProgramSource:
    """What rebuilds a checked program: the ruleset's default name and each file's (name, text), in path order."""

    name: str
    files: tuple[tuple[str, str], ...]
    _cached: list[Any] = field(default_factory=list, repr=False)  # at most one weak reference to the program
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, name: str, files: tuple[ParsedFile, ...]) -> ProgramSource:
        return cls(name, tuple((parsed.module.name, parsed.text) for parsed in files))

    def program(self) -> Program:
        """The checked program: the cached one while someone holds it, else parsed and checked again."""
        with self._lock:
            program = self._cached[0]() if self._cached else None
            if program is None:
                program = self._rebuild()
                self._cached[:] = [weakref.ref(program)]
            return program

    def _rebuild(self) -> Program:
        with collector_paused():
            modules = [parse_source(Source(name, text))[0] for name, text in self.files]
            program, _ = check(modules, self.name)
        return program

    def __reduce__(self) -> tuple[Any, ...]:
        return ProgramSource, (self.name, self.files)
