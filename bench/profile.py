"""Where a decision's CPU goes: the server profiled at saturation, and its CPU per decision at a fixed rate.

Run: python -m bench.profile [--workload bench|site] [--logged] [--seconds N] [--out DIR]
     [--rate R --cpu-seconds N --cpu-rounds N] [--speedscope] [--stacks FILE] [--redis URL] [--db N]

The server starts as ``bench.serve`` starts it (the same seeding, ruleset,
flags and requests; its functions, not copies): the workload's server, or
with ``--logged`` the bench workload's logged one (``LOGGED_FLAGS``: the
Stream log and every served slot kept as an impression). It is driven at
saturation by ``bench.loadgen``'s closed loop while ``py-spy record``
samples it from outside (non-blocking, so the profile does not slow it),
and the flame graph is written to ``DIR/flame-decide-NAME.svg`` (NAME: the
workload, with ``-logged`` for the logged server). The most sampled
functions, self and inclusive, are printed from the same samples (kept as
collapsed stacks with ``--stacks``).

With ``--cpu-seconds``, before the profile, the server is also sent
``--rate`` requests a second for that long (``--cpu-rounds`` times) without
the profiler attached, and the CPU the server process and Redis spent
(``/proc``'s utime+stime, ``INFO cpu``) is printed per decision: on a shared
machine that is steadier than wall-clock latencies. Redis's figure includes
whatever else uses the same Redis at the time. ``--seconds 0`` measures
that alone, without a profile.

py-spy is a development tool (the ``dev`` extra), not the server's.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from . import loadgen, serve
from .ports import free_port
from .serve_workloads import BENCH, LOGGED_FLAGS, WORKLOADS, ServeWorkload

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "img"
SAMPLE_RATE = 200  # py-spy samples a second
TOP = 25  # functions printed, self and inclusive


def flame_graph_name(workload: str, logged: bool = False) -> str:
    """The flame graph's file name: what ``bench.report`` links in the serving section."""
    return f"flame-decide-{workload}{'-logged' if logged else ''}.svg"


# The flame graphs the report's serving section links when they are beside its pictures: key -> (file, caption).
FLAME_GRAPHS = {
    "flame-bench": (flame_graph_name("bench"), "bench.serve's workload, the decision log off"),
    "flame-bench-logged": (
        flame_graph_name("bench", logged=True),
        "bench.serve's workload, the decision log on with --impressions served",
    ),
    "flame-site": (flame_graph_name("site"), "the real-site workload, the decision log on (the Stream)"),
}


def flame_graphs(directory: Path) -> dict[str, str]:
    """The flame graphs found in ``directory``, as ``bench.report`` takes its pictures: key -> file name."""
    return {key: name for key, (name, _) in FLAME_GRAPHS.items() if (directory / name).is_file()}


@dataclass(frozen=True)
class CpuPerDecision:
    decisions: int
    server_ms: float
    redis_ms: float

    def line(self) -> str:
        return (
            f"CPU per decision over {self.decisions:,} decisions: server {self.server_ms:.3f} ms, "
            f"Redis {self.redis_ms:.3f} ms, together {self.server_ms + self.redis_ms:.3f} ms"
        )


def cpu_per_decision(
    process: serve.Process, client: redis.Redis, requests: Sequence[bytes], rate: float, seconds: float
) -> CpuPerDecision:
    """The server's and Redis's CPU over an open loop at ``rate``, per completed decision."""
    pid = process.popen.pid
    cpu, store_cpu = serve.process_cpu(pid), serve.redis_cpu(client)
    result = loadgen.run(
        loadgen.open_loop(process.port, requests, rate, seconds, connections=serve.FULL.open_connections)
    )
    cpu, store_cpu = serve.process_cpu(pid) - cpu, serve.redis_cpu(client) - store_cpu
    done = max(result.completed, 1)
    return CpuPerDecision(result.completed, cpu / done * 1000, store_cpu / done * 1000)


def record(pid: int, seconds: float, output: Path, form: str) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` for ``seconds`` without pausing it, writing ``output`` in ``form``."""
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed (pip install -e '.[dev]')")
    args = ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    args += ["--rate", str(SAMPLE_RATE), "--nonblocking", "--format", form, "--output", str(output)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def retitle(svg: Path, title: str) -> None:
    """Give the flame graph ``title``: py-spy titles it with its own command line, paths of this machine."""
    text = svg.read_text()
    svg.write_text(re.sub(r'(<text id="title"[^>]*>)[^<]*(</text>)', rf"\g<1>{html.escape(title)}\g<2>", text, count=1))


def summary(collapsed: str, top: int = TOP) -> list[str]:
    """The most sampled functions in py-spy's collapsed stacks: self time, then inclusive time."""
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            within[frame] += samples
    if not total:
        return ["no samples"]
    out = [f"{total:,} samples; self:"]
    out += [f"  {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    out += ["inclusive:"]
    out += [f"  {count / total:6.1%}  {name}" for name, count in within.most_common(top)]
    return out


def _frame(frame: str) -> str:
    """``function (path/to/module.py:line)`` as ``function (module.py)``: one entry a function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition('/')[2].rpartition(':')[0] or where.rstrip(')')})"


def profile(
    workload: ServeWorkload,
    logged: bool,
    seconds: float,
    out: Path,
    *,
    redis_base: str | None,
    db: int,
    users: int | None,
    rate: float,
    cpu_seconds: float,
    cpu_rounds: int,
    speedscope: bool,
    stacks: Path | None,
) -> None:
    settings = serve.FULL
    users = users or workload.users or settings.users
    url = serve.redis_url(redis_base, db)
    flags = LOGGED_FLAGS if logged else workload.server_flags
    name = flame_graph_name(workload.name, logged)
    serve.empty_db(url)
    workdir = Path(tempfile.mkdtemp(prefix="tailor-profile-"))
    process: serve.Process | None = None
    try:
        rules = workdir / "rules"
        rules.mkdir()
        (rules / "bench.rules").write_text(workload.ruleset)
        port = free_port()
        args = ["tailor.cli", "serve", str(rules), "--redis", url, *flags, "--port", str(port)]
        process = serve.start("server", args, port, workdir)
        print(f"... seeding {users:,} users; tailor serve {' '.join(flags)}", file=sys.stderr)
        serve.seed(url, users, events=workload.events)
        serve.wait_ready(process, "/readyz")
        requests = serve.encode(serve.make_requests(users, settings.pool), port)
        loadgen.run(loadgen.open_loop(port, requests, 200.0, 2.0, connections=4))  # warm up
        if cpu_seconds > 0:
            client = redis.Redis.from_url(url)
            try:
                for _ in range(cpu_rounds):
                    print(cpu_per_decision(process, client, requests, rate, cpu_seconds).line(), flush=True)
            finally:
                client.close()
        if seconds <= 0:
            return
        out.mkdir(parents=True, exist_ok=True)
        svg, raw = out / name, workdir / "stacks.txt"
        spies = [record(process.popen.pid, seconds, svg, "flamegraph"), record(process.popen.pid, seconds, raw, "raw")]
        if speedscope:
            spies.append(record(process.popen.pid, seconds, svg.with_suffix(".speedscope.json"), "speedscope"))
        time.sleep(0.5)  # py-spy attaches
        result = loadgen.run(
            loadgen.closed_loop(
                port, requests, connections=serve.FULL.saturation_connections, duration=seconds, warmup=0.0
            )
        )
        for spy in spies:
            _, err = spy.communicate(timeout=seconds + 60)
            if spy.returncode != 0:
                raise SystemExit(f"py-spy failed ({spy.returncode}):\n{err.decode(errors='replace')}")
        print(f"{result.throughput:,.0f} decisions/s at saturation while profiled; not 200: {result.errors}")
        retitle(svg, f"tailor serve {' '.join(flags)} at saturation ({workload.title}; python -m bench.profile)")
        print(f"wrote {svg}")
        collapsed = raw.read_text()
        if stacks is not None:
            stacks.write_text(collapsed)
        print("\n".join(summary(collapsed)))
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        serve.empty_db(url)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=[w.name for w in WORKLOADS], default="site")
    parser.add_argument("--logged", action="store_true", help="the bench workload's server with the decision log on")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to profile (default: 20; 0: not)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the flame graph goes (default: docs/img)")
    parser.add_argument("--users", type=int, help="users to seed (default: the workload's, as bench.serve)")
    parser.add_argument("--rate", type=float, default=serve.FULL.rate, help="requests/s for --cpu-seconds")
    parser.add_argument("--cpu-seconds", type=float, default=0.0, help="measure CPU per decision this long first")
    parser.add_argument("--cpu-rounds", type=int, default=1, help="how many times to measure it (default: 1)")
    parser.add_argument("--speedscope", action="store_true", help="also write the samples for speedscope")
    parser.add_argument("--stacks", type=Path, metavar="FILE", help="keep the collapsed stacks in FILE")
    parser.add_argument("--redis", metavar="URL", help="Redis (default: as bench.serve)")
    parser.add_argument("--db", type=int, default=serve.DEFAULT_DB, help="the database to seed and empty (not 0)")
    args = parser.parse_args(argv)
    workload = next(w for w in WORKLOADS if w.name == args.workload)
    if args.logged and workload is not BENCH:
        parser.error("--logged is the bench workload's second server")
    if not 0 <= args.seconds <= loadgen.MAX_SECONDS:
        parser.error(f"--seconds: at most {loadgen.MAX_SECONDS:g} (0: no profile)")
    profile(
        workload,
        args.logged,
        args.seconds,
        args.out,
        redis_base=args.redis,
        db=args.db,
        users=args.users,
        rate=args.rate,
        cpu_seconds=args.cpu_seconds,
        cpu_rounds=args.cpu_rounds,
        speedscope=args.speedscope,
        stacks=args.stacks,
    )


if __name__ == "__main__":
    main()
