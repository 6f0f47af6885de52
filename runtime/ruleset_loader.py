"""A ruleset on disk, with the model files it declares, through the compiler pipeline.

The compiler reads only rules; model files are the runtime's. The model
declarations are read off the parsed files, each declared file is read with
ONNX Runtime, and the feature lists the files carry go to the pipeline's
``model_inputs`` stage as data. A problem with a file is a diagnostic on its
``model`` line. A ruleset's version covers its models, so a retrained model
is a new version. Model files are read within ``ModelLimits``, so a path to a
FIFO, a device or a stuck mount is an error on its line, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor.compiler.check import Program
from tailor.compiler.file_cache import FileCache
from tailor.compiler.lint import DEFAULT_RETENTION, lint
from tailor.compiler.pipeline import STAGE_NAMES, Compilation, compile_ruleset, resume
from tailor.compiler.plan import PredicateStats
from tailor.compiler.ruleset import Ruleset, raise_on_errors, source_version
from tailor.dsl.collector import collector_paused
from tailor.dsl.diagnostics import Diagnostic, RulesError, error, sorted_unique
from tailor.dsl.loader import ParseCache, ParsedFile, display_name, read_ruleset, rules_files, ruleset_name

from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits


@dataclass(slots=True)
class LoadedRuleset:
    """A compilation of the files at a path, with the model files it read and their problems."""

    path: Path
    files: list[ParsedFile]
    compilation: Compilation
    models: dict[str, Any] = field(default_factory=dict)  # name -> a loaded model (predict_one, version)
    model_files: tuple[Path, ...] | None = None  # every model file declared; None when the rules did not check

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.compilation.diagnostics

    def version(self) -> str:
        models = ((f"model:{n}", m.version) for n, m in sorted(self.models.items()))
        return source_version([*self.files, *models])

    def ruleset(self) -> Ruleset:
        """The compiled ruleset; raises ``RulesError`` on errors."""
        raise_on_errors(self.diagnostics)
        names = tuple(display_name(f.path) for f in self.files)
        return Ruleset.of(self.compilation, self.version(), names, self.models)


def compile_path(
    path: str | Path,
    *,
    stats: PredicateStats | None = None,
    cache: ParseCache | None = None,
    models: bool = True,
    until: str = STAGE_NAMES[-1],
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
    file_cache: FileCache | None = None,
) -> LoadedRuleset:
    """Read the ruleset at ``path`` and compile it up to ``until``.

    With ``models``, once the rules check, the model files their program
    declares are read (within ``model_limits``) and their feature lists
    handed to the pipeline.
    """
    root = Path(path)
    if not root.exists():
        return _unreadable(root, [], "no such file or directory")
    started = time.perf_counter()
    files = read_ruleset(root, cache)
    parsed = time.perf_counter() - started
    return compile_files(
        root,
        files,
        ruleset_name(root),
        parsed,
        stats=stats,
        models=models,
        until=until,
        model_limits=model_limits,
        file_cache=file_cache,
    )


def compile_files(
    root: Path,
    files: list[ParsedFile],
    name: str,
    parsed: float = 0.0,
    *,
    stats: PredicateStats | None = None,
    models: bool = True,
    until: str = STAGE_NAMES[-1],
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
    locate: Callable[[Path], Path] | None = None,
    file_cache: FileCache | None = None,
) -> LoadedRuleset:
    """``compile_path`` on files already parsed (``parsed``: the seconds that took).

    ``locate`` maps a declared model file to where its bytes are, when the
    files were read from elsewhere than they are named (a git revision).
    """
    if not files:
        return _unreadable(root, files, "no .rules files here")
    compilation = compile_ruleset(files, name=name, stats=stats, until="check", file_cache=file_cache)
    compilation.timings = {"parse": parsed, **compilation.timings}
    loaded: dict[str, Any] = {}
    program = compilation.program if compilation.ok else None
    declared = tuple(declared_model_files(program).values()) if program is not None else None
    if models and program is not None and program.models:
        started = time.perf_counter()
        loaded, problems = read_models(program, model_limits, locate)
        compilation.timings["read models"] = time.perf_counter() - started
        features = {name: model.features for name, model in loaded.items()}
        compilation = resume(compilation, until=until, model_features=features)
        # The rules compile without the unreadable models' inputs, so lint still sees the plan.
        compilation.diagnostics = sorted_unique([*compilation.diagnostics, *problems])
        return LoadedRuleset(root, files, compilation, loaded, declared)
    return LoadedRuleset(root, files, resume(compilation, until=until), loaded, declared)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A compile's outcome as a server takes it: the ruleset or the errors, and the model files to watch.

    What hot reload's compile worker hands back to the server (pickled), and
    what the server's own first load produces.
    """

    ruleset: Ruleset | None  # None: the errors say why
    errors: tuple[Diagnostic, ...] = ()
    model_files: tuple[Path, ...] | None = None  # every model file declared; None when the rules did not check


def prepare(
    path: Path,
    *,
    stats: PredicateStats | None = None,
    cache: ParseCache | None = None,
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
    file_cache: FileCache | None = None,
) -> Prepared:
    """Compile the ruleset at ``path`` to serve it; a file that vanished mid-read is an error, not an exception."""
    model_files = None
    try:
        loaded = compile_path(path, stats=stats, cache=cache, model_limits=model_limits, file_cache=file_cache)
        model_files = loaded.model_files
        return Prepared(loaded.ruleset(), model_files=model_files)
    except RulesError as exc:
        return Prepared(None, tuple(exc.diagnostics), model_files)
    except (OSError, ValueError) as exc:  # a file vanished mid-read, an unreadable directory
        problem = error(f"cannot load the ruleset: {exc}", None, file_name=display_name(path))
        return Prepared(None, (problem,), model_files)


def sized_cache(cache: ParseCache | None, path: Path) -> ParseCache:
    """``cache``, or a new one when the ruleset's size asks for another capacity: room for each file's
    current and previous text, so an edited file hits and old versions of it do not pile up."""
    capacity = 2 * len(rules_files(path)) + 2 if path.exists() else 2
    if cache is None or cache.capacity != capacity:
        return ParseCache(capacity)
    return cache


def _unreadable(root: Path, files: list[ParsedFile], message: str) -> LoadedRuleset:
    compilation = Compilation(root.name, tuple(files))
    compilation.diagnostics.append(error(message, None, file_name=display_name(root)))
    return LoadedRuleset(root, files, compilation)


def load(
    path: str | Path,
    *,
    stats: PredicateStats | Path | None = None,
    cache: ParseCache | None = None,
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
) -> Ruleset:
    """Read, check and compile the ruleset at ``path`` with its models; raise ``RulesError`` on errors."""
    if isinstance(stats, Path):
        stats = PredicateStats.load(stats)
    return compile_path(path, stats=stats, cache=cache, model_limits=model_limits).ruleset()


def lint_path(
    path: str | Path,
    *,
    retention: float = DEFAULT_RETENTION,
    cache: ParseCache | None = None,
    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
) -> list[Diagnostic]:
    """Errors (model files included), then, for a ruleset without errors, the lint analyses' warnings."""
    return lint_loaded(compile_path(path, cache=cache, until="plan", model_limits=model_limits), retention)


def lint_loaded(loaded: LoadedRuleset, retention: float = DEFAULT_RETENTION) -> list[Diagnostic]:
    """``lint_path`` on a ruleset already compiled up to its plan."""
    compilation = loaded.compilation
    if compilation.plan is None:  # the rules have errors (an unreadable model file alone does not stop the plan)
        return compilation.diagnostics
    with collector_paused():  # as the pipeline does: the analyses allocate much and free little, and so does sorting
        return sorted_unique([*compilation.diagnostics, *lint(compilation.plan, retention)])


def read_models(
    program: Program, limits: ModelLimits = DEFAULT_MODEL_LIMITS, locate: Callable[[Path], Path] | None = None
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Every model file a checked program declares, read and validated; problems on the model lines."""
    from .onnx_models import ModelError, read_model  # onnxruntime loads only when a ruleset has models

    models: dict[str, Any] = {}
    problems: list[Diagnostic] = []
    paths = declared_model_files(program)
    for name, decl in program.models.items():
        model_path = paths[name]
        try:
            models[name] = read_model(name, locate(model_path) if locate is not None else model_path, limits)
        except ModelError as exc:
            problems.append(
                error(f"model {name}: {exc.message}", decl.span, hint=exc.hint, code="model", file_name=str(model_path))
            )
    return models, problems


def declared_model_files(program: Program) -> dict[str, Path]:
    """Each declared model's file, by model name."""
    return {
        name: model_file(decl.span.file if decl.span else ".", decl.path.value) for name, decl in program.models.items()
    }


def model_file(declaring_file: str, relative: str) -> Path:
    """A model's path is relative to the file that declares it."""
    return Path(declaring_file).parent / relative
