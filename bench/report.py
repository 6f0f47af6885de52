"""docs/performance.md, written from one harness result.

Everything the report says comes from the result (``performance.json``
beside it), so re-rendering an old result gives the same page. The prose
between the numbers says how each figure was measured; the verdicts and the
reasons for a missed target come from the targets themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import decide, floor_app, ingest, memory, models, oracle, parse, reload, replay, scale_out, serve, stream
from .decide import COMPILED, IF_CHAIN, LABELS, NAIVE, ZEN
from .profile import FLAME_GRAPHS
from .targets import Target
from .workload import SHAPE_LABELS

AREAS = {
    "language": "language issue",
    "compiler": "compiler issue",
    "runtime": "runtime issue",
    "models": "model issue",
    "scaling": "scaling issue",
    "hardening": "hardening issue",
    "scale-out": "scale-out issue",
    "floor": "floor issue",
}


# The pictures, by the section they illustrate (``bench.plots`` draws them).
PICTURES = {
    "targets": "perf-targets.png",
    "decide": "perf-decide.png",
    "compile": "perf-compile-memory.png",
    "oracle": "perf-oracle.png",
    "serve": "perf-serving.png",
}
# The result each picture is drawn from.
_DRAWN_FROM = {"targets": None, "decide": "decide", "compile": "decide", "oracle": "oracle", "serve": "serve"}


def pictures(results: dict[str, Any]) -> dict[str, str]:
    """The pictures these results allow: section -> file name."""
    return {
        section: name
        for section, name in PICTURES.items()
        if _DRAWN_FROM[section] is None or _DRAWN_FROM[section] in results
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 100 else f"{value:,.0f} µs"


def _ms(value: float) -> str:
    return f"{value:,.2f} ms"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def render(results: dict[str, Any], targets: Sequence[tuple[str, Target]], images: dict[str, str]) -> str:
    """The whole page. ``targets`` pairs each target with its area (a key of ``AREAS``)."""
    meta = results["meta"]
    out: list[str] = ["# Performance", ""]
    out += [
        "<!-- Written by `python -m bench` from performance.json; change bench/report.py, not this file. -->",
        "",
        *_header(meta),
        "Timings are never asserted in tests: the machines are shared and absolute numbers swing from run to",
        "run. So every benchmark measures its baselines in the same run and the targets are ratios to them",
        "where the issues set ratios. Before anything is timed, every contender is checked to decide exactly",
        "as the reference does; a disagreement stops the run.",
        "",
    ]
    out += _targets_section(targets, images)
    if "decide" in results:
        out += _decide_section(results["decide"], images)
    if "decide" in results or "memory" in results:
        out += _compile_section(results.get("decide"), results.get("memory") or [], images)
    if "parse" in results:
        out += _parse_section(results["parse"])
    if "oracle" in results:
        out += _oracle_section(results["oracle"], images)
    if "models" in results:
        out += _models_section(results["models"])
    if "serve" in results:
        out += _serve_section(results["serve"], images)
    if "ingest" in results:
        out += _ingest_section(results["ingest"])
    if "stream" in results:
        out += _stream_section(results["stream"])
    if "scale_out" in results:
        out += _scale_out_section(results["scale_out"])
    if "reload" in results:
        out += _reload_section(results["reload"])
    if "replay" in results:
        out += _replay_section(results["replay"])
    out += _reproduce_section(
        meta, ingested="ingest" in results, replayed="replay" in results, streamed="stream" in results
    )
    return "\n".join(out).rstrip() + "\n"


def _header(meta: dict[str, Any]) -> list[str]:
    machine, versions = meta["machine"], meta["versions"]
    shown = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    missing = [name for name, version in versions.items() if not version]
    lines = [
        f"**Command:** `{meta['command']}` (took {meta['seconds'] / 60:.1f} min)  ",
        f"**Date:** {meta['date']}  ",
        f"**Machine:** {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']:.0f} GiB, "
        f"{machine['system']} {machine['arch']}, load average {machine['load_average']} at the start  ",
        f"**Software:** Python {machine['python']}, {shown}",
    ]
    if missing:
        lines[-1] += f" ({', '.join(missing)} not installed: left out)"
    if meta.get("quick"):
        lines += ["", "**This is a `--quick` run:** fewer rule counts, requests and repeats; its figures are rough."]
    return [*lines, ""]


def _targets_section(targets: Sequence[tuple[str, Target]], images: dict[str, str]) -> list[str]:
    out = ["## Targets", ""]
    met = sum(1 for _, t in targets if t.met)
    measured = sum(1 for _, t in targets if t.met is not None)
    out += [f"{met} of {measured} measured targets met.", ""]
    if "targets" in images:
        out += [f"![Each target's measured value over its limit]({_img(images['targets'])})", ""]
    rows = [
        [AREAS.get(area, area), t.name, t.shown(), f"**{t.verdict}**" if t.met is False else t.verdict]
        for area, t in targets
    ]
    out += _table(["from the", "target", "measured", "verdict"], rows)
    missed = [t for _, t in targets if t.met is False]
    if missed:
        out += ["Missed, by how much, and why:", ""]
        for t in missed:
            reason = t.why or "No cause found yet; the run's other figures may say whether the machine was busy."
            out.append(f"- **{t.name}**: {t.shown()} against {t.shown(t.limit)} ({t.verdict.lower()}). {reason}")
        out.append("")
    return out


def _img(name: str) -> str:
    return f"img/{name}"


def _decide_section(result: dict[str, Any], images: dict[str, str]) -> list[str]:
    cases = result["cases"]
    out = [
        "## Deciding in process (`python -m bench.decide`)",
        "",
        "The compiler issue's workload (`bench/workload.py`): rules over a handful of categorical context and",
        "profile attributes and 48 counters, three slots, 2-4 predicates per rule (`==`, `in`, `>`), each rule",
        f"true for about 0.35% of requests. {result['requests']:,} requests with every feature supplied, all three",
        "slots per decision. The contenders: a hand-written-style Python if-chain (one `if` per rule in priority",
        "order), a naive interpreter walking each rule's tree, GoRules zen-engine decision tables (one table per",
        "slot, hit policy first; only `evaluate` is timed), and the compiled engine (`Engine.decide`). Each is",
        "first checked to decide every request as the naive interpreter does. Median of repeated batches with",
        "the cyclic collector paused, contenders interleaved (the compiled engine right after the if-chain);",
        "the two slow ones on the first few hundred requests.",
        "",
    ]
    if "decide" in images:
        out += [f"![Per-decision time against rule count]({_img(images['decide'])})", ""]
    header = ["per decision (median)"] + [f"{case['rules']:,} rules" for case in cases]
    rows = []
    for name in (IF_CHAIN, NAIVE, ZEN, COMPILED):
        if not any(name in case["us"] for case in cases):
            continue
        cells = []
        for case in cases:
            value = case["us"].get(name)
            if value is None:
                cells.append("-")
            elif name == IF_CHAIN:
                cells.append(_us(value))
            else:
                cells.append(f"{_us(value)} ({case['ratio'][name]:.2f}x)")
        label = f"**{LABELS[name]}**" if name == COMPILED else LABELS[name]
        rows.append([label, *cells])
    out += _table(header, rows)
    out += [
        "In brackets: the time as a multiple of the if-chain's at the same rule count (the median of the",
        "repeats' ratios, each against the if-chain batch of the same repeat).",
        "Slots left to their default: "
        + ", ".join(f"{case['default_share'] * 100:.0f}% at {case['rules']:,} rules" for case in cases)
        + " (with few rules most requests match none).",
        "",
    ]
    if not result.get("zen"):
        out += ["zen-engine was not installed for this run, so it is left out (`pip install zen-engine`).", ""]
    for case in cases:
        out += [f"Note ({case['rules']:,} rules): {note}" for note in case["notes"]]
    return out


def _compile_section(
    decide_result: dict[str, Any] | None, memory: Sequence[dict[str, Any]], images: dict[str, str]
) -> list[str]:
    out = [
        "## Compile time and memory (`python -m bench.memory`)",
        "",
        "Compile time is `tailor.loads` plus `Engine` on text not seen before: parse, check, plan, generate",
        "code (the median of three runs, one above 10,000 rules). Memory is measured in a fresh process per",
        "rule count: the resident set size a compiled ruleset adds once compiling is over and freed memory is",
        "handed back, and the high-water mark while compiling (a hot reload holds it beside the served version).",
        "",
    ]
    if "compile" in images:
        out += [f"![Compile time and memory against rule count]({_img(images['compile'])})", ""]
    shapes = [row for row in memory if "shape" in row]
    memory = [row for row in memory if "shape" not in row]
    compile_s = {case["rules"]: case.get("compile_s") for case in (decide_result or {}).get("cases", [])}
    held = {row["rules"]: row for row in memory}
    rows = []
    for n in sorted(set(compile_s) | set(held)):
        row = held.get(n)
        seconds = compile_s.get(n)
        rows.append(
            [
                f"{n:,}",
                f"{seconds:.2f} s" if seconds is not None else "-",
                _mb(row["retained_bytes"]) if row else "-",
                f"{row['retained_per_1000_mb']:.1f} MB" if row else "-",
                _mb(row["peak_bytes"]) if row else "-",
            ]
        )
    out += _table(["rules", "compile", "held while serving", "per 1,000 rules", "peak while compiling"], rows)
    if memory:
        largest = max(memory, key=lambda row: row["rules"])
        out += [
            f"**Memory per 1,000 rules: {largest['retained_per_1000_mb']:.1f} MB** (at {largest['rules']:,} rules).",
            "It is the plan (each rule, its conjunctions, their predicates and the predicate tables), the generated",
            "code and each file's source text; the checked program (every rule's syntax tree with its spans) is not",
            "kept, but parsed again from the source when a diff or a test asks for it.",
            "",
        ]
    if shapes:
        out += [
            "The scaling issue's shapes, measured the same way (see the parsing section for what they are):",
            "",
            *_table(
                ["shape", "rules", "held while serving", "per 1,000 rules", "peak while compiling"],
                [
                    [
                        SHAPE_LABELS.get(row["shape"], row["shape"]),
                        f"{row['rules']:,}",
                        _mb(row["retained_bytes"]),
                        f"{row['retained_per_1000_mb']:.1f} MB",
                        _mb(row["peak_bytes"]),
                    ]
                    for row in shapes
                ],
            ),
        ]
    return out


def _parse_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    shapes = parse.shape_rows(list(rows))
    edits = [row for row in rows if "edit" in row]
    rows = parse.parse_rows(list(rows))
    out = [
        "## Parsing (`python -m bench.parse`)",
        "",
        "Cold parses of generated files (median of five; one in a quick run); the 10,000-rule file with 3-5",
        "conditions per rule is about the size of the reference file in the language issue. A cached re-parse",
        "is a reload of an unchanged file, which only hashes it.",
        "",
    ]
    table = [
        [
            f"{int(row['rules']):,}",
            f"{row['bytes'] / 1e6:.2f} MB",
            f"{int(row['tokens']):,}",
            f"{row['parse_s']:.2f} s",
            f"{row['cached_s'] * 1000:.1f} ms",
        ]
        for row in rows
    ]
    out += _table(["rules", "size", "tokens", "parse", "cached re-parse"], table)
    if shapes:
        out += _shapes_section(shapes)
    for row in edits:
        cpu = "edit_cpu_s" in row  # results saved before CPU time was measured have wall time only
        out += [
            "### Recompiling after a one-file edit",
            "",
            f"A ruleset of {row['files']} files, {row['rules']:,} rules in all, compiled in one process as a"
            " server's compile worker does; then one rule's priority changed in one file and the ruleset compiled"
            " again, the parse cache keeping the other files' trees and the file cache their checks and normal"
            " forms." + (" The share is of CPU time, which the machine's other load does not stretch." if cpu else ""),
            "",
        ]
        header = ["files", "rules", "cold compile", "after a one-file edit", "share"]
        cells = [f"{row['files']}", f"{row['rules']:,}", f"{row['cold_s']:.2f} s", f"{row['edit_s']:.2f} s"]
        if cpu:
            header[4:4] = ["cold, CPU", "after the edit, CPU"]
            share = row["edit_cpu_s"] / row["cold_cpu_s"]
            cells += [f"{row['cold_cpu_s']:.2f} s", f"{row['edit_cpu_s']:.2f} s", f"{share:.2f}x"]
        else:
            cells.append(f"{row['edit_s'] / row['cold_s']:.2f}x")
        out += _table(header, [cells])
    return out


def _shapes_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [
        "### Compile and lint at scale",
        "",
        'The scaling issue\'s two shapes (`bench/workload.py`): one rule per SKU (`context.sku == "sku-N"`, an',
        "attribute with as many values as there are rules, with some bundles written `in [...]`), and the",
        "workload's low-cardinality rules spread over 20 slots. Compile is `tailor.loads` plus `Engine` on text",
        "not seen before; lint is `tailor lint` on the file (read, parse, check, plan, analyses), the pre-commit",
        "hook. One run of each.",
        "",
    ]
    table = [
        [
            SHAPE_LABELS.get(row["shape"], row["shape"]),
            f"{int(row['rules']):,}",
            f"{row['bytes'] / 1e6:.2f} MB",
            f"{row['compile_s']:.2f} s",
            f"{row['lint_s']:.2f} s",
            f"{int(row['warnings']):,}",
        ]
        for row in rows
    ]
    return out + _table(["shape", "rules", "size", "compile", "lint", "warnings"], table)


def _oracle_section(result: dict[str, Any], images: dict[str, str]) -> list[str]:
    out = [
        "## Fetches and model runs against a perfect oracle (`python -m bench.oracle`)",
        "",
        "The compiler promises one store round trip per decision and a model run only when cheaper conditions",
        "cannot settle the answer. To hold it to that, an oracle that knows every value (it reads all of a",
        "user's features and runs every model, uncounted) works out the least each decision needs: a proof",
        "that the winning rule of every slot is true and every rule ranked above it is not, under the",
        "language's three-valued logic, with no store read if one exists, and with the fewest models. Its",
        "feature count is that of a small proof found greedily, an upper bound on the least.",
        "",
        f"The engine is the serving path (`DecisionService` over `RedisStore`), on {result['users']:,} seeded",
        f"users ({result['events']:,} events), every slot requested. Two rulesets: the retail example (9 rules,",
        "one model, `p_click`), and a generated one of 1,000 rules of which "
        f"{result['generated_model_share'] * 100:.0f}% also require `p_click` above a threshold.",
        "The engine's decisions equal the oracle's on every request (checked), and it never needs less than",
        "the oracle's least (checked: that would be a bug in one of them).",
        "",
    ]
    if "oracle" in images:
        out += [f"![The engine's fetches and model runs beside the oracle's least]({_img(images['oracle'])})", ""]
    rows = []
    for name, w in result["workloads"].items():
        engine, least, excess = w["engine"], w["oracle"], w["excess"]
        rows.append(
            [
                f"{name} ({w['rules']:,} rules), {w['requests']:,} requests",
                f"{engine['round_trips']:.3f} / {least['round_trips']:.3f}",
                f"{engine['models']:.3f} / {least['models']:.3f}",
                f"{engine['inferences']:.3f}",
                f"{engine['features']:.1f} / {least['features']:.1f}",
                f"{excess['round_trips']} / {excess['models']}",
            ]
        )
    out += _table(
        [
            "per decision: engine / oracle",
            "round trips",
            "models needed",
            "inferences run",
            "store features",
            "decisions above the oracle (trips / models)",
        ],
        rows,
    )
    out += [
        '"Inferences run" is below "models needed" where the prediction cache (60 s per user and input row)',
        "answered. The engine reads more features than a minimal proof: stage 1 fetches, in its one round trip,",
        "every feature a surviving candidate might need, because learning which ones matter would take a",
        "second round trip. The extra features ride in the same Lua script: they cost Redis CPU and a little",
        "script time, not another round trip.",
        "",
    ]
    return out


def _models_section(result: dict[str, Any]) -> list[str]:
    rows = [
        ["one inference, one row", _us(result["inference_us"])],
        ["a decision that runs the model", _us(result["with_model_us"])],
        ["the same decision when the model is not needed", _us(result["without_model_us"])],
        ["**extra cost of a decision that needs one model**", f"**{_us(result['extra_us'])}**"],
    ]
    return [
        "## Models (`python -m bench.models`)",
        "",
        "The retail example's `p_click` (LightGBM, 100 trees, 14 inputs, ONNX Runtime with one thread), with",
        "the prediction cache off so every decision that needs it runs it.",
        "",
        *_table(["", "median"], rows),
        "The extra cost is the inference plus assembling its inputs from values the decision already fetched.",
        "",
    ]


def _serve_section(result: dict[str, Any], images: dict[str, str]) -> list[str]:
    s, floor, server, local = result["settings"], result["floor"], result["server"], result["in_process"]
    seeded = result["seed"]
    out = [
        "## Serving over HTTP (`python -m bench.serve`)",
        "",
        f"`tailor serve` with Redis and {result['rules']:,} rules, against a *floor* measured in the same run: a",
        "minimal FastAPI app that parses the same request model and makes one pipelined Redis call",
        f"({floor_app.COMMANDS} `HMGET`s on the user's keys), served the same way (uvicorn, uvloop, httptools, one",
        f"worker, orjson). Redis holds {seeded['users']:,} users and {seeded['events']:,} events. The load generator",
        "(raw keep-alive HTTP/1.1 on loopback) shares the cores with both servers and Redis. Saturation:",
        f"{s['saturation_connections']} connections back to back for {s['saturation_seconds']:g} s. Latency: open",
        f"loop at {s['rate']:g} requests/s for {s['open_seconds']:g} s, from each request's scheduled send time.",
        f"{s['rounds']} round(s), floor and server back to back; ratios are the median of the rounds' ratios.",
        "",
    ]
    if "serve" in images:
        out += [f"![Latency CDF and saturation throughput, server and floor]({_img(images['serve'])})", ""]
    flames = [f"- [{caption}]({_img(images[key])})" for key, (_, caption) in FLAME_GRAPHS.items() if key in images]
    if flames:
        out += [
            "Where the server's CPU goes at saturation, sampled by py-spy (flame graphs that",
            "`python -m bench.profile` draws):",
            "",
            *flames,
            "",
        ]
    rows = [
        [
            "decisions/s at saturation",
            f"{floor['throughput']:,.0f}",
            f"{server['throughput']:,.0f}",
            f"{server['throughput'] / floor['throughput']:.2f}x",
        ],
        [
            f"p50 at {s['rate']:g}/s",
            _ms(floor["p50_ms"]),
            _ms(server["p50_ms"]),
            f"{server['p50_ms'] / floor['p50_ms']:.2f}x",
        ],
        [
            f"p99 at {s['rate']:g}/s",
            _ms(floor["p99_ms"]),
            _ms(server["p99_ms"]),
            f"{server['p99_ms'] / floor['p99_ms']:.2f}x",
        ],
    ]
    out += _table(["", "floor", "`/v1/decide`", "ratio"], rows)
    agreed = result["agreement"]
    out += [
        f"Redis round trips per decision: {server['round_trips_per_decision']:.3f} ({server['round_trips']:,} for",
        f"{server['decisions']:,} decisions, from the server's `/metrics`). Degraded decisions: {server['degraded']}.",
        f"Answers that were not 200: floor {floor['not_ok']}, server {server['not_ok']}. Other processes' load on",
        f"the machine during the rounds: {result['other_load_cores']:.2f} cores.",
        "",
        f"Server overhead over the in-process engine: the engine decides these requests in "
        f"{local['engine_p50_ms'] * 1000:.0f} µs (p50) with features supplied ({local['features_per_decision']:.0f}"
        f" per decision); over HTTP with Redis the p50 is {_ms(server['p50_ms'])}, of which the store read",
        f"(one Lua script) is about {_ms(local['store_read_p50_ms'])}. {agreed['agreed']} of {agreed['checked']}",
        "HTTP decisions checked against the in-process engine on the same stored features agree.",
        "",
    ]
    if "logged" in result:
        out += _log_rows(result)
    if "floor_free" in result:
        out += _free_floor_rows(result)
    if "site" in result:
        out += _free_floor_rows(result["site"])
    return out


def _free_floor_rows(result: dict[str, Any]) -> list[str]:
    """The floor issue's comparison: the server against the layout-free floor, on one workload."""
    s, seeded, floor, free, server = (result[key] for key in ("settings", "seed", "floor", "floor_free", "server"))
    flags = " ".join(f"`{flag}`" for flag in result["server_flags"]) or "the defaults with `--redis`"
    out = [
        f"**Against the layout-free floor, {result['title']}.** The same floor app making one Redis call with",
        f"{floor_app.COMMANDS_FREE} command: an `HMGET` of one hash per user holding every bucket the workload reads,",
        f"written by the benchmark from the same events. Redis holds {seeded['users']:,} users and",
        f"{seeded['events']:,} events; the server runs with {flags}. The layout-copying floor above runs in the same",
        "rounds; ratios are the median of the rounds' ratios to the layout-free floor.",
        "",
    ]
    rows = [
        [
            label,
            fmt(floor[key]),
            fmt(free[key]),
            fmt(server[key]),
            f"{serve.paired(server, free, by_round):.2f}x" if by_round in free else f"{server[key] / free[key]:.2f}x",
        ]
        for label, key, by_round, fmt in (
            ("decisions/s at saturation", "throughput", "throughputs", lambda v: f"{v:,.0f}"),
            (f"p50 at {s['rate']:g}/s", "p50_ms", "p50_ms_by_round", _ms),
            (f"p99 at {s['rate']:g}/s", "p99_ms", "p99_ms_by_round", _ms),
        )
    ]
    out += _table(["", "layout-copying floor", "layout-free floor", "`/v1/decide`", "ratio to layout-free"], rows)
    agreed = result["agreement"]
    out += [
        f"CPU per request at {s['rate']:g}/s: layout-free floor {free['cpu_ms_per_decision']:.2f} ms + Redis",
        f"{free['redis_cpu_ms_per_decision']:.3f} ms; server {server['cpu_ms_per_decision']:.2f} ms + Redis",
        f"{server['redis_cpu_ms_per_decision']:.3f} ms. Degraded decisions: {server['degraded']}; not 200: layout-free",
        f"floor {free['not_ok']}, server {server['not_ok']}; {agreed['agreed']} of {agreed['checked']} HTTP decisions",
        "agree with the in-process engine.",
        "",
    ]
    return out


def _log_rows(result: dict[str, Any]) -> list[str]:
    """The decision log's cost: the same server with the log on against it with the log off, back to back."""
    s, server, logged = result["settings"], result["server"], result["logged"]
    flags = " ".join(f"`{flag}`" for flag in logged["flags"]) or "the default with `--redis`"
    out = [
        f"**The decision log.** A third `tailor serve` runs with the log on ({flags}: every decision to the Redis",
        "Stream in the same Redis), and the server above with `--decision-log off`; the three run in each round,",
        "the two servers back to back. Ratios: the median of the rounds' ratios of on to off.",
        "",
    ]
    rows = [
        [
            label,
            fmt(server[key]),
            fmt(logged[key]),
            f"{serve.paired(logged, server, by_round):.2f}x" if by_round else f"{logged[key] / server[key]:.2f}x",
        ]
        for label, key, by_round, fmt in (
            ("decisions/s at saturation", "throughput", "throughputs", lambda v: f"{v:,.0f}"),
            (f"p50 at {s['rate']:g}/s", "p50_ms", "p50_ms_by_round", _ms),
            (f"p99 at {s['rate']:g}/s", "p99_ms", None, _ms),
        )
    ]
    out += _table(["", "log off", "log on", "ratio"], rows)
    counts = ", ".join(f"{outcome} {count:,}" for outcome, count in logged["log"].items())
    out += [f"Records of the logged server during the rounds: {counts}.", ""]
    return out


def _ingest_section(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    rows = []
    for store in ingest.STORES:
        for phase, label in (("alone", "decisions alone"), ("beside", f"beside {result['batch']:,}-event batches")):
            found = result[store][phase]
            rows.append(
                [
                    f"{store}, {label}",
                    f"{found['decisions']:,}",
                    f"{found['degraded_share'] * 100:.1f}%",
                    _ms(found["p50_ms"]),
                    _ms(found["p99_ms"]),
                    f"{found['events_per_s']:,.0f}" if phase == "beside" else "-",
                    _gc_cell(found.get("gc")),
                ]
            )
    return [
        "## Ingest beside decide (`python -m bench.ingest`)",
        "",
        f"A real `tailor serve` on the {result['rules']:,}-rule ruleset answers decisions for "
        f"{settings['users']:,} users",
        f"(their features read from the store) at {settings['rate']:g} requests/s for {settings['seconds']:g} s, "
        "first alone, then",
        f"while one client posts batches of {result['batch']:,} events (the most one `POST /v1/events` takes) "
        "back to back",
        f"for the same users, on each store. A decision that misses its {ingest.DEADLINE_MS:g} ms deadline is answered",
        "degraded; the share degraded is from the server's metrics, and so are the pauses of its garbage",
        f"collector (full collections, and those longer than {float(ingest.LONG_PAUSE) * 1000:g} ms of any "
        "generation).",
        "",
        *_table(["store, load", "decisions", "degraded", "p50", "p99", "events/s", "GC pauses"], rows),
    ]


def _gc_cell(gc: dict[str, dict[str, float]] | None) -> str:
    """A phase's garbage-collector pauses, in a table cell ("-" for runs from before they were measured)."""
    if gc is None:
        return "-"
    full = gc["2"]
    long = sum(found["long"] for found in gc.values())
    return f"{full['pauses']} full ({_ms(full['seconds'] * 1000)}), {long} long"


def _stream_section(result: dict[str, Any]) -> list[str]:
    rows = [
        [
            label,
            f"{found['events']:,}",
            f"{found['wall_s']:.2f} s",
            f"{found['events_per_s']:,.0f}",
            f"{found['cpu_s']:.2f} s",
            f"{found['events_per_cpu_s']:,.0f}",
            _us(found["redis_us_per_event"]),
        ]
        for label, found in (("read and acknowledge (floor)", result["floor"]), ("ingest", result["ingest"]))
    ]
    measured = (
        [f"Measured with `{result['command']}` on {result['date']}, apart from the run above.", ""]
        if "command" in result
        else []
    )
    in_flight = result.get("in_flight", 1)  # runs before the loop kept batches under way took turns
    window = (
        f"with up to {in_flight} batches under way (the next read and checked while one is stored)"
        if in_flight > 1
        else "one batch at a time"
    )
    return [
        "## Stream ingestion (`python -m bench.stream`)",
        "",
        f"{result['events']:,} view events in a Redis Stream are read by one ingester (the loop `tailor ingest`",
        f"runs) as a consumer group, {result['batch']} per read; each batch is stored in Redis and then",
        f"acknowledged, {window}. The floor reads and acknowledges the same stream without storing anything. "
        "Events/s is",
        "over the wall time of one process; events per CPU second counts that process's CPU alone, and Redis's",
        "CPU per event is the server's own (on the same machine). The machine's load average when the run began: "
        f"{result['load_average']:.1f} on {result['cpus']} CPUs.",
        "",
        *measured,
        *_table(["", "events", "wall time", "events/s", "CPU time", "events per CPU second", "Redis CPU/event"], rows),
        f"**Ingesting runs at {result['share_of_floor']:.0%} of the floor's rate.**",
        "",
    ]


def _scale_out_section(result: dict[str, Any]) -> list[str]:
    rows = [
        [f"{n + 1}", f"{one:,.0f}", f"{two:,.0f}", f"{ratio:.2f}x"]
        for n, (one, two, ratio) in enumerate(zip(result["one"], result["two"], result["ratios"], strict=True))
    ]
    measured = (
        [f"Measured with `{result['command']}` on {result['date']}, apart from the run above.", ""]
        if "command" in result
        else []
    )
    settings = result["settings"]
    return [
        "## Scaling out over a Redis Cluster (`python -m bench.scale_out`)",
        "",
        "A local Redis Cluster (three masters, three replicas) holds the users of the serving benchmark",
        f"({result['events']:,} events). One `tailor serve` is saturated alone, then two together, the load",
        f"split evenly ({settings['connections']} connections each, {settings['seconds']:g} s per phase, the order",
        "alternating by round); the ratio is the median of the rounds' ratios, two over one. The load",
        f"generator, the servers and the six Redis nodes share the machine's {result['cpus']} CPUs, so two",
        "servers cannot be twice one here: the figure says what one more process buys on a full machine,",
        "not what a second machine would.",
        "",
        *measured,
        *_table(["round", "one server, decisions/s", "two servers, decisions/s", "ratio"], rows),
        f"**Two servers over the cluster: {result['ratio']:.2f}x one.**",
        "",
    ]


def _reload_section(result: dict[str, Any]) -> list[str]:
    return _save_to_serve(result) + (_beside_reload(result["beside"]) if "beside" in result else [])


def _beside_reload(result: dict[str, Any]) -> list[str]:
    idle, during = result["idle"], result["during"]
    seconds = result["reload_s"]
    took = f"{seconds[0]:.1f} s" if len(seconds) == 1 else f"{min(seconds):.1f} to {max(seconds):.1f} s each"
    return [
        f"Decisions while a {result['rules']:,}-rule ruleset reloads: the same server answers decisions",
        f"(every feature supplied) at {result['rate']:g} requests/s with nothing else going on, then from a",
        f"save until the first response that names the new version ({len(seconds)} reload(s), {took}).",
        "The compile runs in the reloader's worker process, so it does not compete with the decisions for",
        "the interpreter; the server only loads its result, which is the slow tail.",
        "",
        *_table(
            ["", "decisions", "p50", "p99"],
            [
                ["no reload", f"{idle['decisions']:,}", _ms(idle["p50_ms"]), _ms(idle["p99_ms"])],
                ["during the reload", f"{during['decisions']:,}", _ms(during["p50_ms"]), _ms(during["p99_ms"])],
            ],
        ),
        f"**p50 during the reload: {result['ratio']:.2f}x the p50 without.**",
        "",
    ]


def _replay_section(result: dict[str, Any]) -> list[str]:
    return [
        "## Replaying the decision log (`python -m bench.replay`)",
        "",
        f"`tailor diff` on {result['decisions']:,} logged decisions of the retail example (an export file of "
        f"{result['log_mib']:.1f} MiB): each record is read, parsed and decided again by the version that",
        "served it and by one with a moved threshold, and the diff accumulated. The rate is per core (the CPU",
        "time of one process); the log is streamed, never held whole, so memory does not grow with it.",
        "",
        *_table(
            ["decisions", "CPU time", "decisions/s per core", "changed", "memory growth"],
            [
                [
                    f"{result['decisions']:,}",
                    f"{result['seconds']:.2f} s",
                    f"{result['rate']:,.0f}",
                    f"{result['changed']:,}",
                    f"{result['rss_growth_mib']:.1f} MiB",
                ]
            ],
        ),
    ]


def _save_to_serve(result: dict[str, Any]) -> list[str]:
    times = result["times_s"]
    return [
        "## Hot reload (`python -m bench.reload`)",
        "",
        f"A real `tailor serve` on a {result['rules']:,}-rule ruleset in one file; each save changes one rule's",
        "priority, and the time runs from the write until the first decision that names the new version. Most of",
        "it is the compile; the watcher waits 50 ms of quiet before it reports a batch of changes.",
        "",
        *_table(
            ["saves", "median", "fastest", "slowest"],
            [[str(len(times)), _ms(result["median_s"] * 1000), _ms(min(times) * 1000), _ms(max(times) * 1000)]],
        ),
    ]


def _reproduce_section(
    meta: dict[str, Any], *, ingested: bool, replayed: bool = False, streamed: bool = False
) -> list[str]:
    return [
        "## Reproducing",
        "",
        'After `pip install -e ".[dev]"`, with Redis on 127.0.0.1:6379 (the benchmarks use database '
        f"{meta['db']} and empty it):",
        "",
        "```",
        "python -m bench            # everything, 7 to 10 minutes; rewrites this page and docs/img/perf-*.png",
        "python -m bench --quick    # under a minute, into build/bench/; CI runs it",
        "python -m bench --from docs/performance.json   # redraw the page and pictures without measuring",
        "```",
        "",
        "Each section's module also runs alone and prints its own figures: "
        + ", ".join(f"`python -m bench.{name}`" for name in ("decide", "memory", "parse", "oracle", "models", "serve"))
        + (", `python -m bench.ingest`" if ingested else "")
        + (", `python -m bench.stream`" if streamed else "")
        + ", `python -m bench.reload`"
        + (", `python -m bench.replay`." if replayed else "."),
        "",
    ]


def target_list(results: dict[str, Any]) -> list[tuple[str, Target]]:
    """Every target the result can speak to, with its area."""
    found: list[tuple[str, Target]] = []
    if "parse" in results:
        found += [("language", t) for t in parse.targets(results["parse"])]
        found += [("scaling", t) for t in parse.shape_targets(results["parse"])]
        found += [("floor", t) for t in parse.edit_targets(results["parse"])]
    if "decide" in results:
        found += [("compiler", t) for t in decide.targets(results["decide"])]
        found += [("floor", t) for t in decide.compile_targets(results["decide"])]
    if "memory" in results:
        found += [("floor", t) for t in memory.targets(results["memory"])]
    if "oracle" in results:
        found += [("compiler", t) for t in oracle.targets(results["oracle"])]
    if "serve" in results:
        found += [("runtime", t) for t in serve.targets(results["serve"])]
        found += [("floor", t) for t in serve.free_targets(results["serve"])]
    if "ingest" in results:
        found += [("hardening", t) for t in ingest.targets(results["ingest"])]
    if "stream" in results:
        found += [("scale-out", t) for t in stream.targets(results["stream"])]
    if "scale_out" in results:
        found += [("scale-out", t) for t in scale_out.targets(results["scale_out"])]
    if "reload" in results:
        found += [("runtime", t) for t in reload.targets(results["reload"]["times_s"])]
        if "beside" in results["reload"]:
            found += [("hardening", t) for t in reload.beside_targets(results["reload"]["beside"])]
    if "models" in results:
        found += [("models", t) for t in models.targets(results["models"])]
    if "replay" in results:
        found += [("runtime", t) for t in replay.targets(results["replay"])]
    return found
