"""Reading model files: ONNX classifiers that say which features they take.

A model file is an ONNX model with one float input of shape ``[N, F]`` and a
probability output, whose metadata property ``tailor.features`` is a JSON list
of the F input features in canonical feature text (``views("Electronics",
24h)``, ``since("purchase")``, ``context.device == "mobile"``). Booleans are
fed as 1/0 and unknown values as NaN. ``read_model`` checks all of that when
the file is loaded, so a broken file is refused with a message its author can
act on, never discovered by the first request that runs it.

The file itself must be a regular file no larger than ``ModelLimits.max_bytes``,
read within ``ModelLimits.read_timeout`` (see ``model_limits``): a FIFO, a
device or a stuck mount is an error, never a read that hangs.

The probability output is the one float tensor output (or, of several, the one
named like ``probabilities``): a column ``[N]`` or ``[N, 1]``, or ``[N, 2]``
for a binary classifier, whose second column is the positive class.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from .daemon_thread import call_within
from .model_limits import DEFAULT_MODEL_LIMITS, ModelLimits

FEATURES_KEY = "tailor.features"
TRAINING_KEYS = (
    "tailor.trained_at",
    "tailor.rows",
    "tailor.auc",
    "tailor.logloss",
    "tailor.label",
    "tailor.targets",
)

_FLOAT_TYPES = ("tensor(float)", "tensor(double)")
_NAN = math.nan

ADD_METADATA_HINT = (
    "add it when you save the model: "
    "onnx.helper.set_model_props(model, {'tailor.features': json.dumps([...])}) (see docs/models.md)"
)


class HintedError(Exception):
    """What is wrong, and what to do about it: the two parts a message to a user needs."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ModelError(HintedError):
    """A model file tailor cannot use."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A loaded, checked model: its features, version, metadata and an inference session."""

    name: str
    path: Path
    features: tuple[str, ...]
    version: str  # the first 16 hex digits of the SHA-256 of the file
    metadata: dict[str, str]
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    output_name: str
    column: int = field(default=0, repr=False, compare=False)  # the positive class's column; -1 for a [N] output
    data: bytes = field(default=b"", repr=False, compare=False)  # the file as read: what a pickle carries
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the bytes read, checked already: loading it only starts a session (the hot reload's
        compile worker hands models over this way, and the file may have changed since)."""
        fields = (self.name, self.path, self.features, self.version, self.metadata)
        return _restored, (*fields, self.input_name, self.output_name, self.column, self.data)

    @property
    def width(self) -> int:
        return len(self.features)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The positive class's probability for each row of a float32 ``[N, F]`` array."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"model {self.name} takes rows of {self.width} features, not an array of {rows.shape}")
        (output,) = self.session.run([self.output_name], {self.input_name: rows})
        return output if self.column < 0 else output[:, self.column]

    def predict_one(self, row: Sequence[float | None]) -> float:
        """One row's probability, through this thread's ``OneRow``: no allocations but onnxruntime's.

        A None in the row is unknown (fed as NaN), like a NaN.
        """
        one = getattr(self._local, "one", None)
        if one is None:
            one = self._local.one = OneRow(self)
        if len(row) != self.width:
            raise ValueError(f"model {self.name} takes {self.width} features, not {len(row)}")
        view = one.view
        try:
            view[:] = array("f", row)  # one copy in C; a row of floats (and ints) is the common case
        except TypeError:  # a None (unknown) or another number type: one by one
            for index, value in enumerate(row):
                view[index] = _NAN if value is None else float(value)
        return one.score()


class OneRow:
    """One thread's buffers for ``ModelFile.predict_one``: the input row and the probability output.

    Where onnxruntime allows it, both are bound to the session once (an IOBinding), so a run converts
    nothing: ``session.run`` checks its feed and wraps the row and the outputs in new objects on every
    call, about half of a small model's time. The binding is run through the session's own native
    object (``InferenceSession._sess``), as the public ``run_with_iobinding`` does after steps for GPU
    graph capture that cost more than the inference. The output buffer takes the output's own element
    type (a probability may be float or double). A release without that path, or a binding whose run
    fails, falls back to ``session.run`` on the same buffers, with the same results; ``bound`` says
    whether the binding is in use.
    """

    __slots__ = ("_at", "_binding", "_feed", "_output", "_outputs", "_run", "_session", "view")

    def __init__(self, model: ModelFile):
        buffer = np.zeros((1, model.width), dtype=np.float32)
        self.view = memoryview(buffer).cast("B").cast("f")
        self._at: tuple[int, ...] = (0,) if model.column < 0 else (0, model.column)
        kind = next((o.type for o in model.session.get_outputs() if o.name == model.output_name), "tensor(float)")
        dtype = np.float64 if kind == "tensor(double)" else np.float32
        self._output = np.zeros((1,) if model.column < 0 else (1, model.column + 1), dtype=dtype)
        self._session = model.session
        self._feed = {model.input_name: buffer}
        self._outputs = [model.output_name]
        self._run: Any = None
        self._binding: Any = None
        try:
            binding = model.session.io_binding()
            binding.bind_cpu_input(model.input_name, buffer)
            binding.bind_ortvalue_output(model.output_name, onnxruntime.OrtValue.ortvalue_from_numpy(self._output))
            run, native_binding = model.session._sess.run_with_iobinding, binding._iobinding
        except AttributeError:  # an onnxruntime without these: session.run
            pass
        else:
            self._binding = binding  # holds the buffers' bindings for as long as this lives
            self._run = lambda: run(native_binding, None)

    @property
    def bound(self) -> bool:
        return self._run is not None

    def score(self) -> float:
        """The probability of the row in ``view``."""
        if self._run is not None:
            try:
                self._run()
                return float(self._output[self._at])
            except Exception:  # a binding this model's outputs do not fit: session.run from now on
                self._run = self._binding = None
        (output,) = self._session.run(self._outputs, self._feed)
        return float(output[self._at])


def read_model(name: str, path: Path, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> ModelFile:
    """Load and check the model file at ``path``; raise ``ModelError`` when tailor cannot use it."""
    path = Path(path)
    data = _read_bytes(path, limits)
    session = _session(data)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    features = _features(metadata)
    input_name, input_width = _input(session, len(features))
    output_name, output_width = _output(session)
    column = -1 if output_width is None else output_width - 1
    model = ModelFile(
        name=name,
        path=path,
        features=features,
        version=hashlib.sha256(data).hexdigest()[:16],
        metadata=metadata,
        session=session,
        input_name=input_name,
        output_name=output_name,
        column=column,
        data=data,
    )
    _probe(model, input_width is None)
    return model


def _restored(
    name: str,
    path: Path,
    features: tuple[str, ...],
    version: str,
    metadata: dict[str, str],
    input_name: str,
    output_name: str,
    column: int,
    data: bytes,
) -> ModelFile:
    return ModelFile(name, path, features, version, metadata, _session(data), input_name, output_name, column, data)


# --- the checks, in the order a file is read -------------------------------------------


def _read_bytes(path: Path, limits: ModelLimits) -> bytes:
    """The file's bytes, read in a thread that is abandoned if the file system does not answer in time."""
    try:
        return call_within(lambda: _read_regular_file(path, limits.max_bytes), limits.read_timeout, name="model read")
    except TimeoutError:
        raise ModelError(
            f"model file {path} took longer than {limits.read_timeout:g} s to read",
            "check the file system it is on (a network mount that stopped answering?)",
        ) from None


def _read_regular_file(path: Path, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ModelError(
            f"model file {path} does not exist",
            "the path is relative to the .rules file that declares the model; train one with tailor train",
        ) from None
    except OSError as exc:
        raise ModelError(
            f"cannot read model file {path}: {exc.strerror or exc}", "check the file's permissions"
        ) from None
    try:
        info = os.fstat(fd)  # of what was opened: the path may have been swapped since
        if stat.S_ISDIR(info.st_mode):
            raise ModelError(f"{path} is a directory, not a model file", "point the model at the .onnx file inside")
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(
                f"model file {path} is not a regular file (it is a {_file_kind(info.st_mode)})",
                "point the model at an .onnx file",
            )
    except BaseException:
        os.close(fd)
        raise
    too_big = ModelError(
        f"model file {path} is larger than {_bytes(max_bytes)}",
        "check that the path names the model; a larger model needs a higher model size limit",
    )
    with open(fd, "rb", closefd=True) as file:
        if info.st_size > max_bytes:
            raise too_big
        try:
            data = file.read(max_bytes + 1)  # the file may grow while it is read
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}", "check the file") from None
    if len(data) > max_bytes:
        raise too_big
    return data


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            return f"{count / size:.4g} {unit}"
    return _plural(count, "byte")


def _session(data: bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: converters often declare output shapes loosely
    if not data:
        raise ModelError("the model file is empty", "write the model with onnx.save_model or model.SerializeToString()")
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        raise ModelError(
            f"not a valid ONNX model: {_reason(exc)}",
            "export the model to ONNX (onnxmltools for LightGBM and XGBoost, skl2onnx for scikit-learn)",
        ) from None


def _features(metadata: dict[str, str]) -> tuple[str, ...]:
    text = metadata.get(FEATURES_KEY)
    if text is None:
        raise ModelError(
            f"the model has no {FEATURES_KEY} metadata, so tailor cannot tell which features it takes",
            ADD_METADATA_HINT,
        )
    try:
        features = json.loads(text)
    except ValueError as exc:
        raise ModelError(
            f"the model's {FEATURES_KEY} metadata is not JSON ({exc.msg} at character {exc.pos}): {_clip(text)}",
            'write a JSON list of feature texts, like ["views(\\"Electronics\\", 24h)", "since(\\"purchase\\")"]',
        ) from None
    if not isinstance(features, list):
        raise ModelError(
            f"the model's {FEATURES_KEY} metadata must be a JSON list of feature texts, not {_json_kind(features)}",
            'write it like ["views(\\"Electronics\\", 24h)", "since(\\"purchase\\")"]',
        )
    if not features:
        raise ModelError(f"the model's {FEATURES_KEY} metadata lists no features", "list the model's input features")
    for index, feature in enumerate(features):
        if not isinstance(feature, str) or not feature.strip():
            raise ModelError(
                f"feature {index + 1} in the model's {FEATURES_KEY} metadata must be feature text, "
                f"not {json.dumps(feature)}",
                'each feature is text in the rules language, like views("Electronics", 24h) or user.tier == "gold"',
            )
    seen: set[str] = set()
    for feature in features:
        if feature in seen:
            raise ModelError(
                f"the model's {FEATURES_KEY} metadata lists {feature} twice",
                "each input column is one feature; list each feature once",
            )
        seen.add(feature)
    return tuple(features)


def _input(session: Any, width: int) -> tuple[str, int | None]:
    """The input's name and its declared width (None when the model leaves it open)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(
            f"the model has {len(inputs)} inputs ({names}); tailor feeds one float input of shape [N, {width}]",
            "convert the model with a single input: initial_types=[('features', FloatTensorType([None, F]))]",
        )
    (source,) = inputs
    if source.type != "tensor(float)":
        raise ModelError(
            f"the model's input {source.name} is a {source.type}; tailor feeds a tensor(float) of shape [N, {width}]",
            "convert the model with FloatTensorType([None, F]) as its input type",
        )
    shape = list(source.shape)
    if len(shape) != 2:
        raise ModelError(
            f"the model's input {source.name} has shape {_shape(shape)}; tailor feeds rows: [N, {width}]",
            "convert the model with FloatTensorType([None, F]) as its input type",
        )
    declared = shape[1] if isinstance(shape[1], int) else None
    if declared is not None and declared != width:
        raise ModelError(
            f"the model expects {_plural(declared, 'input feature')} but {FEATURES_KEY} lists {width}",
            f"list exactly the model's {declared} input features, in column order, in {FEATURES_KEY}",
        )
    return source.name, declared


def _output(session: Any) -> tuple[str, int | None]:
    """The probability output's name and its declared width (None for a column of shape [N])."""
    outputs = session.get_outputs()
    floats = [o for o in outputs if o.type in _FLOAT_TYPES]
    if not floats:
        described = ", ".join(f"{o.name} ({o.type})" for o in outputs) or "none"
        zipmap = any(o.type.startswith("seq(map") for o in outputs)
        raise ModelError(
            f"the model has no probability output: its outputs are {described}",
            "convert the classifier with zipmap disabled (zipmap=False, or options={id(model): {'zipmap': False}})"
            if zipmap
            else "the model must output the positive class's probability as a float tensor",
        )
    if len(floats) > 1:
        named = [o for o in floats if "prob" in o.name.lower()]
        if len(named) != 1:
            raise ModelError(
                "the model has several float outputs (" + ", ".join(o.name for o in floats) + "); "
                "tailor cannot tell which one is the probability",
                "keep one float output, or name the probability output 'probabilities'",
            )
        floats = named
    (output,) = floats
    shape = list(output.shape)
    if len(shape) == 1:
        return output.name, None
    if len(shape) == 2:
        columns = shape[1]
        if isinstance(columns, int) and columns not in (1, 2):
            raise ModelError(
                f"the model's output {output.name} has {columns} columns: it is not a binary classifier",
                "tailor uses the probability of the positive class; train a binary classifier",
            )
        return output.name, columns if isinstance(columns, int) else 2
    raise ModelError(
        f"the model's output {output.name} has shape {_shape(shape)}; tailor needs probabilities [N] or [N, 2]",
        "output the positive class's probability, one value (or one row of two) per input row",
    )


def _probe(model: ModelFile, open_width: bool) -> None:
    """Run one row of zeros: the model runs, and answers a probability."""
    try:
        (output,) = model.session.run([model.output_name], {model.input_name: np.zeros((1, model.width), np.float32)})
    except Exception as exc:
        reason = _reason(exc)
        hint = (
            f"the model's input width is open; check that it takes the {model.width} features {FEATURES_KEY} lists"
            if open_width
            else "check that the model runs in onnxruntime"
        )
        raise ModelError(f"the model fails on a row of {model.width} features: {reason}", hint) from None
    output = np.asarray(output)
    if output.ndim == 2 and output.shape[1] > 2:
        raise ModelError(
            f"the model's output {model.output_name} has {output.shape[1]} columns: it is not a binary classifier",
            "tailor uses the probability of the positive class; train a binary classifier",
        )
    if output.ndim == 2 and output.shape[1] == 1 and model.column != 0:
        object.__setattr__(model, "column", 0)
    value = float(output.reshape(-1)[model.column if output.ndim == 2 else 0])
    if not 0.0 <= value <= 1.0:
        raise ModelError(
            f"the model's output {model.output_name} is {value:g} for a row of zeros: "
            "not a probability between 0 and 1",
            "export a classifier's probabilities, not raw scores or a regressor's predictions",
        )


# --- wording -------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    """The first line of an onnxruntime error, without its "[ONNXRuntimeError] : 7 : CODE : " prefix."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0]
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", first)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _shape(shape: list[Any]) -> str:
    return "[" + ", ".join("N" if not isinstance(d, int) else str(d) for d in shape) + "]"


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return f"the text {json.dumps(value)}"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return f"the number {value}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
