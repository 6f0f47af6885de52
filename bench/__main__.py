"""Every benchmark in one run, and the performance report with its pictures.

Run: python -m bench [--quick] [--out DIR] [--redis URL] [--db N] [--only SECTION ...]
     python -m bench --from FILE [--out DIR]

Measures, in this order: parsing, deciding in process at 100 to 50,000 rules
against the baselines (with compile time), memory per rule count, store round
trips and model runs against a perfect oracle, the cost of a model, serving
over HTTP against the framework floor, decisions beside 1,000-event batches
on both stores, one ingester's events per second from a Redis Stream, hot
reload (save to serve, and the decisions answered while a large reload
compiles), and ``tailor diff``'s replay rate. Then it writes
``performance.md``, ``performance.json`` (every figure, to redraw from) and
``img/perf-*.png`` into the output directory: the repository's docs/ for a
full run, build/bench/ for a quick or partial one (``--quick``, ``--only``),
so that such a run never overwrites the published report.

A run fails (exit status 1, no report written) when a contender decides
differently from the reference, when the served decisions differ from the
in-process engine's, or when the engine and the oracle disagree. Missed
targets do not fail it: timings on shared machines are noisy, and the report
says which targets were missed and why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import decide, ingest, memory, models, oracle, parse, profile, reload, replay, scale_out, serve, stream
from . import report as report_page
from .decide import Disagreement
from .oracle import OracleMismatch

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    *("parse", "decide", "memory", "oracle", "models", "serve", "ingest", "stream", "scale_out", "reload"),
    "replay",
)
FULL_RULES = (100, 1_000, 10_000, 50_000)
QUICK_RULES = (100, 1_000)
RELOAD_RULES = 1_000
PACKAGES = ("lark", "fastapi", "uvicorn", "redis", "onnxruntime", "lightgbm", "zen-engine")


class CheckFailed(Exception):
    """A benchmark found an answer that differs from the reference: its timings would mean nothing."""


def _versions(redis_version: str | None) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["Redis server"] = redis_version
    return found


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def machine() -> dict[str, Any]:
    return {**serve.machine(), "memory_gib": _memory_gib(), "arch": platform.machine()}


def command_line(argv: Sequence[str]) -> str:
    """The command as run, with any Redis password left out."""
    shown = list(argv)
    for index, arg in enumerate(shown[:-1]):
        if arg == "--redis":
            shown[index + 1] = serve.shown(shown[index + 1])
    return shlex.join(["python", "-m", "bench", *shown])


def measure(
    sections: Sequence[str], quick: bool, redis_base: str | None, db: int, say: Callable[[str], None]
) -> dict[str, Any]:
    rule_counts = QUICK_RULES if quick else FULL_RULES
    results: dict[str, Any] = {}
    for section in sections:

        def progress(message: str, section: str = section) -> None:
            say(f"{section}: {message}")

        progress("starting")
        if section == "parse":
            results["parse"] = parse.run(quick)
        elif section == "decide":
            results["decide"] = decide.run(quick, rule_counts, progress=progress)
        elif section == "memory":
            results["memory"] = memory.run(rule_counts, progress=progress)
        elif section == "oracle":
            results["oracle"] = oracle.run(quick, redis_base, db, progress=progress)
        elif section == "models":
            results["models"] = models.run(500 if quick else 5000)
        elif section == "serve":
            results["serve"] = serve.run(quick, redis_base, db, progress=progress)
            for workload in (results["serve"], results["serve"].get("site") or {}):
                agreed = workload.get("agreement")
                if agreed is not None and agreed["agreed"] != agreed["checked"]:
                    raise CheckFailed(
                        f"only {agreed['agreed']} of {agreed['checked']} HTTP decisions agree with the in-process "
                        f"engine ({workload.get('title', 'bench.serve')})"
                    )
        elif section == "ingest":
            results["ingest"] = ingest.run(quick, redis_base, db, progress=progress)
        elif section == "stream":
            results["stream"] = stream.run(quick, redis_base, db, progress=progress)
        elif section == "scale_out":
            results["scale_out"] = scale_out.run(scale_out.QUICK if quick else scale_out.FULL, say=progress)
        elif section == "reload":
            times = reload.run(RELOAD_RULES, 1, 3 if quick else 9)
            results["reload"] = {"rules": RELOAD_RULES, "times_s": times, "median_s": statistics.median(times)}
            progress("decisions during a large reload")
            rules = reload.QUICK_BESIDE_RULES if quick else reload.BESIDE_RULES
            results["reload"]["beside"] = reload.beside(rules, rounds=1 if quick else reload.BESIDE_ROUNDS)
        elif section == "replay":
            results["replay"] = replay.run(replay.QUICK_DECISIONS if quick else replay.FULL_DECISIONS)
    return results


def write(results: dict[str, Any], out: Path) -> Path:
    """The JSON, the pictures and the page; returns the page's path."""
    from . import plots  # matplotlib is slow to import: only when drawing

    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, default=_plain) + "\n"
    (out / "performance.json").write_text(text)
    results = json.loads(text)  # the page is what --from would draw from the file
    targets = report_page.target_list(results)
    images = plots.draw_all(results, [t for _, t in targets], out / "img")
    images |= profile.flame_graphs(out / "img")  # python -m bench.profile's, when there
    page = out / "performance.md"
    page.write_text(report_page.render(results, targets, images))
    return page


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rule counts, requests and repeats: under a minute")
    parser.add_argument("--out", type=Path, help="where to write (default: docs/; build/bench/ with --quick or --only)")
    parser.add_argument(
        "--redis", metavar="URL", help=f"Redis (default: $TAILOR_TEST_REDIS_URL or {serve.DEFAULT_REDIS})"
    )
    parser.add_argument("--db", type=int, default=serve.DEFAULT_DB, help="the database to seed and empty (not 0)")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"some of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--from", dest="source", type=Path, metavar="FILE", help="redraw from a performance.json")
    args = parser.parse_args(argv)
    partial = args.quick or args.only is not None
    out = args.out.resolve() if args.out else ROOT / "build" / "bench" if partial else ROOT / "docs"
    if args.source is not None:
        args.source = args.source.resolve()
    os.chdir(ROOT)  # the benchmarks start servers and read the example ruleset relative to the repository

    if args.source is not None:
        results = json.loads(args.source.read_text())
        print(f"redrawn: {write(results, out)}")
        return 0

    began = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f}s] {message}", file=sys.stderr, flush=True)

    sections = [section for section in SECTIONS if args.only is None or section in args.only]
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(argv),
        "quick": args.quick,
        "machine": machine(),
        "db": args.db,
    }
    try:
        results = measure(sections, args.quick, args.redis, args.db, say)
    except (Disagreement, OracleMismatch, CheckFailed) as exc:
        print(f"bench: a check failed, so no report was written:\n{exc}", file=sys.stderr)
        return 1
    redis_version = (results.get("serve") or {}).get("seed", {}).get("redis_version")
    meta["versions"] = _versions(redis_version)
    meta["seconds"] = time.perf_counter() - began
    results = {"meta": meta, **results}
    page = write(results, out)
    targets = report_page.target_list(results)
    print(f"wrote {page} and its pictures in {meta['seconds']:.0f} s")
    for _, target in targets:
        print(target.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
