"""A compiled ruleset: what ``tailor.load`` and ``tailor.loads`` return."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity
from tailor.dsl.loader import ParsedFile
from tailor.dsl.parser import collector_paused, parse_source
from tailor.dsl.source import Source

from .check import Program
from .codegen import CompiledPlan, generate
from .frontend import check_files
from .models import ModelInput
from .plan import DecisionPlan, PredicateStats, build_plan


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

    def payload(self, content: str) -> dict[str, Any] | None:
        decl = self.program.contents.get(content)
        return decl.payload if decl is not None else None


def _file(node: Any) -> str:
    return node.span.file if node.span is not None else ""


def _line(node: Any) -> int:
    return node.span.line if node.span is not None else 0


def compile_program(
    program: Program,
    version: str,
    files: tuple[str, ...] = (),
    stats: PredicateStats | None = None,
    model_inputs: Mapping[str, tuple[ModelInput, ...]] | None = None,
    models: Mapping[str, Any] | None = None,
) -> Ruleset:
    """``models`` are the loaded model files (the runtime reads them); ``model_inputs`` what each reads."""
    with collector_paused():
        plan = build_plan(program, stats, model_inputs)
        return Ruleset(program.name, version, program, plan, generate(plan), files, models=dict(models or {}))


def source_version(files: Sequence[ParsedFile | tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for entry in files:
        name, content = (entry.module.name, entry.digest) if isinstance(entry, ParsedFile) else entry
        digest.update(name.encode() + b"\0" + content.encode() + b"\0")
    return digest.hexdigest()[:16]


def loads(
    text: str, name: str = "ruleset", *, filename: str | None = None, stats: PredicateStats | None = None
) -> Ruleset:
    """Check and compile one file's text; raise ``RulesError`` on errors."""
    filename = filename or f"{name}.rules"
    module, problems = parse_source(Source(filename, text))
    digest = hashlib.sha256(text.encode()).hexdigest()
    parsed = ParsedFile(Path(filename), module, tuple(problems), digest)
    with collector_paused():
        program, diagnostics = check_files([parsed], name)
    raise_on_errors(diagnostics)
    return compile_program(program, source_version([parsed]), (filename,), stats)


def raise_on_errors(diagnostics: list[Diagnostic]) -> None:
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise RulesError(errors)
