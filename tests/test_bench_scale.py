"""The scaling issue's shapes in the benchmarks: valid rulesets, measured, targeted and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tailor
from bench import parse, report
from bench.workload import SHAPES, sku_ruleset_text, wide_ruleset_text

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_shapes_are_valid_rulesets_of_the_asked_size() -> None:
    sku = tailor.loads(sku_ruleset_text(300), name="sku")
    assert len(sku.program.rules) == 300
    table = next(t for t in sku.plan.tables if t.ref.text == "context.sku")
    assert len(table.keep_by_value) > 250  # about one value per rule: what makes the shape hard
    wide = tailor.loads(wide_ruleset_text(300), name="wide")
    assert len(wide.program.rules) == 300 and len(wide.slots) == 20


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_shape_is_compiled_and_linted(shape: str) -> None:
    row = parse.measure_shape(shape, 200)
    assert row["shape"] == shape and row["rules"] == 200
    assert row["compile_s"] > 0 and row["lint_s"] > 0 and row["warnings"] >= 0


def test_the_targets_and_tables_appear_only_when_measured() -> None:
    results = json.loads((DOCS / "performance.json").read_text())
    results["parse"] = [row for row in results["parse"] if "shape" not in row]  # as a run before the shapes
    results["memory"] = [row for row in results["memory"] if "shape" not in row]
    before = report.target_list(results)
    assert not [t for area, t in before if area == "scaling"]  # an older result: the page stays as it was
    rows = [
        {"shape": shape, "rules": n, "bytes": n * 80, "compile_s": n / 10_000, "lint_s": n / 4_000, "warnings": 3}
        for shape in SHAPES
        for n in (1_000, 100_000)
    ]
    results["parse"] = results["parse"] + rows
    results["memory"] = results["memory"] + [
        {"shape": "sku", "rules": 1_000, "retained_bytes": 4e6, "peak_bytes": 5e6, "retained_per_1000_mb": 4.0}
    ]
    targets = [t for area, t in report.target_list(results) if area == "scaling"]
    assert [(t.value, t.limit, t.met) for t in targets] == [(10.0, 20.0, True), (25.0, 30.0, True)] * 2
    assert parse.targets(results["parse"]) == parse.targets(parse.parse_rows(results["parse"]))
    page = report.render(results, report.target_list(results), {})
    assert "### Compile and lint at scale" in page and "| one rule per SKU | 100,000 | 8.00 MB | 10.00 s |" in page
    assert "| one rule per SKU | 1,000 | 4.0 MB | 4.0 MB | 5.0 MB |" in page


def test_the_edit_target_is_judged_on_cpu_time_when_measured() -> None:
    wall = {"edit": True, "files": 50, "rules": 50_000, "cold_s": 10.0, "edit_s": 3.0}
    cpu = {**wall, "cold_cpu_s": 6.0, "edit_cpu_s": 1.5}
    (older,), (newer,) = parse.edit_targets([wall]), parse.edit_targets([cpu])
    assert (older.value, older.met) == (0.3, False)  # a result saved before CPU time was measured
    assert (newer.value, newer.met) == (0.25, True) and "(CPU time)" in newer.name
    results = json.loads((DOCS / "performance.json").read_text())
    results["parse"] = [row for row in results["parse"] if "edit" not in row] + [cpu]
    page = report.render(results, report.target_list(results), {})
    assert "| 50 | 50,000 | 10.00 s | 3.00 s | 6.00 s | 1.50 s | 0.25x |" in page
