"""The report's pictures, drawn with matplotlib from a harness result.

Each function draws one PNG and returns its file name; the report links them
from ``img/``. Colours stay with a contender across pictures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no screen

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .decide import COMPILED, IF_CHAIN, LABELS, NAIVE, ZEN
from .report import PICTURES, pictures
from .targets import Target

COLOURS = {COMPILED: "#1f77b4", IF_CHAIN: "#555555", NAIVE: "#d62728", ZEN: "#ff7f0e"}
SERVER, FLOOR, ORACLE = "#1f77b4", "#999999", "#2ca02c"
MET, MISSED = "#2ca02c", "#d62728"
DPI = 120

_thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")


def _save(figure: Figure, directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(directory / name, dpi=DPI)
    plt.close(figure)
    return name


def decide(result: dict[str, Any], directory: Path) -> str:
    """Per-decision time against rule count, and each contender as a multiple of the if-chain."""
    cases = result["cases"]
    rules = [case["rules"] for case in cases]
    figure, (times, ratios) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in (IF_CHAIN, NAIVE, ZEN, COMPILED):
        points = [(case["rules"], case["us"][name]) for case in cases if name in case["us"]]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        width = 2.5 if name == COMPILED else 1.5
        times.plot(xs, ys, marker="o", color=COLOURS[name], linewidth=width, label=LABELS[name])
        if name != IF_CHAIN:
            ratio = [case["ratio"][name] for case in cases if name in case["ratio"]]
            ratios.plot(xs, ratio, marker="o", color=COLOURS[name], linewidth=width, label=LABELS[name])
    for axes in (times, ratios):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(rules)
        axes.xaxis.set_major_formatter(_thousands)
        axes.set_xlabel("rules")
        axes.grid(True, which="major", alpha=0.3)
    times.set_ylabel("µs per decision (median)")
    times.set_title("Time per decision, all three slots")
    times.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    times.legend(fontsize=8)
    ratios.axhline(1.0, color=COLOURS[IF_CHAIN], linewidth=1, linestyle="--")
    ratios.text(rules[0], 1.08, "hand-written if-chain = 1", fontsize=8, color=COLOURS[IF_CHAIN])
    for n, limit in ((1_000, 0.35), (10_000, 0.25)):
        if n in rules:
            ratios.plot([n], [limit], marker="_", markersize=22, color=MISSED, markeredgewidth=2)
            ratios.annotate(f"target ≤ {limit:g}x", (n, limit), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ratios.set_ylabel("multiple of the if-chain's time (lower is better)")
    ratios.set_title("Relative to the hand-written if-chain")
    ratios.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    return _save(figure, directory, PICTURES["decide"])


def compile_and_memory(decide_result: dict[str, Any], memory: Sequence[dict[str, Any]], directory: Path) -> str:
    """Compile time and resident memory against rule count (of the workload: the scaling shapes are tabled)."""
    memory = [row for row in memory if "shape" not in row]
    figure, (compile_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4))
    points = [(case["rules"], case["compile_s"]) for case in decide_result["cases"] if "compile_s" in case]
    if points:
        xs, ys = zip(*points, strict=True)
        compile_axes.plot(xs, ys, marker="o", color=COLOURS[COMPILED], linewidth=2.5)
        for x, y in points:
            compile_axes.annotate(f"{y:.2f} s", (x, y), textcoords="offset points", xytext=(8, -10), fontsize=8)
        if 10_000 in xs:
            compile_axes.plot([10_000], [5.0], marker="_", markersize=22, color=MISSED, markeredgewidth=2)
            compile_axes.annotate(
                "target < 5 s", (10_000, 5.0), textcoords="offset points", xytext=(-30, 8), fontsize=8
            )
    compile_axes.set_title("Compile: source text to a ready engine")
    compile_axes.set_ylabel("seconds")
    if memory:
        xs = [row["rules"] for row in memory]
        memory_axes.plot(xs, [row["retained_bytes"] / 1e6 for row in memory], marker="o", label="held while serving")
        memory_axes.plot(
            xs, [row["peak_bytes"] / 1e6 for row in memory], marker="o", linestyle="--", label="peak while compiling"
        )
        memory_axes.legend(fontsize=8)
    memory_axes.set_title("Resident memory of a compiled ruleset")
    memory_axes.set_ylabel("MB (RSS)")
    rules = sorted({case["rules"] for case in decide_result["cases"]} | {row["rules"] for row in memory})
    for axes in (compile_axes, memory_axes):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(rules)
        axes.set_xlabel("rules")
        axes.xaxis.set_major_formatter(_thousands)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.grid(True, which="major", alpha=0.3)
    return _save(figure, directory, PICTURES["compile"])


def oracle(result: dict[str, Any], directory: Path) -> str:
    """What the engine fetches and runs per decision beside what a perfect oracle needs."""
    workloads = result["workloads"]
    names = [f"{name}\n{w['rules']:,} rules" for name, w in workloads.items()]
    measures = [("round_trips", "store round trips"), ("models", "model runs"), ("features", "store features read")]
    figure, axes_row = plt.subplots(1, len(measures), figsize=(11, 3.6))
    width = 0.38
    for axes, (key, title) in zip(axes_row, measures, strict=True):
        engine = [w["engine"][key] for w in workloads.values()]
        least = [w["oracle"][key] for w in workloads.values()]
        positions = range(len(names))
        axes.bar([p - width / 2 for p in positions], engine, width, color=SERVER, label="engine")
        axes.bar([p + width / 2 for p in positions], least, width, color=ORACLE, label="oracle's least")
        for p, (a, b) in enumerate(zip(engine, least, strict=True)):
            digits = 1 if key == "features" else 2
            axes.annotate(f"{a:.{digits}f}", (p - width / 2, a), ha="center", va="bottom", fontsize=8)
            axes.annotate(f"{b:.{digits}f}", (p + width / 2, b), ha="center", va="bottom", fontsize=8)
        axes.set_xticks(list(positions), names, fontsize=8)
        axes.set_title(f"{title} per decision", fontsize=10)
        axes.margins(y=0.15)
        axes.grid(True, axis="y", alpha=0.3)
    axes_row[-1].legend(fontsize=8, loc="upper left")
    return _save(figure, directory, PICTURES["oracle"])


def serving(result: dict[str, Any], directory: Path) -> str:
    """Latency CDFs at the fixed rate, and throughput at saturation, for the server and the floor."""
    figure, (cdf_axes, bar_axes) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    rate = result["settings"]["rate"]
    for key, colour, label in (("floor", FLOOR, "floor (FastAPI + one Redis pipeline)"), ("server", SERVER, "tailor")):
        points = result[key]["cdf_ms"]
        cdf_axes.plot([ms for _, ms in points], [q * 100 for q, _ in points], color=colour, linewidth=2, label=label)
    cdf_axes.set_xscale("log")
    cdf_axes.set_xlabel("latency, ms (from each request's scheduled send time)")
    cdf_axes.set_ylabel("% of requests at or below")
    cdf_axes.set_title(f"Latency at {rate:g} requests/s, open loop, Redis")
    cdf_axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    cdf_axes.axhline(50, color="#cccccc", linewidth=0.8)
    cdf_axes.axhline(99, color="#cccccc", linewidth=0.8)
    cdf_axes.grid(True, which="both", alpha=0.2)
    cdf_axes.legend(fontsize=8, loc="lower right")
    values = [result["floor"]["throughput"], result["server"]["throughput"]]
    bar_axes.bar(["floor", "tailor"], values, color=[FLOOR, SERVER])
    for index, value in enumerate(values):
        bar_axes.annotate(f"{value:,.0f}", (index, value), ha="center", va="bottom", fontsize=9)
    bar_axes.set_title("Decisions/s at saturation")
    bar_axes.yaxis.set_major_formatter(_thousands)
    bar_axes.margins(y=0.12)
    return _save(figure, directory, PICTURES["serve"])


def scoreboard(targets: Sequence[Target], directory: Path) -> str:
    """Every target as the measured value over its limit, oriented so that below 1 is met."""
    measured = [t for t in targets if t.value is not None and t.limit and math.isfinite(t.value)]
    figure, axes = plt.subplots(figsize=(11, 0.42 * len(measured) + 1.2))

    def share(t: Target) -> float:
        assert t.value is not None
        if t.lower_is_better:
            return t.value / t.limit
        return t.limit / t.value if t.value else math.inf

    shares = [share(t) for t in measured]
    colours = [MET if t.met else MISSED for t in measured]
    rows = range(len(measured))
    axes.barh(list(rows), shares, color=colours)
    axes.set_yticks(list(rows), [t.name for t in measured], fontsize=8)
    axes.invert_yaxis()
    axes.axvline(1.0, color="black", linewidth=1)
    for row, (t, value) in enumerate(zip(measured, shares, strict=True)):
        axes.annotate(f" {t.shown()}", (value, row), va="center", fontsize=8)
    axes.set_xlabel("measured ÷ target (below 1 is met; for 'at least' targets, target ÷ measured)")
    axes.set_xlim(0, max([1.3, *(s * 1.25 for s in shares if math.isfinite(s))]))
    axes.set_title("Targets from the language, compiler, runtime and model issues")
    return _save(figure, directory, PICTURES["targets"])


def draw_all(results: dict[str, Any], targets: Sequence[Target], directory: Path) -> dict[str, str]:
    """Every picture the report links (``report.pictures``): section name -> file name."""
    draw: dict[str, Callable[[], str]] = {
        "targets": lambda: scoreboard(targets, directory),
        "decide": lambda: decide(results["decide"], directory),
        "compile": lambda: compile_and_memory(results["decide"], results.get("memory") or [], directory),
        "oracle": lambda: oracle(results["oracle"], directory),
        "serve": lambda: serving(results["serve"], directory),
    }
    return {section: draw[section]() for section in pictures(results)}
