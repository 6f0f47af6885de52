"""The model file contract: what read_model accepts, what it refuses and why, and how a model predicts.

Real LightGBM models converted with onnxmltools, and small ONNX graphs built by
hand for the shapes converters do not produce; no mocks.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from array import array
from pathlib import Path

import lightgbm
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnxmltools.convert import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from tailor.runtime.onnx_models import TRAINING_KEYS, ModelError, ModelFile, OneRow, read_model
from tailor.runtime.train import parse_feature

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "rulesets" / "retail" / "models" / "p_click.onnx"

FEATURES = ['views("Electronics", 24h)', 'since("purchase")', "user.age", 'context.device == "mobile"']


@pytest.fixture(scope="module")
def trained() -> tuple[lightgbm.Booster, np.ndarray]:
    """A small real LightGBM classifier on 4 features, one of them often unknown; and test rows."""
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(3000, 4)).astype(np.float32)
    rows[rng.random(3000) < 0.3, 1] = np.nan
    signal = rows[:, 0] + np.nan_to_num(rows[:, 1], nan=-1.0) - 0.5 * rows[:, 3] + rng.normal(size=3000)
    labels = (signal > 0.3).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "seed": 1, "deterministic": True, "num_threads": 1}
    booster = lightgbm.train({**params, "verbose": -1}, lightgbm.Dataset(rows, labels), num_boost_round=20)
    test = rng.normal(size=(500, 4)).astype(np.float32)
    test[rng.random(500) < 0.3, 1] = np.nan
    test[rng.random(500) < 0.1, 2] = np.nan  # never unknown in training
    return booster, test


def convert(booster: lightgbm.Booster, width: int = 4, zipmap: bool = False) -> onnx.ModelProto:
    return convert_lightgbm(booster, initial_types=[("features", FloatTensorType([None, width]))], zipmap=zipmap)


def save(model: onnx.ModelProto, path: Path, metadata: dict[str, str] | None) -> Path:
    if metadata is not None:
        helper.set_model_props(model, metadata)
    path.write_bytes(model.SerializeToString())
    return path


def error_of(path: Path) -> ModelError:
    with pytest.raises(ModelError) as caught:
        read_model("p_click", path)
    return caught.value


def features_metadata(features: list[str] = FEATURES) -> dict[str, str]:
    return {"tailor.features": json.dumps(features)}


def linear_model(output_shape: list[int | str], bias: float, sigmoid: bool, width: int = 3) -> onnx.ModelProto:
    """rows @ weights + bias, optionally through a sigmoid: a hand-built regressor or classifier."""
    columns = output_shape[1] if len(output_shape) == 2 else 1
    weights = helper.make_tensor("w", TensorProto.FLOAT, [width, columns], [0.5] * (width * columns))
    offset = helper.make_tensor("b", TensorProto.FLOAT, [columns], [bias] * columns)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"])]
    last = "z"
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["s"]))
        last = "s"
    if len(output_shape) == 1:
        shape = helper.make_tensor("shape", TensorProto.INT64, [1], [-1])
        nodes.append(helper.make_node("Reshape", [last, "shape"], ["p"]))
        initializers = [weights, offset, shape]
    else:
        nodes.append(helper.make_node("Identity", [last], ["p"]))
        initializers = [weights, offset]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, output_shape)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# --- a good file -------------------------------------------------------------------


def test_a_converted_lightgbm_model_loads(tmp_path: Path, trained):
    booster, _ = trained
    path = save(convert(booster), tmp_path / "p_click.onnx", {**features_metadata(), "tailor.auc": "0.8"})
    model = read_model("p_click", path)
    assert isinstance(model, ModelFile)
    assert model.name == "p_click"
    assert model.path == path
    assert model.features == tuple(FEATURES)
    assert model.version == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert model.metadata["tailor.auc"] == "0.8"
    assert json.loads(model.metadata["tailor.features"]) == FEATURES
    assert model.input_name == "features"
    assert model.output_name == "probabilities"  # not the label output
    options = model.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_onnx_runtime_agrees_with_lightgbm(tmp_path: Path, trained):
    booster, test = trained
    model = read_model("p_click", save(convert(booster), tmp_path / "m.onnx", features_metadata()))
    predicted = model.predict(test)
    assert predicted.shape == (len(test),)
    assert np.all((predicted >= 0) & (predicted <= 1))
    np.testing.assert_allclose(predicted, booster.predict(test), atol=1e-5, rtol=0)


def test_predict_one_matches_predict(tmp_path: Path, trained):
    booster, test = trained
    model = read_model("p_click", save(convert(booster), tmp_path / "m.onnx", features_metadata()))
    batch = model.predict(test)
    singles = [model.predict_one(row.tolist()) for row in test]
    assert singles == pytest.approx(batch.tolist(), abs=1e-7)
    row = test[0].tolist()
    row[1] = None  # None is unknown, like NaN
    assert model.predict_one(row) == pytest.approx(model.predict_one([row[0], math.nan, *row[2:]]), abs=0)
    with pytest.raises(ValueError, match="takes 4 features, not 3"):
        model.predict_one([1.0, 2.0, 3.0])


def test_one_row_runs_bound_to_the_session_and_agrees_with_session_run(tmp_path: Path, trained):
    booster, test = trained
    model = read_model("p_click", save(convert(booster), tmp_path / "m.onnx", features_metadata()))
    bound = OneRow(model)
    assert bound.bound, "this onnxruntime has no IOBinding path: predict_one falls back to session.run"
    unbound = OneRow(model)
    unbound._run = None  # what an onnxruntime without the binding path runs
    for row in test[:50]:
        bound.view[:] = unbound.view[:] = array("f", row.tolist())
        assert bound.score() == unbound.score() == model.predict_one(row.tolist())


def test_a_double_probability_output_runs_bound_too(tmp_path: Path):
    model_proto = linear_model(["N", 2], 0.0, sigmoid=True)
    graph = model_proto.graph
    graph.node.append(helper.make_node("Cast", ["p"], ["p64"], to=TensorProto.DOUBLE))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("p64", TensorProto.DOUBLE, ["N", 2]))
    model = read_model("m", save(model_proto, tmp_path / "m.onnx", features_metadata(FEATURES[:3])))
    expected = float(model.predict(np.array([[1, 2, 3]], dtype=np.float32))[0])
    one = OneRow(model)
    one.view[:] = array("f", [1, 2, 3])
    assert one.score() == expected == model.predict_one([1, 2, 3])
    assert one.bound, "the binding failed on a double output and fell back to session.run"


def test_predict_one_is_safe_across_threads(tmp_path: Path, trained):
    booster, test = trained
    model = read_model("p_click", save(convert(booster), tmp_path / "m.onnx", features_metadata()))
    expected = model.predict(test)
    failures: list[int] = []

    def work(offset: int) -> None:
        for index in range(offset, len(test), 4):
            for _ in range(3):
                if abs(model.predict_one(test[index].tolist()) - expected[index]) > 1e-7:
                    failures.append(index)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize(
    ("shape", "column"), [(["N"], -1), (["N", 1], 0), (["N", 2], 1)], ids=["[N]", "[N, 1]", "[N, 2]"]
)
def test_hand_built_probability_outputs(tmp_path: Path, shape: list, column: int):
    path = save(linear_model(shape, 0.0, sigmoid=True), tmp_path / "m.onnx", features_metadata(FEATURES[:3]))
    model = read_model("m", path)
    assert model.output_name == "p"
    rows = np.array([[0, 0, 0], [1, 2, 3], [-4, 0, 0]], dtype=np.float32)
    expected = 1 / (1 + np.exp(-rows.sum(axis=1) * 0.5))
    np.testing.assert_allclose(model.predict(rows), expected, atol=1e-6)
    assert model.predict_one([1, 2, 3]) == pytest.approx(expected[1], abs=1e-6)


def test_a_scikit_learn_model_with_metadata_added(tmp_path: Path):
    """The recipe of docs/models.md for a scikit-learn model (skl2onnx comes with onnxmltools)."""
    import skl2onnx
    import sklearn.linear_model as linear_model_module
    from skl2onnx.common.data_types import FloatTensorType as SklFloatTensorType

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, 3)).astype(np.float32)
    labels = (rows[:, 0] > 0).astype(int)
    classifier = linear_model_module.LogisticRegression().fit(rows, labels)
    converted = skl2onnx.convert_sklearn(
        classifier,
        initial_types=[("features", SklFloatTensorType([None, 3]))],
        options={id(classifier): {"zipmap": False}},
    )
    helper.set_model_props(converted, {"tailor.features": json.dumps(FEATURES[:3])})
    onnx.save_model(converted, tmp_path / "m.onnx")
    model = read_model("m", tmp_path / "m.onnx")
    np.testing.assert_allclose(model.predict(rows), classifier.predict_proba(rows)[:, 1], atol=1e-5)


# --- files tailor refuses -----------------------------------------------------------------


def test_a_missing_file(tmp_path: Path):
    error = error_of(tmp_path / "models" / "p_click.onnx")
    assert error.message == f"model file {tmp_path / 'models' / 'p_click.onnx'} does not exist"
    assert "relative to the .rules file" in error.hint


def test_a_directory_and_an_empty_file(tmp_path: Path):
    assert "is a directory" in error_of(tmp_path).message
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert error_of(tmp_path / "empty.onnx").message == "the model file is empty"


@pytest.mark.parametrize(
    "content", [b"not a model at all\n", b"\x08\x07\x12\x05hello\xff\xff", json.dumps({"features": []}).encode()]
)
def test_not_onnx(tmp_path: Path, content: bytes):
    (tmp_path / "m.onnx").write_bytes(content)
    error = error_of(tmp_path / "m.onnx")
    assert error.message.startswith("not a valid ONNX model")
    assert "onnxmltools" in error.hint


def test_no_features_metadata(tmp_path: Path, trained):
    error = error_of(save(convert(trained[0]), tmp_path / "m.onnx", None))
    assert error.message == "the model has no tailor.features metadata, so tailor cannot tell which features it takes"
    assert "set_model_props" in error.hint


def test_features_metadata_that_is_not_json(tmp_path: Path, trained):
    path = save(convert(trained[0]), tmp_path / "m.onnx", {"tailor.features": 'views(24h), since("purchase")'})
    error = error_of(path)
    assert error.message.startswith("the model's tailor.features metadata is not JSON")
    assert 'views(24h), since("purchase")' in error.message
    assert "JSON list" in error.hint


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"views(24h)": 0}', "must be a JSON list of feature texts, not an object"),
        ('"views(24h)"', 'must be a JSON list of feature texts, not the text "views(24h)"'),
        ("3", "must be a JSON list of feature texts, not the number 3"),
        ("[]", "lists no features"),
        (
            '["views(24h)", 3, "user.age", "x"]',
            "feature 2 in the model's tailor.features metadata must be feature text",
        ),
        ('["views(24h)", "", "user.age", "x"]', "feature 2"),
        ('["views(24h)", "views(24h)", "user.age", "x"]', "lists views(24h) twice"),
    ],
)
def test_features_metadata_that_is_not_a_list_of_texts(tmp_path: Path, trained, value: str, says: str):
    error = error_of(save(convert(trained[0]), tmp_path / "m.onnx", {"tailor.features": value}))
    assert says in error.message


def test_more_features_listed_than_the_model_takes(tmp_path: Path, trained):
    listed = [*FEATURES, 'user.tier == "gold"']
    error = error_of(save(convert(trained[0]), tmp_path / "m.onnx", features_metadata(listed)))
    assert error.message == "the model expects 4 input features but tailor.features lists 5"
    assert "in column order" in error.hint


def test_fewer_features_listed_than_the_model_takes(tmp_path: Path, trained):
    error = error_of(save(convert(trained[0]), tmp_path / "m.onnx", features_metadata(FEATURES[:3])))
    assert error.message == "the model expects 4 input features but tailor.features lists 3"


def test_a_zipmap_output_is_not_a_probability_tensor(tmp_path: Path, trained):
    error = error_of(save(convert(trained[0], zipmap=True), tmp_path / "m.onnx", features_metadata()))
    assert error.message.startswith("the model has no probability output: its outputs are label (tensor(int64))")
    assert "zipmap" in error.hint


def test_a_regressor_is_not_a_probability(tmp_path: Path):
    path = save(linear_model(["N", 1], 5.0, sigmoid=False), tmp_path / "m.onnx", features_metadata(FEATURES[:3]))
    error = error_of(path)
    assert error.message == "the model's output p is 5 for a row of zeros: not a probability between 0 and 1"
    assert "raw scores" in error.hint


def test_a_multiclass_output(tmp_path: Path):
    path = save(linear_model(["N", 3], 0.0, sigmoid=True), tmp_path / "m.onnx", features_metadata(FEATURES[:3]))
    assert error_of(path).message == "the model's output p has 3 columns: it is not a binary classifier"


def test_inputs_that_are_not_one_float_matrix(tmp_path: Path):
    def model(inputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        nodes = [helper.make_node("Cast", [inputs[0].name], ["p"], to=TensorProto.FLOAT)]
        output = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 1])
        graph = helper.make_graph(nodes, "g", inputs, [output])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    two = model(
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1]),
        ]
    )
    error = error_of(save(two, tmp_path / "two.onnx", features_metadata(FEATURES[:1])))
    assert error.message == "the model has 2 inputs (a, b); tailor feeds one float input of shape [N, 1]"
    double = model([helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 1])])
    error = error_of(save(double, tmp_path / "double.onnx", features_metadata(FEATURES[:1])))
    assert error.message == "the model's input x is a tensor(double); tailor feeds a tensor(float) of shape [N, 1]"
    flat = model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])])
    error = error_of(save(flat, tmp_path / "flat.onnx", features_metadata(FEATURES[:1])))
    assert error.message == "the model's input x has shape [N]; tailor feeds rows: [N, 1]"


def test_model_error_carries_message_and_hint():
    error = ModelError("the model expects 4 input features but tailor.features lists 5", "list them")
    assert error.message.endswith("lists 5")
    assert error.hint == "list them"
    assert str(error) == f"{error.message} (list them)"


# --- the shipped example model --------------------------------------------------------------


def test_the_retail_model_is_a_valid_model_file():
    model = read_model("p_click", SHIPPED)
    assert SHIPPED.stat().st_size < 300_000
    for text in model.features:
        assert parse_feature(text).text == text, "features are listed in canonical text"
    metadata = model.metadata
    for key in TRAINING_KEYS:
        assert key in metadata, key
    assert metadata["tailor.label"] == "click"
    assert json.loads(metadata["tailor.targets"]) == ["acc-42"]
    assert float(metadata["tailor.auc"]) > 0.75
    assert 0 < float(metadata["tailor.logloss"]) < 0.5
    assert int(metadata["tailor.rows"]) > 10_000
    unknown = [math.nan] * len(model.features)
    assert 0 <= model.predict_one(unknown) <= 1
