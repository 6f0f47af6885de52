"""Save-to-serve time of hot reload: from writing a rules file to the first decision on the new version.

Run: python -m bench.reload [--rules 1000] [--files 1] [--saves 9]

Starts a real ``tailor serve`` on a generated ruleset (``bench.workload``),
then edits one rule's priority per save (a real change: a new version) and
polls ``POST /v1/decide`` until a response names the new version. The time
covers everything a user waits for: the file watcher noticing the change
(watchfiles waits for 50 ms of quiet), reading and parsing the changed file,
checking and compiling the whole ruleset in a thread, and the swap. Prints
each save's time and the median; the target is under 1 s for 1,000 rules.

With ``--files N`` the rules are spread over N files, so a save re-parses
only one of them (the parse cache keeps the rest).

``--beside RULES`` measures instead what a large reload costs the decisions
served meanwhile: a server on a RULES-rule ruleset answers decisions (every
feature supplied, so no store read) at a steady rate, first with nothing else
going on, then from a save until the first response that names the new
version, twice. The ratio of the two p50s is the figure; the target is at most
1.5, which a compile that competed with decisions for the interpreter (the
compile ran in a thread of the server until the compile worker process) could
not meet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import loadgen
from .ports import free_port
from .serve import percentile
from .targets import Target
from .workload import requests, ruleset_text

TARGET_S = 1.0
POLL_S = 0.005
TIMEOUT_S = 60.0
BESIDE_TARGET = 1.5  # decision p50 while a large reload compiles, as a multiple of the p50 without
BESIDE_RULES = 20_000
QUICK_BESIDE_RULES = 2_000
BESIDE_RATE = 200.0  # decisions per second, open loop
BESIDE_IDLE_S = 5.0
BESIDE_ROUNDS = 2
BESIDE_CONNECTIONS = 8
VERSION_POLL_S = 0.05


def split(text: str, files: int) -> list[str]:
    """The ruleset as ``files`` texts: declarations in the first, rules dealt out round-robin."""
    head, _, rules = text.partition("\nrule ")
    blocks = ["rule " + block for block in rules.split("\nrule ")] if rules else []
    parts = [head + "\n"] + [""] * (files - 1)
    for index, block in enumerate(blocks):
        parts[index % files] += block.rstrip("\n") + "\n\n"
    return parts


def served_version(url: str) -> str | None:
    request = urllib.request.Request(
        url + "/v1/decide",
        data=json.dumps({"user_id": "bench", "slots": []}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["ruleset"]["version"]
    except OSError:
        return None


def wait_for(condition, what: str) -> float:
    """Poll until ``condition()``; returns the time it took."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > TIMEOUT_S:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter() - start


def run(rules: int, files: int, saves: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        paths = [root / f"part{index:02d}.rules" for index in range(files)]
        for path, text in zip(paths, split(ruleset_text(rules), files), strict=True):
            path.write_text(text)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "tailor.cli", "serve", str(root), "--port", str(port), "--stats-sample", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: served_version(url) is not None, "the server to start")
            times = []
            target = paths[-1]
            for save in range(saves):
                before = served_version(url)
                text = target.read_text()
                edited, count = re.subn(r"priority \d+", f"priority {1000 + save}", text, count=1)
                assert count == 1, "no rule to edit"
                start = time.perf_counter()
                target.write_text(edited)
                wait_for(lambda before=before: served_version(url) not in (None, before), "the new version")
                times.append(time.perf_counter() - start)
                time.sleep(0.3)  # let the watcher settle between saves
            return times
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


def targets(times: list[float]) -> list[Target]:
    return [Target(f"save to serve, 1,000 rules < {TARGET_S:g} s", statistics.median(times), TARGET_S, " s")]


def beside(rules: int, rounds: int = BESIDE_ROUNDS, rate: float = BESIDE_RATE, idle_s: float = BESIDE_IDLE_S) -> dict:
    """Decision latencies over HTTP with no reload, then during reloads of a ``rules``-rule ruleset."""
    bodies = [json.dumps({"user_id": f"u{index}", **request}).encode() for index, request in enumerate(requests(500))]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        target = root / "main.rules"
        target.write_text(ruleset_text(rules))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "tailor.cli", "serve", str(root), "--port", str(port), "--stats-sample", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: served_version(url) is not None, "the server to start")
            encoded = [loadgen.post("/v1/decide", body, port) for body in bodies]
            loadgen.run(loadgen.open_loop(port, encoded, rate, 1.0, connections=BESIDE_CONNECTIONS))  # warm up
            idle: list[float] = []
            during: list[float] = []
            reloads: list[float] = []
            for index in range(rounds):
                result = loadgen.run(loadgen.open_loop(port, encoded, rate, idle_s, connections=BESIDE_CONNECTIONS))
                idle += result.latencies
                latencies, seconds = loadgen.run(_during_reload(port, url, target, encoded, rate, index))
                during += latencies
                reloads.append(seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    idle_p50, during_p50 = statistics.median(idle), statistics.median(during)
    return {
        "rules": rules,
        "rate": rate,
        "rounds": rounds,
        "reload_s": reloads,
        "idle": {"decisions": len(idle), "p50_ms": idle_p50 * 1000, "p99_ms": percentile(idle, 0.99) * 1000},
        "during": {"decisions": len(during), "p50_ms": during_p50 * 1000, "p99_ms": percentile(during, 0.99) * 1000},
        "ratio": during_p50 / idle_p50,
    }


async def _during_reload(
    port: int, url: str, target: Path, encoded: list[bytes], rate: float, save: int
) -> tuple[list[float], float]:
    """Latencies of the decisions sent from a save until the new version is served, and how long that took."""
    loop = asyncio.get_running_loop()
    before = await loop.run_in_executor(None, served_version, url)
    text = target.read_text()
    edited, count = re.subn(r"priority \d+", f"priority {2000 + save}", text, count=1)
    assert count == 1, "no rule to edit"
    served = asyncio.Event()
    probe = loadgen.post("/v1/decide", json.dumps({"user_id": "bench", "slots": []}).encode(), port)

    async def watch() -> None:
        while True:
            status, body = await loadgen.send(port, probe)
            if status == 200 and json.loads(body)["ruleset"]["version"] != before:
                served.set()
                return
            await asyncio.sleep(VERSION_POLL_S)

    start = time.perf_counter()
    target.write_text(edited)
    watcher = asyncio.create_task(watch())
    result = await loadgen.open_loop(port, encoded, rate, TIMEOUT_S, connections=BESIDE_CONNECTIONS, until=served)
    seconds = time.perf_counter() - start
    if not served.is_set():
        watcher.cancel()
        raise SystemExit(f"the reload did not finish within {TIMEOUT_S:g} s")
    await watcher
    return result.latencies, seconds


def beside_targets(result: dict) -> list[Target]:
    return [
        Target(
            f"decision p50 during a {result['rules']:,}-rule reload ≤ {BESIDE_TARGET:g}x the p50 without",
            result["ratio"],
            BESIDE_TARGET,
            "x",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--saves", type=int, default=9)
    parser.add_argument("--beside", type=int, metavar="RULES", help="measure decisions during a reload of RULES rules")
    args = parser.parse_args()
    if args.beside is not None:
        found = beside(args.beside)
        print(json.dumps(found, indent=1))
        for target in beside_targets(found):
            print(target.line())
        return
    times = run(args.rules, args.files, args.saves)
    for index, seconds in enumerate(times, 1):
        print(f"save {index}: {seconds * 1000:.0f} ms")
    median = statistics.median(times)
    print(
        f"save-to-serve, {args.rules:,} rules in {args.files} file(s): "
        f"median {median * 1000:.0f} ms over {len(times)} saves"
    )
    if args.rules == 1000:
        print("target:")
        for target in targets(times):
            print(target.line())


if __name__ == "__main__":
    main()
