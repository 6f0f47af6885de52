"""The compiler pipeline: parsed files in, a staged decision plan out.

The stages are data, in order. Each is one small module's public function,
and each stage's product is kept on the ``Compilation`` so that it can be
printed (``tailor compile --emit STAGE``), tested or consumed on its own:

    check          compiler/check.py          names resolve, types agree      -> Program
    normalize      compiler/normalize.py      conditions in normal form, DNF  -> NormalProgram
    model_inputs   compiler/model_inputs.py   model feature texts compiled    -> ModelInputs
    plan           compiler/plan.py           bits, predicate tables, stages  -> DecisionPlan
    generate       compiler/codegen.py        the plan as Python source       -> CompiledPlan

Every entry point (``tailor.loads``, ``tailor.load``, ``tailor lint``,
``tailor test``, ``tailor train``, the server's reloads) compiles through
``compile_ruleset``. Diagnostics accumulate in one list; the pipeline stops
after the first stage that reports an error, so later stages only ever see
a valid product. Parsing happens before (dsl/), and model files are read by
the runtime, which hands over their feature lists as data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailor.dsl.collector import collector_paused
from tailor.dsl.diagnostics import Diagnostic, Severity, sorted_unique
from tailor.dsl.loader import ParsedFile

from .check import Program, check
from .codegen import CompiledPlan, generate
from .file_cache import FileCache, FileKey
from .model_inputs import ModelInputs, compile_model_inputs
from .normalize import NormalProgram, normalize
from .plan import DecisionPlan, PredicateStats, build_plan


@dataclass(slots=True)
class Compilation:
    """Every stage's product so far, the diagnostics gathered, and what each stage took."""

    name: str
    files: tuple[ParsedFile, ...]
    model_features: Mapping[str, Sequence[str]] = field(default_factory=dict)
    stats: PredicateStats | None = None
    file_cache: FileCache | None = None  # the files' checks and normal forms from earlier compiles
    program: Program | None = None
    normal: NormalProgram | None = None
    model_inputs: ModelInputs | None = None
    plan: DecisionPlan | None = None
    compiled: CompiledPlan | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    completed: tuple[str, ...] = ()  # the stages that ran, in order

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)

    def product(self, stage: str) -> Any:
        """The output of ``stage`` (None when it did not run)."""
        return getattr(self, PRODUCTS[stage])


def _check(c: Compilation) -> list[Diagnostic]:
    checks = c.file_cache.check if c.file_cache is not None else None
    c.program, found = check([f.module for f in c.files], c.name, checks, _keys(c))
    return [*(d for f in c.files for d in f.diagnostics), *found]


def _keys(c: Compilation) -> list[FileKey]:
    return [(f.module.name, f.digest) for f in c.files]


def _normalize(c: Compilation) -> list[Diagnostic]:
    c.normal = normalize(c.program, c.file_cache.normal if c.file_cache is not None else None, _keys(c))
    return []


def _model_inputs(c: Compilation) -> list[Diagnostic]:
    c.model_inputs, found = compile_model_inputs(c.program, c.model_features)
    return found


def _plan(c: Compilation) -> list[Diagnostic]:
    c.plan = build_plan(c.normal, c.stats, c.model_inputs)
    return []


def _generate(c: Compilation) -> list[Diagnostic]:
    c.compiled = generate(c.plan)
    return []


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    run: Callable[[Compilation], list[Diagnostic]]  # fills its product in, returns what it found
    product: str  # the Compilation field it fills


STAGES: tuple[Stage, ...] = (
    Stage("check", _check, "program"),
    Stage("normalize", _normalize, "normal"),
    Stage("model_inputs", _model_inputs, "model_inputs"),
    Stage("plan", _plan, "plan"),
    Stage("generate", _generate, "compiled"),
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
PRODUCTS: dict[str, str] = {stage.name: stage.product for stage in STAGES}


def compile_ruleset(
    files: Sequence[ParsedFile],
    *,
    name: str = "ruleset",
    model_features: Mapping[str, Sequence[str]] | None = None,
    stats: PredicateStats | None = None,
    until: str = STAGE_NAMES[-1],
    file_cache: FileCache | None = None,
) -> Compilation:
    """Run the stages over parsed ``files`` up to and including ``until``.

    ``name`` is the ruleset's name when no file declares one. ``model_features``
    maps each model to the feature texts its file lists (none: no model inputs).
    Stops after the first stage that reports an error. ``file_cache`` spares
    checking and normalizing again the files that did not change since the last compile through it.
    """
    compilation = Compilation(name, tuple(files), dict(model_features or {}), stats, file_cache=file_cache)
    return resume(compilation, until=until)


def resume(
    compilation: Compilation, *, until: str = STAGE_NAMES[-1], model_features: Mapping[str, Sequence[str]] | None = None
) -> Compilation:
    """Run the stages that have not run yet, up to and including ``until``.

    The runtime checks a ruleset first, reads the model files its program
    declares, then resumes with their feature lists.
    """
    if until not in PRODUCTS:
        raise ValueError(f"no compiler stage {until!r}; the stages are {', '.join(STAGE_NAMES)}")
    if model_features is not None:
        if "model_inputs" in compilation.completed:
            raise ValueError("model features must be given before the model_inputs stage runs")
        compilation.model_features = dict(model_features)
    if not compilation.ok or until in compilation.completed:
        return compilation
    with collector_paused():  # the stages allocate many long-lived objects and free few
        for stage in STAGES[len(compilation.completed) :]:
            started = time.perf_counter()
            found = stage.run(compilation)
            compilation.timings[stage.name] = time.perf_counter() - started
            compilation.completed += (stage.name,)
            if found:
                compilation.diagnostics = sorted_unique([*compilation.diagnostics, *found])
            if not compilation.ok or stage.name == until:
                break
    return compilation
