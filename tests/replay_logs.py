"""Decision logs of the retail example for the diff tests: varied requests decided by a real ``DecisionService``.

Each request supplies a random part of the store features (the rest come from
an empty memory store: counts 0, the others missing), so the log holds
supplied, fetched and absent values alike, and the click model runs wherever
a rule reaches it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from decision_logs import Request

from tailor.compiler.features import FeatureRef
from tailor.runtime.decision_record import DecisionRecord
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"
AT = 1767225600.0

_FEATURES: dict[str, Any] = {
    'views("Electronics", 24h)': (0, 1, 3, 5),
    'add_to_carts("Electronics", 7d)': (0, 0, 1, 2),
    'add_to_carts("Electronics", 1h)': (0, 1),
    'since("purchase")': (None, 2 * 86400, 45 * 86400),
    "user.tier": ("gold", "silver", "bronze", "platinum"),
    'total("purchase", "any", 30d)': (0, 120, 650),
    'count("cart_abandoned", "any", 7d)': (0, 1, 2),
    "views(7d)": (0, 2, 4, 8),
    'clicks("Electronics", 7d)': (0, 1, 3),
    "views(24h)": (0, 3, 9),
}


def requests(count: int, seed: int = 0, users: int = 2000) -> list[Request]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        context = {
            "page": rng.choice(("home", "home", "product", "cart", "search")),
            "category": rng.choice(("Electronics", "Garden", "Books")),
            "cart_total": rng.choice((10, 40, 49.5, 60, 120)),
            "device": rng.choice(("mobile", "desktop", "tablet")),
        }
        features = {text: rng.choice(values) for text, values in _FEATURES.items() if rng.random() < 0.7}
        slots = rng.choice((None, None, ("hero",), ("hero", "sidebar", "cart_upsell")))
        made.append(Request(f"u{rng.randrange(users)}", context, features or None, slots))
    return made


class FlakyStore(MemoryStore):
    """A memory store that fails for one user in ``every``: those decisions are degraded (store_error)."""

    def __init__(self, every: int = 23):
        super().__init__()
        self.every = every

    async def fetch(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None) -> dict[str, Any]:
        if int(user_id.removeprefix("u")) % self.every == 0:
            raise ConnectionError("the store is down for this test")
        return await super().fetch(user_id, features, at)


def retail_log(
    count: int, path: Path = RETAIL, seed: int = 0, extra: dict[str, tuple[Any, ...]] | None = None
) -> list[DecisionRecord]:
    """``count`` decisions served by the rules at ``path`` (some degraded by a failing store); ``extra``: more
    features the requests may supply, by text, with their possible values."""
    records: list[DecisionRecord] = []
    made = requests(count, seed)
    if extra:
        rng = random.Random(seed + 1)
        for request in made:
            if request.features is not None:
                request.features.update({text: rng.choice(values) for text, values in extra.items()})

    async def run() -> None:
        service = DecisionService(path, FlakyStore())
        service.install(service.prepare())
        service.listen(records.append)
        for request in made:
            decided = await service.decide(request.user_id, request.context, request.slots, request.features, AT)
            service.publish(decided, service.new_decision_id(), request.user_id, request.context, AT)

    asyncio.run(run())
    return records


def write_export(path: Path, records: Sequence[DecisionRecord]) -> Path:
    """Records as ``tailor log export`` writes them: one JSON object a line."""
    path.write_bytes(b"".join(orjson.dumps(record.to_dict()) + b"\n" for record in records))
    return path


# Experiments, a holdout and a cap beside the retail rules: what exact replay must also reproduce.
# The retail example has an experiment, a holdout and a cap of its own; a second
# experiment with partial coverage and a second cap make the replay's work harder.
EXTRAS = """\
experiment first_order_test
  arms control 50%, bold 50%
  coverage 80%

rule bold_first_order
  when first_order_test == "bold" and views(7d) >= 2
  then show hero_first_order in hero
  priority 25
  cap 2 per 24h
"""


def copy_retail(tmp_path: Path, name: str = "retail", extras: bool = False) -> Path:
    target = tmp_path / name
    shutil.copytree(RETAIL, target, ignore=shutil.ignore_patterns("*_test.rules"))
    if extras:
        (target / "extras.rules").write_text(EXTRAS)
    return target


def edited(source: Path, target: Path, file: str, old: str, new: str) -> Path:
    """A copy of the ruleset ``source`` with one edit: ``old`` replaced by ``new`` (exactly once) in ``file``."""
    shutil.copytree(source, target)
    text = (target / file).read_text()
    assert text.count(old) == 1, f"{old!r} is not in {file} exactly once"
    (target / file).write_text(text.replace(old, new))
    return target
