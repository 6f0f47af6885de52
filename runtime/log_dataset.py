"""Training rows from what was served: the decision log's recorded inputs, labelled by the feedback
joined to each decision.

A row is one logged decision in which the model ran (its name is in the
record's ``models``). Its inputs are computed by ``FeatureRows`` from the
feature values the record holds (by canonical text) and its context: exactly
what the server fed the model, so a model trained on these rows is trained on
what it will see when it serves. A decision whose record lacks a store value
the features read (a feature the rules never fetched) is left out.

Its label comes from the decision's join record (``Join.feedback``, read from
a running server, ``POST /v1/feedback/joined``, or a store): 1 when feedback
of type ``label`` was counted on one of its *labelled slots* within the label
window after the decision, else 0. The labelled slots are those that showed
one of ``targets`` (content names, as the rules name them), or every slot that
showed something when no targets are given; a decision that showed no target
is left out. So are decisions whose join record is gone (past the attribution
window: their feedback is unknown, not absent) and decisions younger than the
label window (their clicks may be still to come).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tailor.compiler.features import FeatureKind
from tailor.compiler.model_inputs import ModelInput

from .dataset import LABEL_WINDOW, Dataset
from .decision_record import DecisionRecord
from .feature_rows import FeatureRows
from .feedback import Join

JOINED_BATCH = 1000  # decisions per lookup of join records (POST /v1/feedback/joined's limit)

#: Join records by decision id, for a batch of ids (the unknown and expired are absent).
JoinLookup = Callable[[Sequence[str]], Mapping[str, Join]]


@dataclass(frozen=True, slots=True)
class LogRows:
    """Rows from the log, and what was left out and why."""

    dataset: Dataset
    decisions: tuple[str, ...]  # the decision id of each row
    logged: int  # records in which the model ran
    no_target: int  # showed none of the targets
    incomplete: int  # lacked a value the features read
    unjoined: int  # their join record is gone: feedback unknown
    recent: int  # younger than the label window


def build_log_rows(
    records: Iterable[DecisionRecord],
    joined: JoinLookup,
    features: Sequence[ModelInput],
    model: str,
    label: str,
    targets: Iterable[str] = (),
    label_window: float = LABEL_WINDOW,
    now: float | None = None,
) -> LogRows:
    """The rows of the logged decisions in which ``model`` ran, in the log's time order."""
    import time

    now = time.time() if now is None else now
    targets = frozenset(targets)
    inputs = FeatureRows.of(features)
    stored = [text for text, ref in inputs.refs.items() if ref.kind is not FeatureKind.CONTEXT]
    candidates: list[tuple[DecisionRecord, list[float], tuple[str, ...]]] = []
    logged = no_target = incomplete = recent = 0
    for record in records:
        if model not in record.models:
            continue
        logged += 1
        slots = tuple(
            slot
            for slot, served in record.slots.items()
            if served.content is not None and (not targets or served.content in targets)
        )
        if not slots:
            no_target += 1
            continue
        if any(text not in record.features for text in stored):
            incomplete += 1
            continue
        if record.at + label_window > now:
            recent += 1
            continue
        where = f", in decision {record.decision_id}"
        candidates.append((record, inputs.row(record.features, record.context, where), slots))
    candidates.sort(key=lambda candidate: candidate[0].at)  # several workers' files interleave
    joins: dict[str, Join] = {}
    ids = [record.decision_id for record, _, _ in candidates]
    for start in range(0, len(ids), JOINED_BATCH):
        joins.update(joined(ids[start : start + JOINED_BATCH]))
    rows, labels, times, users, keys, decisions = [], [], [], [], [], []
    for record, row, slots in candidates:
        join = joins.get(record.decision_id)
        if join is None:
            continue
        positive = any(
            mark.type == label and mark.slot in slots and mark.ts <= record.at + label_window for mark in join.feedback
        )
        rows.append(row)
        labels.append(int(positive))
        times.append(record.at)
        users.append(record.user_id)
        keys.append(",".join(record.slots[slot].content or "" for slot in slots))
        decisions.append(record.decision_id)
    dataset = Dataset(
        features=tuple(f.text for f in features),
        rows=np.asarray(rows, dtype=np.float32).reshape(len(rows), len(features)),
        labels=np.asarray(labels, dtype=np.int8),
        times=np.asarray(times, dtype=np.float64),
        users=tuple(users),
        keys=tuple(keys),
        censored=recent,
    )
    return LogRows(dataset, tuple(decisions), logged, no_target, incomplete, len(candidates) - len(rows), recent)
