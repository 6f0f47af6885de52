"""A ruleset as a git revision holds it: ``git:REV:PATH``, read with git, never by checking it out.

``git:HEAD~1:rulesets/retail`` is the directory ``rulesets/retail`` (relative
to the repository's top, or to the working directory when it starts with
``./``, as ``git show`` reads it) at ``HEAD~1``. Its files (rules and the
model files beside them) are read with ``git archive`` into a temporary
directory, which the working tree never sees, and compiled under the names
the working tree gives them: the same bytes at the same path are the same
version, whichever revision they come from, so a log served from the working
tree is recognised as the version that served it.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from tailor.compiler.ruleset import Ruleset
from tailor.dsl.diagnostics import RulesError, error
from tailor.dsl.loader import RULES_SUFFIX, read_file, rules_files

from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits
from .ruleset_loader import compile_files

PREFIX = "git:"
GIT_TIMEOUT = 60.0  # seconds one git command may take


class RevisionError(ValueError):
    """The revision or the path in it cannot be read (said plainly, for the command line)."""


def is_revision(spec: str) -> bool:
    return spec.startswith(PREFIX)


def split(spec: str) -> tuple[str, str]:
    """``git:REV:PATH`` as (REV, PATH)."""
    rev, colon, path = spec.removeprefix(PREFIX).partition(":")
    if not rev or not colon or not path:
        raise RevisionError(f"{spec}: a git revision is written git:REV:PATH, e.g. git:HEAD~1:rulesets/retail")
    return rev, path


def load_revision(spec: str, *, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> Ruleset:
    """The ruleset at ``git:REV:PATH``; ``RevisionError`` when git cannot read it, ``RulesError`` when it does
    not compile."""
    rev, path = split(spec)
    top = Path(_git("rev-parse", "--show-toplevel").decode().strip())
    inside = _inside(path)
    kind = _git("cat-file", "-t", f"{rev}:{inside}", what=f"{inside} at {rev}", cwd=top).decode().strip()
    named_root = top / inside
    with tempfile.TemporaryDirectory(prefix="tailor-revision-") as scratch:
        copy = Path(scratch) / "rules" / PurePosixPath(inside).name
        copy.parent.mkdir()
        if kind == "tree":
            copy.mkdir()
            archive = _git("archive", "--format=tar", f"{rev}:{inside}", what=f"{inside} at {rev}", cwd=top)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(copy, filter="data")
            files = [read_file(file, named=named_root / file.relative_to(copy)) for file in rules_files(copy)]
            name = named_root.name
        elif kind == "blob" and inside.endswith(RULES_SUFFIX):
            copy.write_bytes(_git("cat-file", "blob", f"{rev}:{inside}", cwd=top))
            files = [read_file(copy, named=named_root)]
            name = named_root.name.removesuffix(RULES_SUFFIX)
        else:
            raise RevisionError(f"{spec}: not a directory or a {RULES_SUFFIX} file at {rev}")
        if not files:
            raise RulesError([error(f"no {RULES_SUFFIX} files in {inside} at {rev}", None, file_name=spec)])

        def locate(model: Path) -> Path:
            """A model file, named as in the working tree, read as the revision holds it."""
            try:
                relative = model.resolve().relative_to(top.resolve()).as_posix()
            except ValueError:
                raise RevisionError(f"model file {model} is outside the repository") from None
            target = Path(scratch) / "models" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git("cat-file", "blob", f"{rev}:{relative}", what=f"{relative} at {rev}", cwd=top))
            return target

        loaded = compile_files(named_root, files, name, model_limits=model_limits, locate=locate)
        return loaded.ruleset()


def _inside(path: str) -> str:
    """PATH relative to the repository's top: as given, or from the working directory for ``./``."""
    if path.startswith("./") or path.startswith("../") or path == ".":
        prefix = _git("rev-parse", "--show-prefix").decode().strip()
        return os.path.normpath(os.path.join(prefix, path)).replace(os.sep, "/")
    return path.strip("/")


def _git(*args: str, what: str | None = None, cwd: Path | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=GIT_TIMEOUT, check=False, cwd=cwd)
    except FileNotFoundError:
        raise RevisionError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise RevisionError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else f"git {args[0]} failed"
        raise RevisionError(f"cannot read {what}: {reason}" if what else reason)
    return done.stdout
