"""Parse speed: cold parses of generated rulesets, and a cached re-parse.

Run: python -m bench.parse
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from tailor.dsl.loader import ParseCache
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import tokenize

from .targets import Target
from .workload import ruleset_text

# (rules, conditions per rule): the 10,000-rule file with 3-5 conditions per
# rule is about the size of the reference file in the language issue.
CASES = [(1_000, (2, 4)), (10_000, (2, 4)), (10_000, (3, 5))]
TARGETS = {1_000: 0.5, 10_000: 4.0}


def measure(n_rules: int, conditions: tuple[int, int], repeat: int) -> dict[str, float]:
    text = ruleset_text(n_rules, conditions=conditions)
    source = Source("bench.rules", text)
    tokens = len(tokenize(source).tokens)
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


def run(quick: bool = False) -> list[dict[str, float]]:
    repeat = 1 if quick else 5
    cases = CASES[:1] if quick else CASES
    return [measure(n, conditions, repeat) for n, conditions in cases]


def targets(rows: list[dict[str, float]]) -> list[Target]:
    """The language issue's targets; at 10,000 rules, for the larger file (the reference's size)."""
    largest = {int(row["rules"]): row for row in sorted(rows, key=lambda row: row["bytes"])}
    return [
        Target(
            f"parse a {n:,}-rule file < {limit:g} s",
            largest[n]["parse_s"] if n in largest else None,
            limit,
            " s",
        )
        for n, limit in TARGETS.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"{'rules':>7} {'MB':>6} {'tokens':>8} {'parse (median)':>15} {'cached re-parse':>16}  target")
    for row in run(args.quick):
        target = TARGETS.get(int(row["rules"]))
        verdict = "" if target is None else f"< {target} s: {'met' if row['parse_s'] < target else 'MISSED'}"
        print(
            f"{row['rules']:>7} {row['bytes'] / 1e6:>6.2f} {row['tokens']:>8} {row['parse_s']:>13.3f} s"
            f" {row['cached_s'] * 1000:>13.1f} ms  {verdict}"
        )


if __name__ == "__main__":
    main()
