"""The published performance report is the harness's output, not a hand-edited page.

``python -m bench`` writes docs/performance.md from the figures it saves in
docs/performance.json; rendering those figures again must give the page as
committed, and every picture it links must be there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import report

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads((DOCS / "performance.json").read_text())


def test_the_page_is_rendered_from_the_saved_figures(results: dict) -> None:
    page = report.render(results, report.target_list(results), report.pictures(results))
    assert page == (DOCS / "performance.md").read_text()


def test_every_linked_picture_is_published(results: dict) -> None:
    page = (DOCS / "performance.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", page)
    assert sorted(linked) == sorted(f"img/{name}" for name in report.pictures(results).values())
    for path in linked:
        assert (DOCS / path).stat().st_size > 10_000, f"{path} is missing or empty"


def test_the_published_run_is_a_full_one(results: dict) -> None:
    meta = results["meta"]
    assert not meta["quick"] and meta["command"] == "python -m bench"
    assert [case["rules"] for case in results["decide"]["cases"]] == [100, 1_000, 10_000, 50_000]
    assert {"parse", "decide", "memory", "oracle", "models", "serve", "reload"} <= set(results)
