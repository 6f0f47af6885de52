"""GrowthBook's conformance data, kept in ``shared/conformance/growthbook`` beside the repository.

``TAILOR_CONFORMANCE_DIR`` names the folder instead. From a git worktree the
folder beside the main checkout is found too. A missing folder is an error,
never a skip: these cases are what "assigns users as GrowthBook does" means.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
BESIDE = Path("shared") / "conformance" / "growthbook"


def _main_checkout() -> Path | None:
    """The main checkout of a git worktree (where ``.git`` is shared), or None outside git."""
    done = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    return Path(done.stdout.strip()).parent if done.returncode == 0 and done.stdout.strip() else None


def conformance_dir() -> Path:
    override = os.environ.get("TAILOR_CONFORMANCE_DIR")
    if override:
        candidates = [Path(override)]
    else:
        candidates = [REPOSITORY.parent / BESIDE]
        main = _main_checkout()
        if main is not None:
            candidates.append(main.parent / BESIDE)
    for folder in candidates:
        if (folder / "cases.json").is_file():
            return folder
    tried = ", ".join(str(folder) for folder in candidates)
    raise FileNotFoundError(f"GrowthBook conformance data not found (tried {tried}); set TAILOR_CONFORMANCE_DIR")


def load(name: str) -> dict[str, Any]:
    """``cases.json`` or ``stats_cases.json``."""
    return json.loads((conformance_dir() / name).read_text(encoding="utf-8"))
