"""Loading a ruleset from disk together with the model files it declares.

The compiler reads only rules; model files are the runtime's: each is read
with ONNX Runtime, its declared input features compiled in the ruleset's
namespace, and any problem reported as a diagnostic on the ``model`` line.
A ruleset's version covers its models, so a retrained model is a new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailor.compiler.check import Program
from tailor.compiler.frontend import read_and_check
from tailor.compiler.models import ModelInput, compile_inputs
from tailor.compiler.plan import PredicateStats
from tailor.compiler.ruleset import Ruleset, compile_program, raise_on_errors, source_version
from tailor.dsl.diagnostics import Diagnostic, error
from tailor.dsl.loader import ParseCache, display_name
from tailor.dsl.parser import collector_paused


def load(path: str | Path, *, stats: PredicateStats | Path | None = None, cache: ParseCache | None = None) -> Ruleset:
    """Read, check and compile the ruleset at ``path`` with its models; raise ``RulesError`` on errors."""
    if isinstance(stats, Path):
        stats = PredicateStats.load(stats)
    with collector_paused():
        files, program, diagnostics = read_and_check(Path(path), cache)
    raise_on_errors(diagnostics)
    assert program is not None
    models, inputs, problems = read_models(program)
    raise_on_errors(problems)
    version = source_version([*files, *((f"model:{n}", m.version) for n, m in sorted(models.items()))])
    names = tuple(display_name(f.path) for f in files)
    return compile_program(program, version, names, stats, inputs, models)


def read_models(program: Program) -> tuple[dict[str, Any], dict[str, tuple[ModelInput, ...]], list[Diagnostic]]:
    """Every declared model file, read and validated; problems are reported on the model lines."""
    from .onnx_models import ModelError, read_model  # onnxruntime loads only when a ruleset has models

    models: dict[str, Any] = {}
    inputs: dict[str, tuple[ModelInput, ...]] = {}
    problems: list[Diagnostic] = []
    for name, decl in program.models.items():
        model_path = model_file(decl.span.file if decl.span else ".", decl.path.value)
        try:
            model = read_model(name, model_path)
        except ModelError as exc:
            problems.append(
                error(f"model {name}: {exc.message}", decl.span, hint=exc.hint, code="model", file_name=str(model_path))
            )
            continue
        inputs[name], found = compile_inputs(program, name, model.features, decl.span)
        problems.extend(found)
        models[name] = model
    return models, inputs, problems


def check_models(path: str | Path) -> list[Diagnostic]:
    """The model files of a ruleset that otherwise checks clean: for ``tailor lint``."""
    _files, program, diagnostics = read_and_check(Path(path))
    if program is None or any(d.severity.value == "error" for d in diagnostics):
        return []
    return read_models(program)[2]


def model_file(declaring_file: str, relative: str) -> Path:
    """A model's path is relative to the file that declares it."""
    return Path(declaring_file).parent / relative
