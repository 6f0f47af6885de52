"""A scratch version of the served rules: the live files with one of them replaced by text from the console.

The playground lints it, decides with it and replays logged traffic through
it without serving it. The scratch text stands where the file it replaces
stands, so its model files and its references to the other files resolve as
they do for the live version; a name that is no file of the ruleset adds a
file beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailor.compiler.lint import DEFAULT_RETENTION
from tailor.compiler.pipeline import STAGE_NAMES
from tailor.compiler.ruleset import Ruleset
from tailor.dsl import ast
from tailor.dsl.diagnostics import Diagnostic, error
from tailor.dsl.loader import (
    EMPTY_FILE,
    RULES_SUFFIX,
    ParseCache,
    ParsedFile,
    display_name,
    read_ruleset,
    ruleset_name,
)

from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits
from .ruleset_loader import LoadedRuleset, compile_files, lint_loaded

SCRATCH_FILE = "scratch.rules"  # the file a text names when it names none
MAX_SCRATCH_TEXT = 256 * 1024  # characters: a rules file, not a data dump


@dataclass(frozen=True, slots=True)
class Scratch:
    """Rules text to try, and the file of the served ruleset it stands for."""

    text: str
    file: str = SCRATCH_FILE  # relative to the ruleset's root

    def files(self, root: Path, cache: ParseCache | None = None) -> list[ParsedFile]:
        """The served files with ``file`` replaced by the text (or the text added as that file)."""
        directory = root if root.is_dir() else root.parent
        target = (directory / self.file).resolve()
        if directory.resolve() not in target.parents or not self.file.endswith(RULES_SUFFIX):
            raise ValueError(f"{self.file!r} is not a .rules file inside the ruleset")
        live = read_ruleset(root, cache) if root.exists() else []
        kept = [parsed for parsed in live if Path(parsed.path).resolve() != target]
        return [*kept, self._parsed(directory / self.file, cache)]

    def _parsed(self, path: Path, cache: ParseCache | None) -> ParsedFile:
        name = display_name(path)
        if not self.text.strip():
            return ParsedFile(path, ast.Module((), name), (error(EMPTY_FILE, None, file_name=name),), "")
        module, problems, digest = (cache or ParseCache(2)).parse(name, self.text)
        return ParsedFile(path, module, problems, digest)

    def compile(
        self, root: Path, *, until: str = "plan", model_limits: ModelLimits = DEFAULT_MODEL_LIMITS
    ) -> LoadedRuleset:
        directory = root if root.is_dir() else root.parent
        return compile_files(directory, self.files(root), ruleset_name(root), until=until, model_limits=model_limits)

    def lint(
        self, root: Path, *, retention: float = DEFAULT_RETENTION, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS
    ) -> list[Diagnostic]:
        """What ``tailor lint`` says of the ruleset with the scratch text in it."""
        return lint_loaded(self.compile(root, model_limits=model_limits), retention)

    def ruleset(self, root: Path, *, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> Ruleset:
        """The scratch version compiled to decide with; ``RulesError`` on errors."""
        return self.compile(root, until=STAGE_NAMES[-1], model_limits=model_limits).ruleset()
