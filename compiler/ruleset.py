"""A compiled ruleset: what ``tailor.load`` and ``tailor.loads`` return."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    name: str
    version: str  # a hash of the sources: equal sources, equal version
    program: Program
    plan: DecisionPlan
    compiled: CompiledPlan
    files: tuple[str, ...]
    warnings: tuple[Diagnostic, ...] = ()
    models: dict[str, Any] = field(default_factory=dict)  # name -> a loaded model (predict_one, version)

    @property
    def rules(self) -> tuple[RuleInfo, ...]:
        return tuple(
            RuleInfo(r.name, r.slot, r.priority, r.decl.content.name, _file(r.decl), _line(r.decl))
            for r in self.program.rules
        )

    @property
    def slots(self) -> tuple[str, ...]:
        return self.program.slots

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
        return cls(program.name, version, program, plan, compiled, files, models=dict(models or {}))

    def payload(self, content: str) -> dict[str, Any] | None:
        decl = self.program.contents.get(content)
        return decl.payload if decl is not None else None


def _file(node: Any) -> str:
    return node.span.file if node.span is not None else ""


def _line(node: Any) -> int:
    return node.span.line if node.span is not None else 0


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
    filename = filename or f"{name}{RULES_SUFFIX}"
    module, problems = parse_source(Source(filename, text))
    digest = hashlib.sha256(text.encode()).hexdigest()
    parsed = ParsedFile(Path(filename), module, tuple(problems), digest)
    compilation = compile_ruleset([parsed], name=name, stats=stats)
    raise_on_errors(compilation.diagnostics)
    return Ruleset.of(compilation, source_version([parsed]), (filename,))


def raise_on_errors(diagnostics: list[Diagnostic]) -> None:
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise RulesError(errors)
