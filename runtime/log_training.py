"""``tailor train --from-log``: a model trained on what was served (``log_dataset``), written as ``fit`` writes any.

The model file says where its rows came from (``tailor.from_log``, ``tailor.feedback``,
``tailor.model``, ``tailor.targets``) and where its holdout began (``tailor.holdout_from``):
``tailor promote`` reads them to compare it with the current model on the newest slice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tailor.dsl.printer import duration_text

from .dataset import LABEL_WINDOW
from .decision_log_reader import read_records
from .feature_rows import parse_features
from .log_dataset import JoinLookup, LogRows, build_log_rows
from .train import TrainOptions, TrainReport, fit
from .train_error import TrainError

FROM_LOG_KEY = "tailor.from_log"
FEEDBACK_KEY = "tailor.feedback"
MODEL_KEY = "tailor.model"


@dataclass(frozen=True, slots=True)
class LogTrainOptions:
    source: str  # a decision log directory, or a Redis URL
    joined: JoinLookup  # the join records (with feedback) of logged decisions
    feedback: str  # where ``joined`` reads them: kept in the metadata
    label: str
    model: str  # the model whose logged decisions are the rows
    features: tuple[str, ...]
    out: Path
    targets: tuple[str, ...] = ()
    holdout: float = 0.2
    seed: int = 0
    label_window: float = LABEL_WINDOW
    trees: int = 100
    leaves: int = 15
    now: float | None = None


def log_rows(options: LogTrainOptions) -> LogRows:
    """The labelled rows of the log; ``TrainError`` when the log cannot be read."""
    features = parse_features(options.features)
    if not Path(options.source).is_dir() and "://" not in options.source:
        raise TrainError(f"{options.source} is neither a decision log directory nor a Redis URL")
    return build_log_rows(
        read_records(options.source),
        options.joined,
        features,
        options.model,
        options.label,
        options.targets,
        options.label_window,
        options.now,
    )


def train_from_log(options: LogTrainOptions) -> tuple[TrainReport, LogRows]:
    """Build the rows, train, verify and write the model file (``TrainError`` when the rows cannot train one)."""
    if not 0 < options.holdout < 1:
        raise TrainError(f"--holdout must be between 0 and 1, not {options.holdout}", "0.2 keeps the last fifth")
    rows = log_rows(options)
    if rows.logged == 0:
        raise TrainError(
            f"no decision in {options.source} ran model {options.model}",
            "name the model the rules declare with --model, and check that the server logs decisions (--log)",
        )
    train = TrainOptions(
        Path(options.source),
        options.label,
        options.targets,
        options.features,
        options.out,
        holdout=options.holdout,
        seed=options.seed,
        label_window=options.label_window,
        trees=options.trees,
        leaves=options.leaves,
    )
    provenance = {
        FROM_LOG_KEY: options.source,
        FEEDBACK_KEY: options.feedback,
        MODEL_KEY: options.model,
        "tailor.label_window": duration_text(options.label_window),
        "tailor.targets": json.dumps(list(options.targets), ensure_ascii=False),
    }
    return fit(rows.dataset, train, provenance=provenance), rows
