"""Retraining from what was served, end to end, on the memory store and on Redis: a real server logs its
decisions and takes feedback; tailor train --from-log trains a candidate on them; tailor promote compares
and writes it; the server reloads it and serves exactly the candidate's offline scores on logged rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from redis_process import private_redis
from server_process import KEY, Server, eventually, servers
from small_model import FEATURES, SHOP, population, train_small, truth

from tailor.runtime.decision_log_reader import read_records
from tailor.runtime.feature_rows import FeatureRows, parse_features
from tailor.runtime.onnx_models import read_model


def tailor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow)])  # about a minute each
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ...]]:
    if request.param == "memory":
        yield ()
        return
    with private_redis(tmp_path / "redis") as redis:
        yield ("--redis", redis.url)


def serve_and_feed(server: Server, rows: np.ndarray, start: float, seed: int, user: str) -> list[str]:
    """Decide for each row (as of ``start`` + i seconds) and send an impression, and a click with the true odds."""
    draw = np.random.default_rng(seed)
    chance = truth(rows)
    ids, items = [], []
    for index, (views, clicks) in enumerate(rows.tolist()):
        at = start + index
        body = {"user_id": f"{user}{index}", "features": {"views(24h)": views, "clicks(7d)": clicks}, "at": at}
        decision = server.decide(**body)
        ids.append(decision["decision_id"])
        items.append({"decision_id": ids[-1], "slot": "hero", "type": "impression", "ts": at + 1})
        if draw.random() < chance[index]:
            items.append({"decision_id": ids[-1], "slot": "hero", "type": "click", "ts": at + 60})
    for first in range(0, len(items), 1000):
        response = server.http.post("/v1/feedback", json={"items": items[first : first + 1000]}, headers=server.auth)
        assert response.status_code == 200 and not response.json()["results"], response.text
    return ids


def logged(logs: Path, count: int) -> list:
    """The log's records, once it holds ``count`` of them."""

    def written() -> list | None:
        records = list(read_records(logs)) if logs.exists() else []
        return records if len(records) >= count else None

    return eventually(written, f"{count} records in the decision log")


def test_train_promote_serve_and_score_as_offline(tmp_path: Path, store_args: tuple[str, ...]) -> None:
    rules = tmp_path / "shop"
    (rules / "models").mkdir(parents=True)
    (rules / "shop.rules").write_text(SHOP)
    model_path = rules / "models" / "p_click.onnx"
    train_small(model_path, inverted=True)  # a poor current model: the candidate must beat it
    weak = model_path.read_bytes()
    logs = tmp_path / "logs"
    start = time.time() - 6 * 3600  # decided hours ago: every label window has closed
    with servers(tmp_path) as run:
        server = run(rules, *store_args, "--decision-log", str(logs), "--deadline-ms", "60000", "--settle-ms", "50")
        served = serve_and_feed(server, population(800, 31), start, seed=1, user="a")
        logged(logs, len(served))

        candidate = tmp_path / "candidate" / "p_click.onnx"
        trained = tailor(
            *("train", "--from-log", str(logs), "--feedback", server.url, "--api-key", KEY, "--label", "click"),
            *("--features", ", ".join(FEATURES), "--out", str(candidate), "--trees", "30", "--leaves", "7"),
            cwd=tmp_path,
        )
        assert trained.returncode == 0, trained.stderr
        assert "800 logged decisions ran the model; 800 rows" in trained.stderr
        metadata = read_model("p_click", candidate).metadata
        assert metadata["tailor.from_log"] == str(logs) and metadata["tailor.feedback"] == server.url
        assert float(metadata["tailor.auc"]) > 0.6 and "tailor.distribution" in metadata

        # The candidate replaces the weak model (and, further down, the weak model cannot come back).
        promoted = tailor(
            *("promote", str(candidate), "--model", "p_click", "--ruleset", str(rules), "--api-key", KEY),
            cwd=tmp_path,
        )
        assert promoted.returncode == 0, promoted.stderr
        assert "promoted: wrote" in promoted.stderr
        assert model_path.read_bytes() == candidate.read_bytes()
        assert not [p.name for p in model_path.parent.iterdir() if p.name != "p_click.onnx"]
        version = read_model("p_click", candidate).version

        def reloaded() -> bool:
            answer = server.http.get("/v1/models", headers=server.auth).json()
            return answer["models"][0]["version"] == version

        eventually(reloaded, "the server to reload the promoted model")
        new_version = server.ruleset()["version"]

        # Served scores on new decisions are the candidate's offline scores on the logged rows.
        more = serve_and_feed(server, population(100, 32, shift=1.0), start + 3600, seed=2, user="b")
        records = [r for r in logged(logs, len(served) + len(more)) if r.decision_id in set(more)]
        assert len(records) == 100 and {r.version for r in records} == {new_version}
        model = read_model("p_click", candidate)
        inputs = FeatureRows.of(parse_features(model.features))
        rows = np.array([inputs.row(r.features, r.context) for r in records], dtype=np.float32)
        offline = model.predict(rows)
        served_scores = np.array([r.models["p_click"] for r in records])
        assert np.array_equal(offline.astype(np.float64), served_scores)
        assert len(set(served_scores.tolist())) > 5

        # The weak model, offered back as a candidate, is refused and nothing is written.
        (tmp_path / "weak.onnx").write_bytes(weak)
        refused = tailor(
            *("promote", "weak.onnx", "--model", "p_click", "--ruleset", str(rules), "--api-key", KEY),
            *("--from-log", str(logs), "--feedback", server.url, "--since", str(start)),
            cwd=tmp_path,
        )
        assert refused.returncode == 1, refused.stderr
        assert "not promoted: AUC" in refused.stderr
        assert model_path.read_bytes() == candidate.read_bytes()

        # retrain chains the two; --dry-run compares and writes nothing.
        chained = tailor(
            *("retrain", "--from-log", str(logs), "--feedback", server.url, "--api-key", KEY),
            *("--model", "p_click", "--ruleset", str(rules), "--trees", "30", "--leaves", "7"),
            *("--dry-run", "--format", "json"),
            cwd=tmp_path,
        )
        assert chained.returncode in (0, 1), chained.stderr
        verdict = json.loads(chained.stdout)
        assert verdict["model"] == "p_click" and verdict["rows"] > 50 and verdict["promoted"] is False
        assert verdict["current"]["version"] == version
        assert model_path.read_bytes() == candidate.read_bytes()
        assert (rules / "models" / "p_click.candidate.onnx").is_file()
