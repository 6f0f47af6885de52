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
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .ports import free_port
from .targets import Target
from .workload import ruleset_text

TARGET_S = 1.0
POLL_S = 0.005
TIMEOUT_S = 60.0


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--saves", type=int, default=9)
    args = parser.parse_args()
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
