"""``tailor diff``'s replay rate: logged retail decisions decided again by two versions, streamed from a file.

Run: python -m bench.replay [--decisions N]

A ``DecisionService`` on the retail example serves varied requests (each
supplying part of the store features, the rest from an empty memory store;
the click model runs where a rule reaches it) and its records are written as
an export file. The timed part is what ``tailor diff`` does with it: read the
file record by record and replay each through the served version and through
one with a moved threshold, accumulating the diff. One process, one thread:
the rate is per core. The resident memory it adds while replaying shows
that the log is streamed, never held whole.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from .targets import Target

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"
TARGET_RATE = 20_000.0  # decisions per second per core
FULL_DECISIONS = 100_000
QUICK_DECISIONS = 20_000
AT = 1767225600.0

_FEATURES: dict[str, tuple[Any, ...]] = {
    'views("Electronics", 24h)': (0, 1, 3, 5),
    'add_to_carts("Electronics", 7d)': (0, 0, 1, 2),
    'add_to_carts("Electronics", 1h)': (0, 1),
    'since("purchase")': (None, 2 * 86400, 45 * 86400),
    "user.tier": ("gold", "silver", "bronze"),
    'total("purchase", "any", 30d)': (0, 120, 650),
    'count("cart_abandoned", "any", 7d)': (0, 1, 2),
    "views(7d)": (0, 2, 4, 8),
}


def write_log(path: Path, decisions: int, seed: int = 0) -> None:
    """``decisions`` records of the retail example, served in process, as an export file."""
    from tailor.runtime.memory_store import MemoryStore
    from tailor.runtime.service import DecisionService

    rng = random.Random(seed)

    async def run() -> None:
        service = DecisionService(RETAIL, MemoryStore(), sample_every=0)
        service.install(service.prepare())
        with path.open("wb") as out:
            service.listen(lambda record: out.write(orjson.dumps(record.to_dict()) + b"\n"))
            for _ in range(decisions):
                user = f"u{rng.randrange(50_000)}"
                context = {
                    "page": rng.choice(("home", "home", "product", "cart")),
                    "category": rng.choice(("Electronics", "Garden")),
                    "cart_total": rng.choice((10, 40, 120)),
                    "device": rng.choice(("mobile", "desktop")),
                }
                features = {text: rng.choice(values) for text, values in _FEATURES.items() if rng.random() < 0.7}
                decided = await service.decide(user, context, None, features, AT)
                service.publish(decided, service.new_decision_id(), user, context, AT)

    asyncio.run(run())


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(decisions: int) -> dict[str, Any]:
    """Replay ``decisions`` logged decisions through the retail rules and a moved threshold; the rate."""
    import tailor
    from tailor.compiler.decide import Decider
    from tailor.runtime.decision_diff import replay_all
    from tailor.runtime.decision_log_reader import read_records
    from tailor.runtime.decision_replay import Replayer

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "decisions.ndjson"
        write_log(log, decisions)
        new_path = Path(tmp) / "retail"
        shutil.copytree(RETAIL, new_path)
        home = new_path / "home.rules"
        home.write_text(home.read_text().replace("p_click > 0.7", "p_click > 0.4"))
        old, new = tailor.load(RETAIL), tailor.load(new_path)
        before = Replayer(Decider(old))
        after = Replayer(Decider(new), {name: model.version for name, model in old.models.items()})
        rss = _rss_mib()
        started = time.process_time()  # CPU time: the rate per core, even on a busy machine
        diff = replay_all(read_records(log), before, after)
        seconds = time.process_time() - started
        grew = _rss_mib() - rss
        size = log.stat().st_size / 2**20
    if diff.decisions + diff.not_replayable != decisions:
        raise AssertionError(f"replayed {diff.decisions + diff.not_replayable} of {decisions} decisions")
    return {
        "decisions": decisions,
        "seconds": seconds,
        "rate": decisions / seconds,
        "changed": diff.changed,
        "log_mib": size,
        "rss_growth_mib": grew,
    }


def targets(result: dict[str, Any]) -> list[Target]:
    return [
        Target(
            f"tailor diff replay, retail, >= {TARGET_RATE:,.0f} decisions/s per core",
            result["rate"],
            TARGET_RATE,
            "/s",
            lower_is_better=False,
            why="both versions decide every record, and each record is parsed from JSON first",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=FULL_DECISIONS)
    args = parser.parse_args()
    result = run(args.decisions)
    print(
        f"replayed {result['decisions']:,} decisions in {result['seconds']:.2f} s of CPU: "
        f"{result['rate']:,.0f}/s per core; {result['changed']:,} changed; log {result['log_mib']:.1f} MiB, "
        f"memory grew {result['rss_growth_mib']:.1f} MiB"
    )
    for target in targets(result):
        print(target.line())


if __name__ == "__main__":
    main()
