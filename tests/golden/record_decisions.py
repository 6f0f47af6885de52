"""Record the decisions that ``test_recorded_decisions`` pins.

Run from the repository root only when a change is *meant* to alter decisions:

    python tests/golden/record_decisions.py

The inputs (ruleset texts and requests) are recorded along with the answers,
so the test replays exactly these cases whatever the installed hypothesis
version would generate.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import rulegen  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from bench import workload  # noqa: E402
from tests.test_recorded_decisions import RECORDED, decide_all  # noqa: E402

GENERATED_CASES = 300
WORKLOAD_RULES = 1000
WORKLOAD_REQUESTS = 300
RETAIL_REQUESTS = 300


def generated_cases() -> list[dict]:
    found: list[dict] = []

    @settings(
        max_examples=GENERATED_CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(rulegen.cases())
    def collect(case: rulegen.Case) -> None:
        request = case.request
        found.append(
            {
                "text": case.ruleset.text,
                "requests": [{"context": request.context, "features": request.features, "slots": request.slots}],
            }
        )

    collect()
    return found


def retail_requests() -> list[dict]:
    """Requests over every feature the retail example reads; the click model runs when p_click is left out."""
    import tailor

    plan = tailor.load(ROOT / "rulesets/retail").plan
    rng = random.Random(5)
    choices = {
        "context.page": ["home", "product", "cart", "search"],
        "context.category": ["Electronics", "Books", "Toys"],
        "context.device": ["mobile", "desktop"],
        "context.cart_total": [0, 20, 35, 49.99, 50, 100, 120],
        "user.tier": ["gold", "platinum", "silver", "bronze"],
        "p_click": [0.1, 0.5, 0.7, 0.71, 0.9],
    }
    requests = []
    for _ in range(RETAIL_REQUESTS):
        context: dict = {}
        features: dict = {}
        for text, ref in plan.features.items():
            if ref.kind.name == "EXPERIMENT":
                continue  # drawn from the user id: the requests leave the arm to the draw
            if rng.random() < 0.3:
                continue
            if ref.kind.name.lower() == "since":
                value = rng.choice([None, 3600, 86400 * 3, 86400 * 45])
            elif text in choices:
                value = rng.choice(choices[text])
            else:
                value = rng.choice([0, 0, 1, 2, 3, 5, 800])
            if text.startswith("context."):
                context[text.removeprefix("context.")] = value
            else:
                features[text] = value
        requests.append({"context": context, "features": features, "slots": None})
    return requests


def main() -> None:
    cases = {
        "generated": generated_cases(),
        "workload": [
            {
                "text": workload.ruleset_text(WORKLOAD_RULES),
                "requests": [{**r, "slots": None} for r in workload.requests(WORKLOAD_REQUESTS)],
            }
        ],
        "retail": [{"path": "rulesets/retail", "requests": retail_requests()}],
    }
    record = {"cases": cases, "decisions": decide_all(cases)}
    RECORDED.write_text(json.dumps(record, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {RECORDED.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
