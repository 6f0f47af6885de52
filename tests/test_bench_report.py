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

from bench import profile, report

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads((DOCS / "performance.json").read_text())


def test_the_page_is_rendered_from_the_saved_figures(results: dict) -> None:
    images = report.pictures(results) | profile.flame_graphs(DOCS / "img")
    page = report.render(results, report.target_list(results), images)
    assert page == (DOCS / "performance.md").read_text()


def test_every_linked_picture_is_published(results: dict) -> None:
    page = (DOCS / "performance.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", page)
    assert sorted(linked) == sorted(f"img/{name}" for name in report.pictures(results).values())
    for path in linked:
        assert (DOCS / path).stat().st_size > 10_000, f"{path} is missing or empty"


def test_the_serving_section_links_the_flame_graphs_published() -> None:
    page = (DOCS / "performance.md").read_text()
    flames = sorted(re.findall(r"(?<!!)\[[^\]]*\]\((img/flame-[^)]+)\)", page))
    assert flames == sorted(f"img/{name}" for name in profile.flame_graphs(DOCS / "img").values())
    assert flames, "no flame graph is published"
    for path in flames:
        assert (DOCS / path).read_text().startswith("<?xml"), f"{path} is not a flame graph"


def test_the_published_run_is_a_full_one(results: dict) -> None:
    meta = results["meta"]
    assert not meta["quick"] and meta["command"] == "python -m bench"
    assert [case["rules"] for case in results["decide"]["cases"]] == [100, 1_000, 10_000, 50_000]
    assert {"parse", "decide", "memory", "oracle", "models", "serve", "reload"} <= set(results)
