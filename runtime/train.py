"""Training a click model from an event log, with the features the rules language computes.

``tailor train`` replays the log, in time order, into a ``MemoryStore`` (the
store the server decides with), and at every *labelled impression* (an
``impression`` event whose key is one of the target contents) fetches the
model's features as of that moment: before the impression, and before anything
that happened at the same time or later, is recorded. Training and serving
therefore compute every feature the same way, and no row sees its own future.

The label is 1 when the same user has a ``--label`` event (``click``) on the
same key within the label window (30 minutes) after the impression. The rows
are split by time: LightGBM learns from the earlier part and is scored on the
later part (AUC, log-loss). The model is converted to ONNX, the metadata of the
model file contract is added, and the file is read back with ``read_model`` and
checked against LightGBM before it is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailor.compiler.check import check
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.compiler.models import ModelInput, compile_inputs, input_vector
from tailor.compiler.plan import value_type
from tailor.compiler.values import Values
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.parser import parse_expression
from tailor.dsl.printer import duration_text, expression_text

from .events import DEFAULT_RETENTION, Event
from .memory_store import MemoryStore
from .onnx_models import HintedError, ModelError, read_model

LABEL_WINDOW = 1800.0
AGREEMENT = 1e-5  # how closely ONNX Runtime must reproduce LightGBM
IMPRESSION = "impression"
PROFILE = "profile"


class TrainError(HintedError):
    """Training cannot go on."""


# --- features ------------------------------------------------------------------------

FEATURES = "features"  # the name training compiles its features under, as the inputs of a model
FEATURE_HINT = (
    'a feature is a number or true/false: feature functions like views("Electronics", 24h), '
    'and user.X or context.X compared, like user.tier == "gold"; segments and models are not available'
)


def parse_feature(text: str) -> ModelInput:
    """A feature written in the rules language, compiled as the server compiles a model's inputs.

    Its text is canonical (the text the model file lists), and it is checked in
    an empty ruleset: feature functions, ``user.X`` and ``context.X`` (typed by
    how the feature uses them) and operators, but no segments or models.
    """
    source = text.strip()
    if not source:
        raise TrainError("a feature is empty", 'write one feature per line, like views("Electronics", 24h)')
    try:
        canonical = expression_text(parse_expression(source, "<feature>"))
    except RulesError as exc:
        first = exc.diagnostics[0]
        raise TrainError(
            f"feature {source} is not an expression of the rules language: {first.message}", first.hint
        ) from None
    program, _ = check([], FEATURES)
    inputs, problems = compile_inputs(program, FEATURES, [canonical], None)
    if problems:
        first = problems[0]
        problem = first.message.removeprefix(f"model {FEATURES}: input 1 ({canonical}): ")
        raise TrainError(f"feature {source}: {problem}", first.hint or FEATURE_HINT)
    return inputs[0]


def parse_features(texts: Iterable[str]) -> list[ModelInput]:
    features = [parse_feature(text) for text in texts]
    seen: set[str] = set()
    for feature in features:
        if feature.text in seen:
            raise TrainError(f"feature {feature.text} is listed twice", "list each feature once")
        seen.add(feature.text)
    if not features:
        raise TrainError("no features to train on", "list them in a file, one per line, or separated by commas")
    return features


def read_feature_list(spec: str) -> list[str]:
    """Feature texts from a file (one per line; # starts a comment) or a comma-separated list."""
    path = Path(spec)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [part.strip() for part in split_top_level(spec) if part.strip()]


def split_top_level(text: str) -> list[str]:
    """Split on the commas outside strings, parentheses and brackets."""
    parts: list[str] = []
    depth = 0
    quoted = escaped = False
    start = 0
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True, slots=True)
class FeatureRows:
    """Model rows of compiled features: ``input_vector`` over ``Values``, as the server computes them.

    Unknown propagates as in rules; a row holds numbers as they are, true/false
    as 1/0 and unknown as NaN. Attributes take any value (``value_type`` with no
    attribute types); counters and ``since()`` are numbers.
    """

    features: tuple[ModelInput, ...]
    refs: dict[str, FeatureRef]  # every value the features read, by text
    types: dict[str, str]  # the type each value must have

    @staticmethod
    def of(features: Iterable[ModelInput]) -> FeatureRows:
        features = tuple(features)
        refs = {ref.text: ref for feature in features for ref in feature.refs}
        return FeatureRows(features, refs, {text: value_type(ref, {}) for text, ref in refs.items()})

    def store_refs(self) -> list[FeatureRef]:
        """What the store answers: everything but the context's attributes."""
        return [ref for ref in self.refs.values() if ref.kind is not FeatureKind.CONTEXT]

    def row(self, fetched: Mapping[str, Any], context: Mapping[str, Any], where: str = "") -> list[float]:
        """One row from what the store answered (by feature text) and the request's context."""
        values = Values(context, fetched, self.refs, self.types)
        try:
            return input_vector(self.features, values)
        except (TypeError, ValueError):  # an attribute of a type its feature cannot compute with
            for feature in self.features:
                try:
                    input_vector([feature], values)
                except (TypeError, ValueError):
                    read = ", ".join(f"{ref.text} = {values[ref.text]!r}" for ref in feature.refs)
                    raise TrainError(
                        f"feature {feature.text} cannot be computed from {read}{where}",
                        "send each attribute as the type its features use it as, like a number where one "
                        "is compared with numbers",
                    ) from None
            raise


# --- the event log --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line of the log: a store event, a profile update, or an impression with its context."""

    event: Event
    ts: float
    context: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] | None = None  # for profile events


def read_events(path: Path) -> list[LogEvent]:
    """The log's events, in time order (file order among equal times)."""
    events: list[LogEvent] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    events.append(parse_event(line, f"{path.name}:{number}"))
    except UnicodeDecodeError:
        raise TrainError(f"{path.name} is not UTF-8 text", "the event log is JSON lines in UTF-8") from None
    events.sort(key=lambda e: e.ts)
    return events


def parse_event(line: str, where: str) -> LogEvent:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise TrainError(f"{where}: not JSON ({exc})", "write one JSON object per line") from None
    if not isinstance(data, dict):
        raise TrainError(f"{where}: not a JSON object", "write one JSON object per line")

    def bad(problem: str) -> TrainError:
        return TrainError(f"{where}: {problem}", "an event is {user_id, type, key?, value?, ts, id?}")

    user_id, type_, ts = data.get("user_id"), data.get("type"), data.get("ts")
    if not isinstance(user_id, str) or not user_id:
        raise bad("the event has no user_id")
    if not isinstance(type_, str) or not type_:
        raise bad("the event has no type")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise bad("the event has no ts (epoch seconds); training needs every event's time")
    key, value, event_id = data.get("key"), data.get("value"), data.get("id")
    if key is not None and not isinstance(key, str):
        raise bad(f"the event's key is not text: {key!r}")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad(f"the event's value is not a number: {value!r}")
    if event_id is not None and not isinstance(event_id, str):
        raise bad(f"the event's id is not text: {event_id!r}")
    context = data.get("context") or {}
    if not isinstance(context, dict):
        raise bad("the event's context is not an object")
    attributes = None
    if type_ == PROFILE:
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            raise bad('a profile event needs "attributes": an object of profile attributes')
    event = Event(user_id, type_, key, value, float(ts), event_id)
    return LogEvent(event, float(ts), context, attributes)


# --- the training rows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dataset:
    """One row per labelled impression, in time order."""

    features: tuple[str, ...]
    rows: np.ndarray  # float32 [N, F]
    labels: np.ndarray  # int8 [N]
    times: np.ndarray  # float64 [N]: the impressions' times
    users: tuple[str, ...]
    keys: tuple[str, ...]
    censored: int = 0  # impressions left out: the log ends before their label window does


Progress = Callable[[int, int, int], None]  # (events replayed, events in all, rows so far)


def build_dataset(
    events: Sequence[LogEvent],
    features: Sequence[ModelInput],
    label: str,
    targets: Iterable[str],
    label_window: float = LABEL_WINDOW,
    retention: float = DEFAULT_RETENTION,
    progress: Progress | None = None,
) -> Dataset:
    """Replay ``events`` (in time order) and compute each labelled impression's row as of its moment."""
    targets = frozenset(targets)
    clicks: dict[tuple[str, str | None], list[float]] = {}
    for item in events:
        if item.event.type == label:
            clicks.setdefault((item.event.user_id, item.event.key), []).append(item.ts)
    last = events[-1].ts if events else 0.0
    inputs = FeatureRows.of(features)
    refs = inputs.store_refs()
    store = MemoryStore(retention)
    rows: list[list[float]] = []
    labels: list[int] = []
    times: list[float] = []
    users: list[str] = []
    keys: list[str] = []
    censored = 0
    pending: list[Event] = []

    def flush() -> None:
        if pending:
            store.record_now(pending, now=pending[-1].ts)
            pending.clear()

    total = len(events)
    start = 0
    while start < total:
        ts = events[start].ts
        stop = start
        while stop < total and events[stop].ts == ts:
            stop += 1
        group = events[start:stop]
        # First every row at this moment, from what happened strictly before it ...
        for item in group:
            event = item.event
            if event.type != IMPRESSION or event.key not in targets:
                continue
            if ts + label_window > last:
                censored += 1
                continue
            flush()
            fetched = store.fetch_now(event.user_id, refs, at=ts)
            rows.append(inputs.row(fetched, item.context, f", for user {event.user_id} at ts {ts:g}"))
            after = clicks.get((event.user_id, event.key), [])
            index = bisect_right(after, ts)
            labels.append(int(index < len(after) and after[index] <= ts + label_window))
            times.append(ts)
            users.append(event.user_id)
            keys.append(event.key or "")
        # ... then this moment's events, for the rows that come later.
        for item in group:
            if item.attributes is not None:
                flush()
                store.set_profile_now(item.event.user_id, item.attributes)
            else:
                pending.append(item.event)
                if len(pending) >= 500:
                    flush()
        start = stop
        if progress is not None:
            progress(start, total, len(rows))
    flush()
    width = len(features)
    return Dataset(
        features=tuple(f.text for f in features),
        rows=np.asarray(rows, dtype=np.float32).reshape(len(rows), width),
        labels=np.asarray(labels, dtype=np.int8),
        times=np.asarray(times, dtype=np.float64),
        users=tuple(users),
        keys=tuple(keys),
        censored=censored,
    )


# --- metrics -------------------------------------------------------------------------------


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve (ties count half); NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    index = 0
    while index < len(scores):  # average ranks over ties
        end = index
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[index]:
            end += 1
        ranks[order[index : end + 1]] = (index + end) / 2 + 1
        index = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# --- training --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainOptions:
    events: Path
    label: str
    targets: tuple[str, ...]
    features: tuple[str, ...]
    out: Path
    holdout: float = 0.2
    seed: int = 0
    label_window: float = LABEL_WINDOW
    retention: float = DEFAULT_RETENTION
    trees: int = 100
    leaves: int = 15


@dataclass(frozen=True, slots=True)
class TrainReport:
    out: Path
    size: int  # bytes
    version: str
    rows: int
    train_rows: int
    holdout_rows: int
    positive_rate: float
    auc: float
    logloss: float
    agreement: float  # the largest difference between LightGBM and ONNX Runtime
    censored: int
    metadata: dict[str, str]


def train(options: TrainOptions, progress: Progress | None = None) -> TrainReport:
    """Read the log, build the rows, train, convert, verify and write the model file."""
    if not 0 < options.holdout < 1:
        raise TrainError(f"--holdout must be between 0 and 1, not {options.holdout}", "0.2 keeps the last fifth")
    if not options.targets:
        raise TrainError("no target contents", "name the impressions' keys to learn from with --target")
    features = parse_features(options.features)
    if not options.events.is_file():
        raise TrainError(f"{options.events} does not exist", "simulate a log with tailor simulate")
    events = read_events(options.events)
    dataset = build_dataset(
        events, features, options.label, options.targets, options.label_window, options.retention, progress
    )
    return fit(dataset, options, _digest(options.events))


def fit(dataset: Dataset, options: TrainOptions, events_digest: str = "") -> TrainReport:
    """Train on the earlier rows, score on the later ones, convert, verify, write."""
    import lightgbm

    rows = len(dataset.labels)
    cut = round(rows * (1 - options.holdout))
    if rows < 20 or cut < 10 or rows - cut < 10:
        raise TrainError(
            f"only {rows} labelled impressions of {', '.join(options.targets)} in the log",
            "check --target against the impressions' keys, or use a longer log",
        )
    x_train, y_train = dataset.rows[:cut], dataset.labels[:cut]
    x_test, y_test = dataset.rows[cut:], dataset.labels[cut:]
    for part, y in (("training", y_train), ("holdout", y_test)):
        if y.min() == y.max():
            outcome = "clicked" if y.min() else "was not clicked"
            raise TrainError(
                f"every {part} impression {outcome}: there is nothing to learn or to score",
                f"check --label (the event type that counts as a {options.label}) and use a longer log",
            )
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": options.leaves,
        "min_data_in_leaf": 20,
        "lambda_l2": 1.0,
        "seed": options.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    data = lightgbm.Dataset(x_train, y_train, feature_name=[f"f{i}" for i in range(x_train.shape[1])])
    booster = _float32_thresholds(lightgbm.train(params, data, num_boost_round=options.trees))

    metadata_base = {
        "tailor.features": json.dumps(list(dataset.features), ensure_ascii=False),
        "tailor.label": options.label,
        "tailor.label_window": duration_text(options.label_window),
        "tailor.targets": json.dumps(list(options.targets), ensure_ascii=False),
    }
    model = _to_onnx(booster, len(dataset.features))
    expected = booster.predict(x_test)
    score = auc(y_test, expected)
    loss = log_loss(y_test, expected)
    metadata = {
        **metadata_base,
        "tailor.trained_at": _trained_at(),
        "tailor.rows": str(rows),
        "tailor.train_rows": str(cut),
        "tailor.holdout_rows": str(rows - cut),
        "tailor.holdout": f"{options.holdout:g}",
        "tailor.positive_rate": f"{float(dataset.labels.mean()):.4f}",
        "tailor.auc": f"{score:.4f}",
        "tailor.logloss": f"{loss:.4f}",
        "tailor.trainer": f"lightgbm {lightgbm.__version__}: {options.trees} trees, {options.leaves} leaves",
        "tailor.seed": str(options.seed),
    }
    if events_digest:
        metadata["tailor.events"] = events_digest
    import onnx

    onnx.helper.set_model_props(model, metadata)
    data_bytes = model.SerializeToString()
    agreement = _verify(booster, data_bytes, x_test, options.out)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = options.out.with_name(options.out.name + ".tmp")
    temporary.write_bytes(data_bytes)
    os.replace(temporary, options.out)
    return TrainReport(
        out=options.out,
        size=len(data_bytes),
        version=hashlib.sha256(data_bytes).hexdigest()[:16],
        rows=rows,
        train_rows=cut,
        holdout_rows=rows - cut,
        positive_rate=float(dataset.labels.mean()),
        auc=score,
        logloss=loss,
        agreement=agreement,
        censored=dataset.censored,
        metadata=metadata,
    )


def _float32_thresholds(booster: Any) -> Any:
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


def _to_onnx(booster: Any, width: int) -> Any:
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
    model.producer_name = "tailor"
    model.doc_string = "A click model trained by tailor train; see docs/models.md."
    return model


def _verify(booster: Any, data: bytes, x_test: np.ndarray, out: Path) -> float:
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


def _trained_at() -> str:
    """Now, in UTC; or SOURCE_DATE_EPOCH, for byte-identical rebuilds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.name} sha256:{digest.hexdigest()[:16]}"


# --- progress ---------------------------------------------------------------------------------


def terminal_progress(stream: Any = None) -> Progress | None:
    """A progress line on a terminal, redrawn at most 5 times a second; None when not a terminal."""
    stream = sys.stderr if stream is None else stream
    if not stream.isatty():
        return None
    last = [0.0]

    def show(done: int, total: int, rows: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.2:
            return
        last[0] = now
        percent = 100 * done // max(total, 1)
        stream.write(f"\rreplaying events: {percent:3d}% ({done:,} of {total:,}), {rows:,} rows")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
