"""docs/compiler.md shows each stage's product for the retail example, exactly as the code prints it.

Each ``<!-- emit: STAGE -->`` marker is followed by a fenced block holding
``tailor compile rulesets/retail --emit STAGE`` (``, first N lines`` keeps the
beginning only). After a change that alters an output on purpose, rewrite
the blocks with ``TAILOR_UPDATE_GOLDEN=1 pytest tests/test_compiler_doc.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tailor.compiler.display import stage_text
from tailor.runtime.ruleset_loader import compile_path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "compiler.md"
MARKER = re.compile(r"<!-- emit: (\w+)(?:, first (\d+) lines)? -->\n```(\w+)\n(.*?)```", re.DOTALL)


def emitted(stage: str, lines: int | None) -> str:
    loaded = compile_path(ROOT / "rulesets" / "retail")
    text = stage_text(loaded.compilation, stage, loaded.version())
    if lines is not None:
        text = "".join(text.splitlines(keepends=True)[:lines])
    return text


def test_the_compiler_doc_shows_what_each_stage_prints() -> None:
    doc = DOC.read_text(encoding="utf-8")
    found = list(MARKER.finditer(doc))
    assert [m.group(1) for m in found] == ["check", "normalize", "model_inputs", "plan", "python"]

    def fresh(match: re.Match[str]) -> str:
        stage, lines, language = match.group(1), match.group(2), match.group(3)
        head = match.group(0).split("\n", 1)[0]
        return f"{head}\n```{language}\n{emitted(stage, int(lines) if lines else None)}```"

    expected = MARKER.sub(fresh, doc)
    if os.environ.get("TAILOR_UPDATE_GOLDEN"):
        DOC.write_text(expected, encoding="utf-8")
    assert doc == expected, "docs/compiler.md is out of date: rerun with TAILOR_UPDATE_GOLDEN=1"
