"""Model drift and live outcomes: training distributions in the model file, live counters in the store,
GET /v1/models, the Prometheus gauges, and tailor models; on the memory store and on Redis.

A small real LightGBM model is trained on two supplied features; decisions are
then served with features drawn from the training population and from a shifted
one, and feedback drawn from the model's own probabilities.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from small_model import FEATURES, SHOP, population, train_small
from test_openapi import check

from tailor.runtime.distributions import (
    DISTRIBUTION_KEY,
    Band,
    Bins,
    TrainingDistribution,
    js_distance,
    psi,
    quantile_bins,
)
from tailor.runtime.drift_history import DEFAULT_DRIFT_INTERVAL, DriftRecorder
from tailor.runtime.http import create_app
from tailor.runtime.http.schemas import ModelsResponse
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.model_monitor import ModelMonitor
from tailor.runtime.model_report import ModelsReport, ModelStatus, bucket_auc, decile_cuts
from tailor.runtime.onnx_models import read_model
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.store import FeatureStore
from tailor.runtime.train import auc

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_small(tmp_path_factory.mktemp("model") / "p_click.onnx")


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> FeatureStore:
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))


@pytest.fixture
def rules(tmp_path: Path, model_file: Path) -> Path:
    root = tmp_path / "shop"
    (root / "models").mkdir(parents=True)
    (root / "shop.rules").write_text(SHOP)
    (root / "models" / "p_click.onnx").write_bytes(model_file.read_bytes())
    return root


@pytest.fixture
def client(rules: Path, store: FeatureStore) -> Iterator[TestClient]:
    service = DecisionService(rules, store, deadline_ms=60_000)  # a loaded machine never degrades a decision
    service.open()
    with TestClient(create_app(service, watch=False)) as client:
        yield client


def serve_population(client: TestClient, rows: np.ndarray, user: str = "u") -> list[dict[str, Any]]:
    decided = []
    for index, (views, clicks) in enumerate(rows.tolist()):
        body = {"user_id": f"{user}{index}", "features": {"views(24h)": views, "clicks(7d)": clicks}}
        response = client.post("/v1/decide", json=body)
        assert response.status_code == 200, response.text
        decided.append(response.json())
    return decided


def models(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/models")
    assert response.status_code == 200, response.text
    ModelsResponse.model_validate(response.json())
    (model,) = response.json()["models"]
    return model


# --- the training distribution ---------------------------------------------------------------


def test_training_writes_the_score_and_input_distributions(model_file: Path) -> None:
    model = read_model("p_click", model_file)
    distribution = TrainingDistribution.read(model.metadata)
    assert distribution is not None
    data = json.loads(model.metadata[DISTRIBUTION_KEY])
    assert data["bins"] == 20 and set(data["inputs"]) == set(FEATURES)
    score = distribution.score
    assert len(score.shares) == len(score.edges) + 1 <= 20
    assert sum(score.shares) == pytest.approx(1.0)
    # The training rows' own scores fall into the bins in the stored shares.
    rows = population(3000, 0)[:2400]
    scores = model.predict(rows)
    counts = np.bincount([score.bin_of(float(s)) for s in scores], minlength=len(score.shares))
    assert np.abs(counts / len(scores) - np.array(score.shares)).max() < 0.01
    views = distribution.inputs["views(24h)"]
    assert views.unknown == 0 and views.edges[0] >= 0 and sum(views.shares) == pytest.approx(1.0)


def test_quantile_bins_psi_and_js() -> None:
    uniform = quantile_bins([i / 1000 for i in range(1000)])
    assert len(uniform.shares) == 20 and all(s == pytest.approx(0.05) for s in uniform.shares)
    discrete = quantile_bins([0.0] * 80 + [1.0] * 20 + [math.nan] * 25)
    assert discrete.edges == (0.0, 1.0) and discrete.shares == (0.0, 0.8, 0.2) and discrete.unknown == 0.2
    assert Bins.from_dict(discrete.to_dict()) == discrete
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0 and js_distance([0.5, 0.5], [0.5, 0.5]) == 0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * math.log(1.5), rel=1e-9)
    assert Band.of(0.05) is Band.OK and Band.of(0.1) is Band.WARN and Band.of(0.25) is Band.ALERT
    assert Band.of(None) is Band.NONE


def test_the_auc_of_bucket_counts_is_the_auc_of_the_scores() -> None:
    draw = random.Random(4)
    scores = [round(draw.random(), 3) for _ in range(2000)]
    labels = [draw.random() < s for s in scores]
    impressions, clicks = [0.0] * 1000, [0.0] * 1000
    for score, label in zip(scores, labels, strict=True):
        bucket = min(int(score * 1000), 999)
        impressions[bucket] += 1
        clicks[bucket] += label
    binned = bucket_auc(impressions, clicks)
    exact = auc(np.array(labels), np.floor(np.array(scores) * 1000))  # the same ties
    assert binned == pytest.approx(exact, abs=1e-12)
    assert bucket_auc([1.0] * 1000, [0.0] * 1000) is None


def test_deciles_follow_the_training_scores() -> None:
    even = TrainingDistribution(quantile_bins([i / 1000 for i in range(1000)]), {})
    assert decile_cuts(even) == pytest.approx([k / 10 for k in range(1, 10)])
    lumpy = TrainingDistribution(quantile_bins([0.1] * 500 + [0.2] * 300 + [0.9] * 200), {})
    assert decile_cuts(lumpy) == [0.2, 0.9]
    assert decile_cuts(None) == pytest.approx([k / 10 for k in range(1, 10)])


# --- live drift and outcomes -----------------------------------------------------------------


def test_the_training_population_is_ok_and_a_shifted_one_alerts(client: TestClient) -> None:
    before = models(client)
    assert before["band"] == "none" and before["scored"] == 0 and before["psi"] is None
    serve_population(client, population(400, 11))
    same = models(client)
    assert same["scored"] == 400 and same["band"] == "ok", same
    assert same["psi"] < 0.1 and 0 <= same["js"] < 0.2
    assert len(same["live_scores"]) == len(same["training_scores"]) == len(same["edges"]) + 1
    serve_population(client, population(1200, 12, shift=4.0), user="s")
    shifted = models(client)
    assert shifted["scored"] == 1600
    assert shifted["band"] == "alert" and shifted["psi"] >= 0.25 and shifted["js"] > same["js"], shifted
    metrics = client.get("/metrics").text
    assert 'tailor_model_drift_band{band="alert",model="p_click"} 1.0' in metrics
    (line,) = [line for line in metrics.splitlines() if line.startswith("tailor_model_psi{")]
    assert float(line.split()[-1]) == pytest.approx(shifted["psi"])


def test_the_drift_history_keeps_a_point_per_interval_from_the_shared_counters(client: TestClient) -> None:
    recorder = client.app.state.drift  # type: ignore[attr-defined]
    now = [1_800_000_000.0]
    recorder.clock = lambda: now[0]
    recorder.record(ModelsReport("shop", "v", ()))  # the next point is one interval away from now
    route = "/v1/models/{name}/drift/history"
    empty = check(client, "GET", "/v1/models/p_click/drift/history", route)
    assert empty["points"] == [] and empty["next_in_seconds"] == empty["interval_seconds"] == DEFAULT_DRIFT_INTERVAL
    serve_population(client, population(400, 11))
    client.portal.call(recorder.sample)  # type: ignore[union-attr]
    now[0] += DEFAULT_DRIFT_INTERVAL
    serve_population(client, population(1200, 12, shift=4.0), user="s")
    client.portal.call(recorder.sample)  # type: ignore[union-attr]
    now[0] += 15
    history = check(client, "GET", "/v1/models/p_click/drift/history", route)
    current = models(client)
    assert history["version"] == current["version"] and history["next_in_seconds"] == DEFAULT_DRIFT_INTERVAL - 15
    first, second = history["points"]
    assert (first["at"], second["at"]) == ("2027-01-15T08:00:00Z", "2027-01-15T08:01:00Z")
    assert (first["scored"], second["scored"]) == (400, 1600)
    assert first["psi"] < 0.1 <= 0.25 <= second["psi"] == pytest.approx(current["psi"])
    assert second["js"] == pytest.approx(current["js"]) and {p["version"] for p in history["points"]} == {
        current["version"]
    }
    missing = client.get("/v1/models/nothing/drift/history")
    assert missing.status_code == 404 and "p_click" in missing.json()["detail"]


def test_the_drift_history_is_bounded_and_restarts_with_a_new_version() -> None:
    def report(version: str) -> ModelsReport:
        return ModelsReport("shop", "v", (ModelStatus.of("p_click", "models/p_click.onnx", version, {}, {}),))

    now = [0.0]
    recorder = DriftRecorder(ModelMonitor.__new__(ModelMonitor), interval=10, kept=3, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 10
        recorder.record(report("a"))
    kept = recorder.history("p_click", "a").points
    assert [p.at for p in kept] == ["1970-01-01T00:00:30Z", "1970-01-01T00:00:40Z", "1970-01-01T00:00:50Z"]
    assert recorder.history("p_click", "b").points == ()  # the served version is another: none of a's points
    now[0] += 10
    recorder.record(report("b"))
    assert [p.version for p in recorder.history("p_click", "b").points] == ["b"]
    assert recorder.history("p_click", "a").points == ()
    recorder.record(ModelsReport("shop", "v", ()))  # the model is no longer served: its history goes
    assert recorder.history("p_click", "b").points == ()
    with pytest.raises(ValueError, match="interval"):
        DriftRecorder(ModelMonitor.__new__(ModelMonitor), interval=0)


def test_feedback_gives_live_auc_and_calibration(client: TestClient, model_file: Path) -> None:
    model = read_model("p_click", model_file)
    rows = population(1500, 21)
    probabilities = model.predict(rows)
    draw = np.random.default_rng(5)
    decided = serve_population(client, rows)
    items = []
    labels = []
    for decision, probability in zip(decided, probabilities, strict=True):
        items.append({"decision_id": decision["decision_id"], "slot": "hero", "type": "impression"})
        labels.append(draw.random() < probability)  # the model is calibrated here, by construction
        if labels[-1]:
            items.append({"decision_id": decision["decision_id"], "slot": "hero", "type": "click"})
    clicked = sum(labels)
    for start in range(0, len(items), 1000):
        response = client.post("/v1/feedback", json={"items": items[start : start + 1000]})
        assert response.status_code == 200 and response.json()["accepted"] == len(items[start : start + 1000])
    report = models(client)
    assert report["impressions"] == 1500 and report["clicks"] == clicked
    # The AUC of the served scores, with the scores in one bucket of 1/1000 as ties.
    assert report["auc"] == pytest.approx(auc(np.array(labels), np.floor(probabilities * 1000)), abs=1e-12)
    assert 0.6 < report["auc"] < 0.9
    assert report["calibration_error"] < 0.06
    rows_shown = [row for row in report["calibration"] if row["impressions"]]
    assert sum(row["impressions"] for row in report["calibration"]) == 1500
    cuts = decile_cuts(TrainingDistribution.read(model.metadata))
    assert 5 <= len(report["calibration"]) == len(cuts) + 1 <= 10 and len(rows_shown) >= 5
    for row in rows_shown:
        assert row["low"] is None or row["predicted"] >= row["low"] - 0.001
        assert row["high"] is None or row["predicted"] <= row["high"] + 0.001
    # The join records hold the scores and the feedback counted, for training from the log.
    ids = [decision["decision_id"] for decision in decided[:5]]
    joined = client.post("/v1/feedback/joined", json={"decision_ids": [*ids, "nope"]}).json()["decisions"]
    assert [join["decision_id"] for join in joined] == ids
    for join, probability in zip(joined, probabilities, strict=False):
        assert join["models"]["p_click"] == pytest.approx(float(probability), abs=1e-6)
        assert {"slot": "hero", "type": "impression"}.items() <= join["feedback"][0].items()
    assert client.get("/metrics").text.count("tailor_model_auc{") == 1
    # Both answers are what their OpenAPI schemas describe.
    check(client, "GET", "/v1/models", "/v1/models")
    check(client, "POST", "/v1/feedback/joined", "/v1/feedback/joined", json={"decision_ids": ids})
