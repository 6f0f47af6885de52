"""``tailor promote``: a candidate model replaces the current one only when it is not worse on the newest slice.

The slice is the logged decisions from the candidate's holdout on (``tailor.holdout_from``,
or ``since``), labelled as for training (``log_dataset``). Both models are scored on it,
each with its own inputs computed from the records: AUC, log-loss, and calibration error
(the mean |mean score - click rate| over the score's deciles, weighted by rows). The
candidate passes when its AUC is at most ``auc_drop`` lower, its log-loss at most
``logloss_rise`` (relative) higher and its calibration error at most ``calibration_rise``
higher. It must also load in the ruleset (a copy of it, with the candidate in place).
Only then is the model file the ruleset declares replaced, whole: written beside it
and renamed over it, so a server watching it (hot reload) reads the old model or the new one.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailor.dsl.diagnostics import RulesError, render_all

from .decision_log_reader import read_records
from .feature_rows import parse_features
from .log_dataset import JoinLookup, build_log_rows
from .onnx_models import ModelError, ModelFile, read_model
from .ruleset_loader import load
from .ruleset_root import RulesetRoot
from .train import auc, log_loss
from .train_error import TrainError

MIN_ROWS = 20


@dataclass(frozen=True, slots=True)
class Margins:
    """How much worse than the current model a candidate may be and still be promoted."""

    auc_drop: float = 0.005  # absolute
    logloss_rise: float = 0.01  # relative: 1%
    calibration_rise: float = 0.01  # absolute


@dataclass(frozen=True, slots=True)
class SliceScores:
    """One model's scores on the slice."""

    version: str
    auc: float
    logloss: float
    calibration_error: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "auc": self.auc,
            "logloss": self.logloss,
            "calibration_error": self.calibration_error,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """The candidate against the current model, and the verdict."""

    model: str
    file: Path
    rows: int
    positives: int
    since: float
    candidate: SliceScores
    current: SliceScores
    reasons: tuple[str, ...]  # why it is worse by more than the margins; empty: it passes
    promoted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "file": str(self.file),
            "rows": self.rows,
            "positives": self.positives,
            "since": self.since,
            "candidate": self.candidate.to_dict(),
            "current": self.current.to_dict(),
            "reasons": list(self.reasons),
            "promoted": self.promoted,
        }


def calibration_error(labels: np.ndarray, scores: np.ndarray, groups: int = 10) -> float:
    """Mean |mean score - positive rate| over ``groups`` equal groups of rows by score, weighted by size."""
    order = np.argsort(scores, kind="mergesort")
    total = 0.0
    for part in np.array_split(order, groups):
        if len(part):
            total += len(part) * abs(float(scores[part].mean()) - float(labels[part].mean()))
    return total / len(scores)


def _scores(model: ModelFile, rows: np.ndarray, labels: np.ndarray) -> SliceScores:
    predicted = model.predict(rows).astype(np.float64)
    return SliceScores(
        model.version, auc(labels, predicted), log_loss(labels, predicted), calibration_error(labels, predicted)
    )


def current_model(ruleset: Path, name: str) -> ModelFile:
    """The model ``name`` of the ruleset as it is now (``TrainError`` when it does not load or has none)."""
    try:
        compiled = load(ruleset)
    except RulesError as exc:
        raise TrainError(f"the ruleset does not load:\n{render_all(exc.diagnostics)}") from None
    model = compiled.models.get(name)
    if model is None:
        declared = ", ".join(sorted(compiled.models)) or "none"
        raise TrainError(f"the ruleset declares no model {name} (it declares {declared})")
    return model


def compare(
    candidate: ModelFile,
    current: ModelFile,
    *,
    model: str,
    source: str,
    joined: JoinLookup,
    label: str,
    targets: tuple[str, ...],
    label_window: float,
    since: float,
    margins: Margins,
    now: float | None = None,
) -> Comparison:
    """Score both models on the logged decisions from ``since`` on (``TrainError`` when there are too few)."""
    records = [record for record in read_records(source) if record.at >= since]
    built = {}
    for which, found in (("candidate", candidate), ("current", current)):
        try:
            features = parse_features(found.features)
        except TrainError as exc:
            raise TrainError(f"the {which} model's features: {exc.message}") from None
        built[which] = build_log_rows(records, joined, features, model, label, targets, label_window, now)
    ours, theirs = built["candidate"], built["current"]
    common = sorted(set(ours.decisions) & set(theirs.decisions))
    if len(common) < MIN_ROWS:
        raise TrainError(
            f"only {len(common)} labelled decisions of model {model} in the slice since {since:.0f}",
            "wait for more decisions and feedback, or compare on a longer slice with --since",
        )
    mine = _indexes(ours.decisions, common)
    other = _indexes(theirs.decisions, common)
    labels = ours.dataset.labels[mine]
    if labels.min() == labels.max():
        raise TrainError(f"every decision of the slice since {since:.0f} has the same label: nothing to compare on")
    first = _scores(candidate, ours.dataset.rows[mine], labels)
    second = _scores(current, theirs.dataset.rows[other], labels)
    reasons = []
    if not first.auc >= second.auc - margins.auc_drop:
        reasons.append(f"AUC {first.auc:.4f} is more than {margins.auc_drop:g} below {second.auc:.4f}")
    if not first.logloss <= second.logloss * (1 + margins.logloss_rise):
        rise = f"{margins.logloss_rise:.1%}"
        reasons.append(f"log-loss {first.logloss:.4f} is more than {rise} above {second.logloss:.4f}")
    if not first.calibration_error <= second.calibration_error + margins.calibration_rise:
        reasons.append(
            f"calibration error {first.calibration_error:.4f} is more than {margins.calibration_rise:g} "
            f"above {second.calibration_error:.4f}"
        )
    return Comparison(model, current.path, len(common), int(labels.sum()), since, first, second, tuple(reasons))


def _indexes(decisions: tuple[str, ...], wanted: list[str]) -> list[int]:
    where = {decision: index for index, decision in enumerate(decisions)}
    return [where[decision] for decision in wanted]


def check_in_ruleset(candidate: Path, ruleset: Path, target: Path) -> None:
    """Compile a copy of the ruleset with the candidate in place of ``target`` (``TrainError`` if it fails)."""
    root = Path(RulesetRoot.of(ruleset).path)
    with tempfile.TemporaryDirectory(prefix="tailor-promote-") as scratch:
        copy = Path(scratch) / root.name
        shutil.copytree(root, copy, symlinks=False)
        relative = Path(os.path.relpath(target.resolve(), root.resolve()))
        if relative.parts and relative.parts[0] == "..":
            raise TrainError(f"model file {target} is outside the ruleset's directory {root}")
        shutil.copyfile(candidate, copy / relative)
        try:
            load(copy / Path(ruleset).relative_to(root) if Path(ruleset).is_file() else copy)
        except RulesError as exc:
            raise TrainError(f"the candidate does not load in the ruleset:\n{render_all(exc.diagnostics)}") from None


def replace_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` whole: to a temporary file beside it, flushed, then renamed."""
    data = source.read_bytes()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_candidate(path: Path) -> ModelFile:
    try:
        return read_model(path.stem, path)
    except ModelError as exc:
        raise TrainError(f"the candidate {path}: {exc.message}", exc.hint) from None


def holdout_from(candidate: ModelFile) -> float:
    """Where the candidate's holdout began (epoch seconds), from its metadata; -inf when it does not say."""
    try:
        return float(candidate.metadata["tailor.holdout_from"])
    except (KeyError, ValueError):
        return -math.inf
