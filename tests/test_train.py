"""Training: rows computed as of the moment before each impression, the simulator, and the train command.

Real MemoryStore, LightGBM and onnxruntime; no mocks.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from tailor.compiler.decide import Decider
from tailor.runtime import decision_flow
from tailor.runtime.inference import ModelRunner
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.onnx_export import to_onnx, verify
from tailor.runtime.onnx_models import read_model
from tailor.runtime.ruleset_loader import load
from tailor.runtime.simulate import ACCESSORIES, HERO_CONTENTS, simulate, simulate_to
from tailor.runtime.train import (
    Dataset,
    FeatureRows,
    TrainError,
    TrainOptions,
    auc,
    build_dataset,
    fit,
    log_loss,
    parse_feature,
    parse_features,
    read_events,
    read_feature_list,
    split_top_level,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "rulesets" / "retail" / "models"
T0 = 1767225600.0 + 10 * 86400


def tailor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def write_log(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    return path


# --- point in time -----------------------------------------------------------------------

POINT_IN_TIME_FEATURES = [
    'views("Electronics", 24h)',
    'clicks("acc-42", 30d)',
    'count("impression", "acc-42", 7d)',
    'since("view", "Electronics")',
    'user.tier == "gold"',
    'context.device == "mobile"',
    'since("purchase")',
    'views("Electronics", 24h) - views("Electronics", 1h)',
]


def point_in_time_log() -> list[dict]:
    """Every event that would change a row if it leaked into it is at or after that row's impression."""

    def event(type_: str, ts: float, key: str | None = None, user: str = "u1", **extra) -> dict:
        found = {"user_id": user, "type": type_, "ts": ts, **extra}
        if key is not None:
            found["key"] = key
        return found

    return [
        event("profile", T0 - 200, attributes={"tier": "silver"}),
        event("view", T0 - 3700, "Electronics", value=30),
        # row A: the impression, and what happens at the same moment (must not count) and after it
        event("impression", T0, ACCESSORIES, context={"page": "home", "device": "mobile"}),
        event("view", T0, "Electronics", value=12),
        event("profile", T0, attributes={"tier": "gold"}),
        event("click", T0 + 60, ACCESSORIES),  # within 30 minutes: row A is a click
        event("view", T0 + 120, "Electronics"),
        event("view", T0 + 130, "Electronics"),
        event("view", T0 + 140, "Electronics"),
        event("impression", T0 + 200, "hero-seasonal", context={"page": "home", "device": "mobile"}),
        # row B
        event("impression", T0 + 7200, ACCESSORIES, context={"page": "home", "device": "desktop"}),
        event("click", T0 + 7300, ACCESSORIES, user="u2"),  # someone else's click
        event("click", T0 + 7300, "Electronics"),  # a click on something else
        event("click", T0 + 7200 + 1801, ACCESSORIES),  # one second too late
        # an impression whose label window the log does not cover: left out
        event("impression", T0 + 19000, ACCESSORIES, context={"page": "home", "device": "mobile"}),
        event("view", T0 + 20000, "Books", user="u2"),
    ]


def test_rows_use_only_what_happened_before_the_impression(tmp_path: Path):
    events = point_in_time_log()
    random.Random(4).shuffle(events)  # the log need not be in order; ties keep no meaning
    log = read_events(write_log(tmp_path / "events.jsonl", events))
    dataset = build_dataset(log, parse_features(POINT_IN_TIME_FEATURES), "click", [ACCESSORIES])
    nan = math.nan
    row_a = [1, 0, 0, 3700, 0, 1, nan, 1]  # the view and the gold tier at the impression's moment do not count
    row_b = [5, 1, 1, 7060, 1, 0, nan, 5]  # now they do, with the click and row A's impression
    np.testing.assert_array_equal(dataset.rows, np.array([row_a, row_b], dtype=np.float32))
    assert dataset.labels.tolist() == [1, 0]
    assert dataset.times.tolist() == [T0, T0 + 7200]
    assert dataset.users == ("u1", "u1")
    assert dataset.keys == (ACCESSORIES, ACCESSORIES)
    assert dataset.censored == 1


def test_a_longer_label_window_and_other_targets(tmp_path: Path):
    log = read_events(write_log(tmp_path / "events.jsonl", point_in_time_log()))
    features = parse_features(['views("Electronics", 24h)'])
    wide = build_dataset(log, features, "click", [ACCESSORIES], label_window=3600)
    assert wide.labels.tolist() == [1, 1]
    seasonal = build_dataset(log, features, "click", ["hero-seasonal"])
    assert seasonal.rows.tolist() == [[5.0]]  # every view up to T0 + 140
    assert seasonal.labels.tolist() == [0]


def test_replaying_a_simulated_log_matches_the_simulated_counts(tmp_path: Path):
    """Each row's counter equals a direct count of the user's earlier events."""
    path = tmp_path / "events.jsonl"
    simulate_to(path, 30, 4, seed=2)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    dataset = build_dataset(
        read_events(path), parse_features(['count("impression", "acc-42", 30d)', "views(24h)"]), "click", [ACCESSORIES]
    )
    assert len(dataset.labels) > 20
    for row, user, ts in zip(dataset.rows, dataset.users, dataset.times, strict=True):
        earlier = [e for e in raw if e["user_id"] == user and e["ts"] < ts]
        assert row[0] == sum(e["type"] == "impression" and e["key"] == ACCESSORIES for e in earlier)
        recent_views = [e for e in earlier if e["type"] == "view"]
        # hour buckets: the oldest is counted whole, so the window may reach up to an hour further back
        assert sum(e["ts"] > ts - 86400 for e in recent_views) <= row[1]
        assert row[1] <= sum(e["ts"] > ts - 86400 - 3600 for e in recent_views)


# --- features -----------------------------------------------------------------------------


def test_features_are_parsed_into_canonical_text():
    assert parse_feature('views( "Electronics",24h )').text == 'views("Electronics", 24h)'
    assert parse_feature('(user.tier=="x")').text == 'user.tier == "x"'
    feature = parse_feature('views("Shoes", 7d) / (views(7d) + 1) > 10% and user.age >= 18')
    assert sorted(ref.text for ref in feature.refs) == sorted(['views("Shoes", 7d)', "views(7d)", "user.age"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("viewz(24h)", "unknown function 'viewz'"),
        ('views("Electronics", 24)', "must be a duration"),
        ("electronics_fan", "unknown name 'electronics_fan'"),  # no segments or models
        ("session.page", "unknown attribute scope 'session'"),
        ("views(24h) >", "is not an expression of the rules language"),
        ('"gold"', "inputs are numbers, durations or true/false"),  # text: compare it instead
        ('views("Books", 7d) > "many"', "cannot compare a number with a string"),
        ("", "empty"),
    ],
)
def test_features_the_language_cannot_compute(text: str, says: str):
    with pytest.raises(TrainError, match=says.replace("(", r"\(")) as raised:
        parse_feature(text)
    if text and "rules language" not in says:
        assert raised.value.hint, "a problem the compiler finds comes with a hint"
        assert raised.value.message.startswith(f"feature {text}"), "the message names the feature"


def test_a_bare_attribute_is_a_number_feature():
    """As the server compiles a model's inputs: an attribute read only by the model is a number (NaN if not one)."""
    feature = parse_feature("user.age")
    assert feature.term is not None and feature.condition is None
    assert [ref.text for ref in feature.refs] == ["user.age"]


def test_features_listed_twice():
    with pytest.raises(TrainError, match="listed twice"):
        parse_features(["views(24h)", "views( 24h )"])


def value_of(text: str, fetched: dict, context: dict) -> float:
    return FeatureRows.of([parse_feature(text)]).row(fetched, context)[0]


def test_feature_values_follow_the_rules_of_unknown():
    fetched = {'views("Shoes", 7d)': 3, "views(7d)": 0, "user.tier": "gold", "user.age": 30}
    context = {"device": "mobile", "page": "home"}
    assert value_of('views("Shoes", 7d)', fetched, context) == 3
    assert value_of('clicks("Shoes", 7d)', fetched, context) == 0  # a counter never fetched is 0
    assert math.isnan(value_of('since("purchase")', fetched, context))  # since() is unknown without events
    assert value_of('since("purchase") is missing', fetched, context) == 1
    assert math.isnan(value_of('views("Shoes", 7d) / views(7d)', fetched, context))  # division by zero
    assert value_of('user.tier in ["gold", "platinum"]', fetched, context) == 1
    assert value_of('not context.device == "desktop"', fetched, context) == 1
    assert math.isnan(value_of("context.cart_total >= 100", fetched, context))
    assert value_of("context.cart_total >= 100 or user.age > 18", fetched, context) == 1  # true or unknown
    assert value_of("context.cart_total >= 100 and user.age < 18", fetched, context) == 0  # unknown and false
    assert value_of("user.age - 5 * 2", fetched, context) == 20
    assert value_of("-user.age", fetched, context) == -30
    assert math.isnan(value_of("-user.age", {}, context))  # no profile: unknown


def test_an_attribute_a_feature_cannot_compute_with_is_reported():
    """Attributes take any value, as where only a model reads them; one a feature cannot use stops training."""
    assert value_of('user.age == "30"', {"user.age": 30}, {}) == 0  # 30 is not the text "30"
    with pytest.raises(TrainError, match=r"feature user\.age > 18 cannot be computed from user\.age = 'old'"):
        FeatureRows.of([parse_feature("user.age > 18")]).row({"user.age": "old"}, {}, ", for user u1")


def test_feature_lists_from_a_file_or_a_comma_separated_list(tmp_path: Path):
    listed = 'views("Electronics, Books", 24h), user.tier in ["gold", "platinum"] ,since("purchase")'
    assert read_feature_list(listed) == [
        'views("Electronics, Books", 24h)',
        'user.tier in ["gold", "platinum"]',
        'since("purchase")',
    ]
    assert split_top_level('a("x\\",y"), b') == ['a("x\\",y")', " b"]
    path = tmp_path / "features.txt"
    path.write_text('# inputs\nviews(24h)\n\n  since("purchase")  \n', encoding="utf-8")
    assert read_feature_list(str(path)) == ["views(24h)", 'since("purchase")']
    retail = read_feature_list(str(MODELS / "p_click.features"))
    assert [feature.text for feature in parse_features(retail)] == retail


# --- the event log -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "events.jsonl:2: not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "view", "ts": 1}', "has no user_id"),
        ('{"user_id": "u", "ts": 1}', "has no type"),
        ('{"user_id": "u", "type": "view"}', "has no ts"),
        ('{"user_id": "u", "type": "view", "ts": 1, "value": "12"}', "value is not a number"),
        ('{"user_id": "u", "type": "profile", "ts": 1}', "a profile event needs"),
    ],
)
def test_bad_lines_are_reported_with_their_line_number(tmp_path: Path, line: str, says: str):
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u", "type": "view", "ts": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(TrainError, match=says):
        read_events(path)


# --- metrics ----------------------------------------------------------------------------------


def test_auc_and_log_loss():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5  # ties count half
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


# --- the simulator ---------------------------------------------------------------------------


def test_simulate_is_reproducible(tmp_path: Path):
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    simulate_to(first, 40, 3, seed=5)
    simulate_to(second, 40, 3, seed=5)
    simulate_to(other, 40, 3, seed=6)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_simulated_events_look_like_a_shop():
    events = simulate(60, 5, seed=1)
    times = [e["ts"] for e in events]
    assert times == sorted(times)
    assert len({e["id"] for e in events}) == len(events)
    users = {e["user_id"] for e in events}
    assert len(users) == 60
    firsts: dict[str, dict] = {}
    for event in events:
        firsts.setdefault(event["user_id"], event)
    assert all(event["type"] == "profile" for event in firsts.values())
    types = {e["type"] for e in events}
    assert {"profile", "impression", "view", "click", "add_to_cart"} <= types
    for event in events:
        if event["type"] == "impression":
            assert event["key"] in HERO_CONTENTS
            assert event["context"]["page"] == "home" and event["context"]["device"] in ("mobile", "desktop", "tablet")
        elif event["type"] in ("view", "purchase"):
            assert event["value"] > 0
        elif event["type"] == "profile":
            assert isinstance(event["attributes"], dict)


# --- training ---------------------------------------------------------------------------------

RETAIL_FEATURES = tuple(read_feature_list(str(MODELS / "p_click.features")))


class RecordingStore(MemoryStore):
    """The training store, keeping every answer it gives: one per row, in row order."""

    answers: list[dict] = []

    def fetch_now(self, user_id, features, at=None):
        answer = super().fetch_now(user_id, features, at)
        self.answers.append(answer)
        return answer


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, list[dict]]:
    """A simulated log of a few thousand labelled impressions, its rows, and what the store answered for each."""
    path = tmp_path_factory.mktemp("small") / "events.jsonl"
    simulate_to(path, 500, 14, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tailor.runtime.dataset.MemoryStore", RecordingStore)
        patch.setattr(RecordingStore, "answers", [])
        dataset = build_dataset(read_events(path), parse_features(RETAIL_FEATURES), "click", [ACCESSORIES])
        answers = RecordingStore.answers
    assert len(answers) == len(dataset.labels)
    return path, dataset, answers


def test_a_trained_model_is_served_the_rows_it_was_trained_on(tmp_path: Path, small):
    """The retail ruleset serving a model trained here computes, from the same store answers and
    context, exactly the rows the model learned from: the inputs compiled from the model file in the
    ruleset's namespace (where user.tier is text because a segment uses it), run as in a decision."""
    path, dataset, answers = small
    ruleset = tmp_path / "retail"
    shutil.copytree(MODELS.parent, ruleset)
    options = TrainOptions(path, "click", (ACCESSORIES,), RETAIL_FEATURES, ruleset / "models" / "p_click.onnx")
    fit(dataset, options)
    retail = load(ruleset)
    assert retail.models["p_click"].features == dataset.features
    decider, runner = Decider(retail), ModelRunner(retail, cache_ttl=0)
    contexts = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["type"] == "impression" and event["key"] == ACCESSORIES:
            assert (event["user_id"], event["ts"]) not in contexts
            contexts[event["user_id"], event["ts"]] = event["context"]
    served = []
    for user, ts, fetched in zip(dataset.users, dataset.times, answers, strict=True):
        pending = decision_flow.begin(decider, user, contexts[user, ts], None, fetched, store=False)
        values = decision_flow.finish(pending, None, runner).values
        assert values["p_click"] is not None
        served.append(list(values.model_inputs["p_click"].values()))
    np.testing.assert_array_equal(np.array(served, dtype=np.float32), dataset.rows)
    assert np.isnan(dataset.rows).any() and (dataset.rows == 1).any()  # unknowns and true/false among them


def test_training_is_deterministic(tmp_path: Path, small, monkeypatch: pytest.MonkeyPatch):
    _, dataset, _ = small
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    options = TrainOptions(Path("events.jsonl"), "click", (ACCESSORIES,), RETAIL_FEATURES, tmp_path / "a.onnx")
    first = fit(dataset, options)
    second = fit(dataset, TrainOptions(**{**_fields(options), "out": tmp_path / "b.onnx"}))
    assert first.metadata["tailor.trained_at"] == "2026-01-01T00:00:00Z"
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert first.version == second.version == read_model("p", tmp_path / "a.onnx").version


def _fields(options: TrainOptions) -> dict:
    return {name: getattr(options, name) for name in TrainOptions.__dataclass_fields__}


def test_verification_refuses_a_model_that_disagrees(tmp_path: Path, small):
    _, dataset, _ = small
    rows, labels = dataset.rows, dataset.labels
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "deterministic": True}
    trained = lightgbm.train(params, lightgbm.Dataset(rows, labels), num_boost_round=10)
    other = lightgbm.train(params, lightgbm.Dataset(rows, 1 - labels), num_boost_round=10)
    model = to_onnx(other, rows.shape[1])
    import onnx

    onnx.helper.set_model_props(model, {"tailor.features": json.dumps(list(dataset.features))})
    with pytest.raises(TrainError, match="ONNX Runtime and LightGBM disagree"):
        verify(trained, model.SerializeToString(), rows[:200], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert verify(other, model.SerializeToString(), rows[:200], tmp_path / "m.onnx") <= 1e-5


def test_train_and_simulate_commands_end_to_end(tmp_path: Path):
    simulated = tailor(
        "simulate", "--users", "500", "--days", "14", "--seed", "3", "--out", "events.jsonl", cwd=tmp_path
    )
    assert simulated.returncode == 0, simulated.stderr
    assert "events of 500 users over 14 days" in simulated.stderr
    features = str(MODELS / "p_click.features")
    trained = tailor(
        *("train", "--events", "events.jsonl", "--label", "click", "--target", ACCESSORIES),
        *("--features", features, "--out", "models/p_click.onnx", "--seed", "1"),
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert "holdout AUC" in trained.stderr and "Traceback" not in trained.stderr
    model = read_model("p_click", tmp_path / "models" / "p_click.onnx")
    assert model.features == RETAIL_FEATURES
    metadata = model.metadata
    rows = int(metadata["tailor.rows"])
    assert rows > 1500
    assert int(metadata["tailor.train_rows"]) + int(metadata["tailor.holdout_rows"]) == rows
    assert float(metadata["tailor.auc"]) > 0.6
    assert 0 < float(metadata["tailor.logloss"]) < 0.6
    assert metadata["tailor.label"] == "click"
    assert json.loads(metadata["tailor.targets"]) == [ACCESSORIES]
    assert metadata["tailor.trained_at"].endswith("Z")
    assert metadata["tailor.events"].startswith("events.jsonl sha256:")
    assert not list((tmp_path / "models").glob("*.tmp")) and not list((tmp_path / "models").glob("*.verify"))


def test_train_command_failures(tmp_path: Path):
    write_log(tmp_path / "events.jsonl", point_in_time_log())
    base = ("train", "--events", "events.jsonl", "--label", "click", "--out", "m.onnx")
    nothing = tailor(*base, "--target", "nope", "--features", "views(24h)", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "only 0 labelled impressions of nope" in nothing.stderr and "hint:" in nothing.stderr
    misspelt = tailor(*base, "--target", ACCESSORIES, "--features", "viewz(24h)", cwd=tmp_path)
    assert misspelt.returncode == 1 and "unknown function 'viewz'" in misspelt.stderr
    missing = tailor("train", "--events", "nope.jsonl", "--label", "click", "--target", "x", "--features", "views(24h)",
                     "--out", "m.onnx", cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and "nope.jsonl: no such file" in missing.stderr
    holdout = tailor(*base, "--target", ACCESSORIES, "--features", "views(24h)", "--holdout", "1.5", cwd=tmp_path)
    assert holdout.returncode == 2
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_the_rebuild_script_reproduces_the_shipped_model(tmp_path: Path):
    """rebuild.sh, run in a copy of the models directory, trains the model that is shipped."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("rebuild.sh", "p_click.features"):
        shutil.copy(MODELS / name, models / name)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "tailor").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tailor.cli "$@"\n')
    (shims / "tailor").chmod(0o755)
    shipped = read_model("p_click", MODELS / "p_click.onnx").metadata
    environment = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(models / "rebuild.sh")], capture_output=True, text=True, timeout=600, env=environment
    )
    assert result.returncode == 0, result.stderr
    rebuilt = read_model("p_click", models / "p_click.onnx").metadata
    for key in ("tailor.features", "tailor.rows", "tailor.train_rows", "tailor.positive_rate", "tailor.targets"):
        assert rebuilt[key] == shipped[key], key
    assert float(rebuilt["tailor.auc"]) == pytest.approx(float(shipped["tailor.auc"]), abs=0.01)
