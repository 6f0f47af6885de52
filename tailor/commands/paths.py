"""Paths named on the command line that do not exist."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def missing(paths: Sequence[Path | str]) -> list[Path | str]:
    """The paths that do not exist (``-``, standard input, always does), each reported on standard error."""
    absent = [p for p in paths if str(p) != "-" and not Path(p).exists()]
    for path in absent:
        print(f"tailor: {path}: no such file or directory", file=sys.stderr)
    return absent
