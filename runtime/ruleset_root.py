"""File names as a server shows them: relative to the ruleset's root, never absolute.

The compiler names files as the command line does: relative to the working
directory when inside it, else as given, which may be absolute. A server
shows every file name relative to the directory it serves (a single file's
directory), so that what it answers neither depends on where it was started
nor shows the machine's layout: ``home.rules``, ``models/p.onnx``, or
``../models/p.onnx`` for a model kept beside the ruleset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_NAMES = 4096  # distinct file names remembered: the files of a few versions


@dataclass(frozen=True, slots=True)
class RulesetRoot:
    path: str  # absolute
    real: str  # absolute, symbolic links resolved
    _names: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, path: str | Path) -> RulesetRoot:
        """The root of the ruleset at ``path``: the directory, or the directory of a single file."""
        directory = Path(path) if Path(path).is_dir() else Path(path).parent
        return cls(os.path.abspath(directory), os.path.realpath(directory))

    def name(self, file_name: str) -> str:
        """``file_name`` relative to the root; a name that is no path (``""``, ``<feature>``) as it is."""
        if not file_name or file_name.startswith("<"):
            return file_name
        named = self._names.get(file_name)
        if named is None:
            if len(self._names) >= MAX_NAMES:
                self._names.clear()
            named = self._names[file_name] = self._relative(file_name)
        return named

    def _relative(self, file_name: str) -> str:
        absolute = os.path.abspath(file_name)
        for candidate, base in ((absolute, self.path), (absolute, self.real), (os.path.realpath(absolute), self.real)):
            if candidate == base or candidate.startswith(base.rstrip(os.sep) + os.sep):
                return Path(os.path.relpath(candidate, base)).as_posix()
        return Path(os.path.relpath(absolute, self.path)).as_posix()

    def text(self, message: str) -> str:
        """``message`` without the root's absolute path (an OS error quotes the path it could not read)."""
        for base in sorted({self.path, self.real}, key=len, reverse=True):
            if base != os.sep:
                message = message.replace(base + os.sep, "").replace(base, ".")
        return message
