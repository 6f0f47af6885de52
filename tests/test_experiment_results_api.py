"""GET /v1/experiments and /v1/experiments/{name} over the HTTP API, on the memory store and on Redis.

Feedback on a slot where a decision exposed its user counts for the user's arm
in the current phase; conversions count once per user, with each user's value
squared for the value-per-user interval; nothing counts twice on a retry.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailor.bucketing import bucket_ranges, choose_arm, hash
from tailor.runtime.experiment_report import ExperimentList, ExperimentReport
from tailor.runtime.http import create_app
from tailor.runtime.http.schemas import ExperimentResponse, ExperimentsResponse
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.statistics import mean_interval
from tailor.runtime.store import FeatureStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHOP = """\
ruleset shop
content accessories = {}
content generic = {}
content reviews = {}
experiment hero_test
  arms rules 50%, model 50%
  seed "hero-2026"
holdout 10%
rule hero_by_model when hero_test == "model" then show accessories in hero priority 10
default show generic in hero
default show reviews in sidebar
"""


def arm_of(user: str) -> str | None:
    if hash("shop-holdout", user) < 0.1:
        return None
    return ("rules", "model")[choose_arm(hash("hero-2026", user), bucket_ranges(2, 1.0, [0.5, 0.5]))]


def users(arm: str | None, count: int) -> list[str]:
    return [u for u in (f"u{i}" for i in range(5000)) if arm_of(u) == arm][:count]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> FeatureStore:
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))


@pytest.fixture
def client(tmp_path: Path, store: FeatureStore) -> Iterator[TestClient]:
    (tmp_path / "shop.rules").write_text(SHOP)
    service = DecisionService(tmp_path, store)
    service.open()
    with TestClient(create_app(service, watch=False)) as client:
        yield client


def decide(client: TestClient, user: str) -> str:
    response = client.post("/v1/decide", json={"user_id": user})
    assert response.status_code == 200, response.text
    return response.json()["decision_id"]


def feedback(client: TestClient, items: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/feedback", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()


def report(client: TestClient, **query: str) -> ExperimentReport:
    response = client.get("/v1/experiments/hero_test", params=query)
    assert response.status_code == 200, response.text
    ExperimentResponse.model_validate(response.json())
    return ExperimentReport.from_dict(response.json())


def test_the_list_names_each_experiment_its_phase_and_the_holdout(client: TestClient) -> None:
    response = client.get("/v1/experiments")
    assert response.status_code == 200, response.text
    ExperimentsResponse.model_validate(response.json())
    listed = ExperimentList.from_dict(response.json())
    (info,) = listed.experiments
    assert (info.name, info.arms, info.weights, info.coverage, info.seed) == (
        "hero_test",
        ("rules", "model"),
        (0.5, 0.5),
        1.0,
        "hero-2026",
    )
    assert info.slots == ("hero",) and len(info.phase) == 12
    assert listed.holdout is not None and (listed.holdout.share, listed.holdout.seed) == (0.1, "shop-holdout")


def test_feedback_counts_for_the_arm_on_exposed_slots_only(client: TestClient) -> None:
    model, rules, held = users("model", 3), users("rules", 2), users(None, 1)
    decisions = {user: decide(client, user) for user in model + rules + held}
    decide(client, model[0])  # a second visit: still one user
    items = []
    for decision in decisions.values():
        for slot in ("hero", "sidebar"):
            items.append({"decision_id": decision, "slot": slot, "type": "impression", "id": f"{decision}/{slot}/i"})
    # model: two users click the hero; the first converts twice (10 then 20), the second once (5)
    clicks = [(model[0], "click", None), (model[1], "click", None)]
    conversions = [(model[0], 10.0, "a"), (model[0], 20.0, "b"), (model[1], 5.0, "c"), (rules[0], 7.0, "d")]
    for user, type_, _ in clicks:
        items.append({"decision_id": decisions[user], "slot": "hero", "type": type_, "id": f"{user}/click"})
    for user, value, key in conversions:
        items.append({"decision_id": decisions[user], "slot": "hero", "type": "conversion", "value": value, "id": key})
    items.append({"decision_id": decisions[rules[1]], "slot": "sidebar", "type": "click", "id": "side"})  # not exposed
    items.append({"decision_id": decisions[held[0]], "slot": "hero", "type": "click", "id": "held"})  # no arm
    assert feedback(client, items)["accepted"] == len(items)
    assert feedback(client, items)["duplicates"] == len(items)  # a retry counts nothing twice

    found = report(client)
    arms = {arm.arm: arm for arm in found.result.arms}
    assert (arms["model"].users, arms["model"].impressions, arms["model"].clicks) == (3, 3, 2)
    assert (arms["rules"].users, arms["rules"].impressions, arms["rules"].clicks) == (2, 2, 0)
    assert (arms["model"].conversions, arms["model"].value) == (2, 35.0)  # users who converted
    assert (arms["rules"].conversions, arms["rules"].value) == (1, 7.0)
    # value per user: (30 + 5 + 0) / 3, its interval from the sum of each user's value squared, 30² + 5²
    expected = mean_interval(35.0, 925.0, 3)
    assert expected is not None
    per_user = arms["model"].value_per_user
    assert (per_user.value, per_user.low, per_user.high) == pytest.approx((35.0 / 3, expected.low, expected.high))
    assert mean_interval(35.0, 30.0**2 + 5.0**2 + 20.0**2 + 10.0**2, 3) != expected  # not per conversion
    assert found.phase == found.experiment.phase
    assert [point.arm for point in found.over_time] == ["model"]
    assert found.conclusions[-1] == "no sample ratio mismatch"


def test_an_unknown_experiment_or_phase_is_a_404_with_a_reason(client: TestClient) -> None:
    response = client.get("/v1/experiments/nope")
    assert response.status_code == 404 and "hero_test" in response.json()["detail"]
    response = client.get("/v1/experiments/hero_test", params={"phase": "0123456789ab"})
    assert response.status_code == 404 and "never mix phases" in response.json()["detail"]
    assert report(client, phase=report(client).phase).result.arms[0].users == 0


def test_served_impressions_count_for_the_arm(tmp_path: Path, store: FeatureStore) -> None:
    from tailor.runtime.feedback import Impressions

    (tmp_path / "shop.rules").write_text(SHOP)
    service = DecisionService(tmp_path, store)
    service.open()
    with TestClient(create_app(service, watch=False, impressions=Impressions.SERVED)) as client:
        model = users("model", 2)
        for user in model:
            decide(client, user)
        arms = {arm.arm: arm for arm in report(client).result.arms}
        assert (arms["model"].users, arms["model"].impressions) == (2, 2)
        assert arms["rules"].impressions == 0
