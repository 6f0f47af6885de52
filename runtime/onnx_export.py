"""A trained LightGBM booster as an ONNX model tailor serves, checked against LightGBM before it is written.

The booster's split thresholds are first lowered to float32, so the float32
ONNX trees are exact; the converted model is then read back with
``read_model``, as the server reads it, and must reproduce LightGBM within
``AGREEMENT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .onnx_models import ModelError, read_model
from .train_error import TrainError

AGREEMENT = 1e-5  # how closely ONNX Runtime must reproduce LightGBM


def float32_thresholds(booster: Any) -> Any:
    """The same model with every split threshold lowered to the largest float32 not above it.

    For float32 inputs (all a model ever sees) ``x <= t`` and ``x <= t32`` agree,
    so LightGBM's predictions do not change; but ONNX stores thresholds as
    float32, and a threshold rounded *up* would send the input equal to the
    rounded value the other way. Lowered, the converted model is exact.
    """
    import lightgbm

    lines = booster.model_to_string().split("\n")
    for index, line in enumerate(lines):
        if line.startswith("tree_sizes="):
            lines[index] = ""  # the byte sizes of the trees' text, which this changes: LightGBM reads on without
        elif line.startswith("threshold="):
            values = [float(v) for v in line[len("threshold=") :].split()]
            lines[index] = "threshold=" + " ".join(repr(_float32_floor(v)) for v in values)
    return lightgbm.Booster(model_str="\n".join(lines))


def _float32_floor(value: float) -> float:
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def to_onnx(booster: Any, width: int) -> Any:
    """The booster as an ONNX model of one float input ``[N, width]`` and a probability output."""
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_lightgbm(
        booster, name="tailor", initial_types=[("features", FloatTensorType([None, width]))], zipmap=False
    )
    for output in model.graph.output:  # the converter declares the label output as [1]; it is [N]
        if output.name == "label":
            dims = output.type.tensor_type.shape.dim
            if len(dims) == 1:
                dims[0].Clear()
                dims[0].dim_param = "N"
    # The converter lists the opsets it imports in no fixed order: sorted, the same booster gives the same bytes.
    imports = sorted((entry.domain, entry.version) for entry in model.opset_import)
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    model.producer_name = "tailor"
    model.doc_string = "A click model trained by tailor train; see docs/models.md."
    return model


def served_scores(model: Any, rows: np.ndarray) -> np.ndarray:
    """What the server computes for ``rows`` with the converted ``model``: ONNX Runtime's float32
    probabilities, read as Python floats. The training distribution is cut on these, not on LightGBM's
    float64 ones, so a score on a cut point falls on the same side in training and serving."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"features": np.asarray(rows, dtype=np.float32)})
    return probabilities[:, 1].astype(np.float64)


def verify(booster: Any, data: bytes, x_test: np.ndarray, out: Path) -> float:
    """Read the file back as the server will, and check it against LightGBM on the holdout,
    and on holdout rows with each feature in turn unknown. Raises ``TrainError`` if they differ."""
    probe = out.with_name(out.name + ".verify")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        probe.write_bytes(data)
        model = read_model(out.stem, probe)
    except ModelError as exc:
        raise TrainError(f"the converted model does not load: {exc.message}", exc.hint) from None
    finally:
        probe.unlink(missing_ok=True)
    sample = x_test[:256]
    unknowns = []
    for column in range(x_test.shape[1]):
        variant = sample.copy()
        variant[:, column] = np.nan
        unknowns.append(variant)
    rows = np.concatenate([x_test, *unknowns]).astype(np.float32)
    expected = booster.predict(rows)
    actual = model.predict(rows)
    gaps = np.abs(expected - actual)
    worst = int(np.argmax(gaps))
    if not gaps[worst] <= AGREEMENT:
        raise TrainError(
            f"ONNX Runtime and LightGBM disagree by {gaps[worst]:.2g} on verification row {worst} "
            f"({actual[worst]:.6f} against {expected[worst]:.6f}); the model was not written",
            "this is a converter bug: try another onnxmltools or lightgbm version",
        )
    single = model.predict_one(rows[0].tolist())
    if abs(single - float(expected[0])) > AGREEMENT:
        raise TrainError("the model answers one row differently from a batch; the model was not written")
    return float(gaps[worst])
