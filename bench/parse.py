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
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tailor
from tailor.compiler.file_cache import FileCache
from tailor.dsl.loader import ParseCache
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import tokenize
from tailor.runtime.ruleset_loader import compile_path, lint_path

from .reload import split
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
    assert len(engine.ruleset.plan.rules) == n_rules
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


# The floor issue's reload: a ruleset of EDIT_FILES files of EDIT_RULES rules each, one file edited.
EDIT_FILES, EDIT_RULES = 50, 1_000
QUICK_EDIT_FILES = 10
EDIT_TARGET = 0.25  # the recompile after a one-file edit, as a share of the first (cold) compile


def measure_edit(files: int, rules_per_file: int) -> dict[str, Any]:
    """A cold compile of a many-file ruleset, then the recompile after one rule's priority changed in one file.

    Both compile in this process as a server's compile worker does (read,
    parse through the parse cache, check and normalize through the file cache,
    plan, generate); the second re-parses, re-checks and re-normalizes only the
    edited file. Each is timed in CPU seconds too: on a shared machine the
    wall clock measures the neighbours as much as the compile.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        paths = [root / f"part{index:02d}.rules" for index in range(files)]
        for path, text in zip(paths, split(ruleset_text(files * rules_per_file), files), strict=True):
            path.write_text(text)
        cache, file_cache = ParseCache(), FileCache()
        start, cpu = time.perf_counter(), time.process_time()
        first = compile_path(root, cache=cache, file_cache=file_cache).ruleset()
        cold_s, cold_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        text = paths[-1].read_text()
        edited, count = re.subn(r"priority \d+", "priority 1000", text, count=1)
        assert count == 1, "no rule to edit"
        paths[-1].write_text(edited)
        start, cpu = time.perf_counter(), time.process_time()
        second = compile_path(root, cache=cache, file_cache=file_cache).ruleset()
        edit_s, edit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        assert second.version != first.version
    return {
        "edit": True,
        "files": files,
        "rules": files * rules_per_file,
        "cold_s": cold_s,
        "edit_s": edit_s,
        "cold_cpu_s": cold_cpu_s,
        "edit_cpu_s": edit_cpu_s,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The parse cases, then the scaling shapes (rows with a "shape"), then the one-file edit (a row with "edit")."""
    repeat = 1 if quick else 5
    cases = CASES[:1] if quick else CASES
    rows: list[dict[str, Any]] = [measure(n, conditions, repeat) for n, conditions in cases]
    sizes = QUICK_SHAPE_RULES if quick else SHAPE_RULES
    rows += [measure_shape(shape, n) for shape in SHAPES for n in sizes]
    return [*rows, measure_edit(QUICK_EDIT_FILES if quick else EDIT_FILES, EDIT_RULES)]


def parse_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if "shape" not in row and "edit" not in row]


def edit_targets(rows: list[dict[str, Any]]) -> list[Target]:
    """The floor issue's reload target, in CPU time (in wall time for older results); none without an edit."""
    return [
        Target(
            f"recompile after editing 1 of {row['files']} files ({row['rules']:,} rules) "
            f"≤ {EDIT_TARGET:g}x the cold compile{' (CPU time)' if 'edit_cpu_s' in row else ''}",
            row["edit_cpu_s"] / row["cold_cpu_s"] if "edit_cpu_s" in row else row["edit_s"] / row["cold_s"],
            EDIT_TARGET,
            "x",
            why="The parse cache spares the unchanged files' parsing and the file cache their checking and "
            "normalizing; planning and generating still run over the whole ruleset, as the bits, predicate "
            "tables and generated code are numbered across all files and rule order decides.",
        )
        for row in rows
        if "edit" in row
    ]


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
    for row in rows:
        if "edit" in row:
            print(
                f"\n{row['files']} files, {row['rules']:,} rules: cold compile {row['cold_s']:.2f} s"
                f" ({row['cold_cpu_s']:.2f} s CPU), after a one-file edit {row['edit_s']:.2f} s"
                f" ({row['edit_cpu_s']:.2f} s CPU)"
            )
    for target in [*shape_targets(rows), *edit_targets(rows)]:
        print(target.line())


if __name__ == "__main__":
    main()
