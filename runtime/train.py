"""Training a click model from an event log, with the features the rules language computes.

``tailor train`` reads the log (``event_log``), compiles the features
(``feature_rows``) and replays the log into one row per labelled impression,
as of its moment (``dataset``). The rows are split by time: LightGBM learns
from the earlier part and is scored on the later part (AUC, log-loss). The
model is converted to ONNX, the metadata of the model file contract is added,
and the file is read back with ``read_model`` and checked against LightGBM
before it is written (``onnx_export``).

This module is the public entry to training: it also re-exports the names
callers imported from it before those steps had modules of their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailor.dsl.printer import duration_text

from .dataset import LABEL_WINDOW, Dataset, Progress, build_dataset
from .distributions import DISTRIBUTION_KEY, TrainingDistribution
from .event_log import read_events
from .events import DEFAULT_RETENTION
from .feature_rows import FeatureRows, parse_feature, parse_features, read_feature_list, split_top_level
from .onnx_export import float32_thresholds, served_scores, to_onnx, verify
from .train_error import TrainError

__all__ = [
    "LABEL_WINDOW",
    "Dataset",
    "FeatureRows",
    "TrainError",
    "TrainOptions",
    "TrainReport",
    "auc",
    "build_dataset",
    "fit",
    "log_loss",
    "parse_feature",
    "parse_features",
    "read_events",
    "read_feature_list",
    "split_top_level",
    "terminal_progress",
    "train",
]


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


def fit(
    dataset: Dataset, options: TrainOptions, events_digest: str = "", provenance: Mapping[str, str] | None = None
) -> TrainReport:
    """Train on the earlier rows, score on the later ones, convert, verify, write; ``provenance`` is
    more metadata, saying where the rows came from."""
    import lightgbm

    rows = len(dataset.labels)
    cut = round(rows * (1 - options.holdout))
    if rows < 20 or cut < 10 or rows - cut < 10:
        of = f" of {', '.join(options.targets)}" if options.targets else ""
        raise TrainError(
            f"only {rows} labelled impressions{of} in the log",
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
    booster = float32_thresholds(lightgbm.train(params, data, num_boost_round=options.trees))

    metadata_base = {
        "tailor.features": json.dumps(list(dataset.features), ensure_ascii=False),
        "tailor.label": options.label,
        "tailor.label_window": duration_text(options.label_window),
        "tailor.targets": json.dumps(list(options.targets), ensure_ascii=False),
    }
    model = to_onnx(booster, len(dataset.features))
    distribution = TrainingDistribution.of(served_scores(model, x_train), x_train, dataset.features)
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
        "tailor.holdout_from": repr(float(dataset.times[cut])),
        DISTRIBUTION_KEY: distribution.to_json(),
    }
    if events_digest:
        metadata["tailor.events"] = events_digest
    metadata.update(provenance or {})
    import onnx

    onnx.helper.set_model_props(model, metadata)
    data_bytes = model.SerializeToString()
    agreement = verify(booster, data_bytes, x_test, options.out)
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
