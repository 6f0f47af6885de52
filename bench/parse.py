"""Parse speed: cold parses of generated rulesets, and a cached re-parse; compile and lint at scale.

Run: python -m bench.parse [--quick]

The scaling issue's two shapes (``bench.workload``) are compiled and linted
at up to 100,000 rules: one rule per SKU, whose one attribute has as many
values as there are rules, and the workload's low-cardinality rules spread
over 20 slots. Compile is ``tailor.loads`` plus ``Engine`` on text not seen
before; lint is ``tailor lint`` on the file (``lint_path``: read, parse,
check, plan and the lint analyses), what the pre-commit hook runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tailor
from tailor.dsl.loader import ParseCache
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import tokenize
from tailor.runtime.ruleset_loader import lint_path

from .targets import Target
from .workload import QUICK_SHAPE_RULES, SHAPE_LABELS, SHAPE_RULES, SHAPES, ruleset_text, shape_text

# (rules, conditions per rule): the 10,000-rule file with 3-5 conditions per
# rule is about the size of the reference file in the language issue.
CASES = [(1_000, (2, 4)), (10_000, (2, 4)), (10_000, (3, 5))]
TARGETS = {1_000: 0.5, 10_000: 4.0}


def measure(n_rules: int, conditions: tuple[int, int], repeat: int) -> dict[str, float]:
    text = ruleset_text(n_rules, conditions=conditions)
    source = Source("bench.rules", text)
    tokens = len(tokenize(source).tokens)
    # The parse tables are built on the first parse of the process (importing used to build them): not timed here.
    parse_source(Source("warm.rules", "content c = {}\n"))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        module, problems = parse_source(Source("bench.rules", text))
        times.append(time.perf_counter() - start)
        assert not problems and len(module.declarations) > n_rules
    cache = ParseCache()
    cache.parse("bench.rules", text)
    start = time.perf_counter()
    cache.parse("bench.rules", text)
    cached = time.perf_counter() - start
    return {
        "rules": n_rules,
        "bytes": len(text.encode()),
        "tokens": tokens,
        "parse_s": statistics.median(times),
        "cached_s": cached,
    }


# The scaling issue's targets, at SHAPE_TARGET_RULES rules of either shape: seconds.
# Rows of the shapes carry the shape's name as "shape"; rows without one are the cases above.
SHAPE_TARGET_RULES = 100_000
SHAPE_TARGETS = {"compile_s": 20.0, "lint_s": 30.0}


def measure_shape(shape: str, n_rules: int) -> dict[str, Any]:
    """One compile and one lint (each takes seconds at these sizes, so once is enough)."""
    text = shape_text(shape, n_rules)
    start = time.perf_counter()
    engine = tailor.Engine(tailor.loads(text, name="bench"))
    compile_s = time.perf_counter() - start
    assert len(engine.ruleset.program.rules) == n_rules
    del engine
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.rules"
        path.write_text(text)
        start = time.perf_counter()
        found = lint_path(path)
        lint_s = time.perf_counter() - start
    return {
        "shape": shape,
        "rules": n_rules,
        "bytes": len(text.encode()),
        "compile_s": compile_s,
        "lint_s": lint_s,
        "warnings": len(found),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The parse cases, then the scaling shapes (rows with a "shape")."""
    repeat = 1 if quick else 5
    cases = CASES[:1] if quick else CASES
    rows: list[dict[str, Any]] = [measure(n, conditions, repeat) for n, conditions in cases]
    sizes = QUICK_SHAPE_RULES if quick else SHAPE_RULES
    return rows + [measure_shape(shape, n) for shape in SHAPES for n in sizes]


def parse_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if "shape" not in row]


def shape_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if "shape" in row]


def targets(rows: list[dict[str, float]]) -> list[Target]:
    """The language issue's targets; at 10,000 rules, for the larger file (the reference's size)."""
    largest = {int(row["rules"]): row for row in sorted(parse_rows(rows), key=lambda row: row["bytes"])}
    return [
        Target(
            f"parse a {n:,}-rule file < {limit:g} s",
            largest[n]["parse_s"] if n in largest else None,
            limit,
            " s",
        )
        for n, limit in TARGETS.items()
    ]


def shape_targets(rows: list[dict[str, Any]]) -> list[Target]:
    """The scaling issue's targets; none when the run measured no shape (an older result)."""
    measured = shape_rows(rows)
    if not measured:
        return []
    at = {(row["shape"], int(row["rules"])): row for row in measured}
    found = []
    for shape in SHAPES:
        row = at.get((shape, SHAPE_TARGET_RULES))
        for key, limit in SHAPE_TARGETS.items():
            verb = "compile" if key == "compile_s" else "lint"
            found.append(
                Target(
                    f"{verb} {SHAPE_TARGET_RULES:,} rules, {SHAPE_LABELS[shape]}, ≤ {limit:g} s",
                    row[key] if row else None,
                    limit,
                    " s",
                )
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"{'rules':>7} {'MB':>6} {'tokens':>8} {'parse (median)':>15} {'cached re-parse':>16}  target")
    for row in parse_rows(rows):
        target = TARGETS.get(int(row["rules"]))
        verdict = "" if target is None else f"< {target} s: {'met' if row['parse_s'] < target else 'MISSED'}"
        print(
            f"{row['rules']:>7} {row['bytes'] / 1e6:>6.2f} {row['tokens']:>8} {row['parse_s']:>13.3f} s"
            f" {row['cached_s'] * 1000:>13.1f} ms  {verdict}"
        )
    print(f"\n{'shape':>5} {'rules':>7} {'MB':>6} {'compile':>9} {'lint':>9} {'warnings':>9}")
    for row in shape_rows(rows):
        print(
            f"{row['shape']:>5} {row['rules']:>7,} {row['bytes'] / 1e6:>6.2f} {row['compile_s']:>7.2f} s"
            f" {row['lint_s']:>7.2f} s {row['warnings']:>9,}"
        )
    for target in shape_targets(rows):
        print(target.line())


if __name__ == "__main__":
    main()
