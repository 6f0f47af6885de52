"""A compiled ruleset: what ``tailor.load`` and ``tailor.loads`` return."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path
from typing import Any

from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity
from tailor.dsl.loader import RULES_SUFFIX, ParsedFile
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source

from .check import Program
from .codegen import CompiledPlan
from .pipeline import Compilation, compile_ruleset
from .plan import DecisionPlan, PredicateStats
from .program_source import ProgramSource


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One rule as ``GET /v1/ruleset`` lists it."""

    name: str
    slot: str
    priority: int
    content: str
    file: str
    line: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slot": self.slot,
            "priority": self.priority,
            "content": self.content,
            "file": self.file,
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleInfo:
        return cls(data["name"], data["slot"], data["priority"], data["content"], data["file"], data["line"])


@dataclass(frozen=True, slots=True, eq=False)
class Ruleset:
    """What a server serves: the plan and its code, the content payloads, and the source the program comes from.

    The checked program is not held (its syntax trees were most of a compiled
    ruleset's memory); ``program`` rebuilds it from the source when asked.
    """

    name: str
    version: str  # a hash of the sources: equal sources, equal version
    source: ProgramSource
    plan: DecisionPlan  # its ``program`` is None: see ``program``
    compiled: CompiledPlan
    files: tuple[str, ...]
    payloads: dict[str, dict[str, Any]]  # content name -> its JSON object
    warnings: tuple[Diagnostic, ...] = ()
    models: dict[str, Any] = field(default_factory=dict)  # name -> a loaded model (predict_one, version)

    @property
    def program(self) -> Program:
        """The checked program, rebuilt from the source (some 70 ms per 1,000 rules) unless still held."""
        return self.source.program()

    @property
    def rules(self) -> tuple[RuleInfo, ...]:
        """Every rule in ruleset order (files in path order, then source order)."""
        return tuple(
            RuleInfo(r.name, r.slot, r.priority, r.content, r.file, r.line)
            for r in sorted(self.plan.rules, key=attrgetter("order"))
        )

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(self.plan.slots)

    @classmethod
    def of(
        cls,
        compilation: Compilation,
        version: str,
        files: tuple[str, ...] = (),
        models: Mapping[str, Any] | None = None,
    ) -> Ruleset:
        """A complete compilation as a ruleset to serve; ``models`` are the loaded model files."""
        program, plan, compiled = compilation.program, compilation.plan, compilation.compiled
        if program is None or plan is None or compiled is None:
            raise ValueError("the compilation did not complete: " + ", ".join(compilation.completed))
        return cls(
            program.name,
            version,
            ProgramSource.of(program.name, compilation.files),
            replace(plan, program=None),
            compiled,
            files,
            {name: decl.payload for name, decl in program.contents.items()},
            models=dict(models or {}),
        )

    def payload(self, content: str) -> dict[str, Any] | None:
        return self.payloads.get(content)


def source_version(files: Sequence[ParsedFile | tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for entry in files:
        name, content = (entry.module.name, entry.digest) if isinstance(entry, ParsedFile) else entry
        digest.update(name.encode() + b"\0" + content.encode() + b"\0")
    return digest.hexdigest()[:16]


def loads(
    text: str, name: str = "ruleset", *, filename: str | None = None, stats: PredicateStats | None = None
) -> Ruleset:
    """Check and compile one file's text; raise ``RulesError`` on errors.

    ``name`` is the ruleset's name when the text declares none; a name ending
    in ``.rules`` is the file's name, and the ruleset is named after its stem.
    """
    if name.endswith(RULES_SUFFIX):
        filename = filename or name
        name = name.removesuffix(RULES_SUFFIX)
    return _compiled(text, name, filename or f"{name}{RULES_SUFFIX}", stats)


def _compiled(text: str, name: str, filename: str, stats: PredicateStats | None) -> Ruleset:
    """``loads``'s compile; everything it made but the ruleset is freed when it returns."""
    module, problems = parse_source(Source(filename, text))
    digest = hashlib.sha256(text.encode()).hexdigest()
    parsed = ParsedFile(Path(filename), module, tuple(problems), digest, text)
    compilation = compile_ruleset([parsed], name=name, stats=stats)
    raise_on_errors(compilation.diagnostics)
    return Ruleset.of(compilation, source_version([parsed]), (filename,))


def raise_on_errors(diagnostics: list[Diagnostic]) -> None:
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise RulesError(errors)
