"""Memory a compiled ruleset holds, per 1,000 rules.

Run: python -m bench.memory [--rules 100 1000 10000] [--shape-rules 1000 10000 100000]

Each rule count is measured in a fresh Python process, so nothing else the
benchmark allocated is counted. The process imports tailor, compiles a tiny
ruleset (so lazily built parser tables and imports are paid for), reads the
generated ruleset's text, and records its resident set size (RSS); it then
compiles the ruleset into an ``Engine`` laid out as a server's first load
lays it out (``compiler/pickled.py``), drops the text, collects garbage,
hands freed memory back to the system (``malloc_trim``, where the C library
has it) and records RSS again. The difference is what a server serving that
ruleset holds for it: the decision plan, the generated code and the source
text (the checked program is rebuilt from it on demand, not held). The peak
(the kernel's high-water mark of RSS, reset just before, less the first reading) adds what compiling needs for a while,
which a hot reload needs once more beside the version being served.

RSS is what an operator sees; it includes the allocator's slack, so it is
larger than the sum of the objects' sizes.

The scaling issue's shapes (``bench.workload.SHAPES``: one rule per SKU, and
the workload over 20 slots) are measured the same way, up to 100,000 rules
in a full run; their rows carry the shape's name.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .targets import Target
from .workload import QUICK_SHAPE_RULES, SHAPE_RULES, SHAPES, ruleset_text, shape_text

RULE_COUNTS = (100, 1_000, 10_000)
TINY = "ruleset warmup\ncontent a = {}\ndefault show a in hero\n"


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _high_water() -> int:
    """The peak RSS since ``_reset_high_water`` (Linux: VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_high_water() -> None:
    """Forget the peak so far (the imports'), where the kernel allows it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _trim() -> None:
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def measure_here(source: Path) -> dict[str, int]:
    """Run in the child process: the RSS a compiled ruleset adds, and the peak while compiling."""
    import tailor
    from tailor.compiler.pickled import compacted

    tailor.Engine(tailor.loads(TINY, name="warmup"))
    text = source.read_text()
    _trim()
    _reset_high_water()
    before = _rss()
    engine = tailor.Engine(compacted(tailor.loads(text, name="bench")))  # as a server's first load keeps it
    del text
    _trim()
    after = _rss()
    peak = _high_water()
    assert engine.ruleset.rules
    return {"retained_bytes": after - before, "peak_bytes": max(0, peak - before)}


def measure(n_rules: int, shape: str | None = None) -> dict[str, Any]:
    """One rule count of the workload (or of one of the scaling shapes), in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "bench.rules"
        source.write_text(ruleset_text(n_rules) if shape is None else shape_text(shape, n_rules))
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", str(source)],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
    if done.returncode != 0:
        raise RuntimeError(f"measuring memory at {n_rules:,} rules failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout)
    return {
        **({"shape": shape} if shape is not None else {}),
        "rules": n_rules,
        **row,
        "retained_per_1000_mb": row["retained_bytes"] / n_rules * 1000 / 1e6,
    }


def run(
    rule_counts: Sequence[int] = RULE_COUNTS,
    progress: Callable[[str], None] | None = None,
    shape_counts: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The workload at ``rule_counts``, then each scaling shape at ``shape_counts``.

    By default the shapes go up to 100,000 rules when the workload goes to
    10,000 or more (a full run), and stay at 1,000 otherwise (a quick one).
    """
    say = progress or (lambda message: None)
    if shape_counts is None:
        shape_counts = SHAPE_RULES if max(rule_counts, default=0) >= 10_000 else QUICK_SHAPE_RULES
    rows = []
    for n in rule_counts:
        say(f"memory at {n:,} rules")
        rows.append(measure(n))
    for shape in SHAPES:
        for n in shape_counts:
            say(f"memory at {n:,} rules, shape {shape}")
            rows.append(measure(n, shape))
    return rows


# The floor issue's target: megabytes held per 1,000 rules, at each of these rule counts of the workload.
HELD_TARGET_MB = 3.0
HELD_TARGET_RULES = (10_000, 50_000)


def targets(rows: Sequence[dict[str, Any]]) -> list[Target]:
    """The floor issue's memory targets; a rule count the run did not measure is not measured."""
    held = {row["rules"]: row for row in rows if "shape" not in row}
    return [
        Target(
            f"memory held at {n:,} rules ≤ {HELD_TARGET_MB:g} MB per 1,000 rules",
            held[n]["retained_per_1000_mb"] if n in held else None,
            HELD_TARGET_MB,
            " MB",
            why="What is held is the plan (a rule, its conjunctions and their predicates), the generated "
            "code and each file's source text, from which the checked program is rebuilt on demand.",
        )
        for n in HELD_TARGET_RULES
    ]


def report(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'shape':>8} {'rules':>7} {'held (RSS)':>11} {'per 1,000 rules':>16} {'peak while compiling':>21}"]
    for row in rows:
        lines.append(
            f"{row.get('shape', 'workload'):>8} {row['rules']:>7,} {row['retained_bytes'] / 1e6:>8.1f} MB"
            f" {row['retained_per_1000_mb']:>13.2f} MB {row['peak_bytes'] / 1e6:>18.1f} MB"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, nargs="+", default=list(RULE_COUNTS))
    parser.add_argument("--shape-rules", type=int, nargs="*", help="rule counts of the scaling shapes (none: skip)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure_here(args.child)))
        return
    rows = run(args.rules, shape_counts=args.shape_rules)
    print(report(rows))
    for target in targets(rows):
        print(target.line())


if __name__ == "__main__":
    main()
