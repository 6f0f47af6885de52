"""What ``GET /v1/models`` says of each served model: drift against training, live AUC and calibration.

The store keeps, per model version, counters under three kinds of field
(``model_monitor`` writes them):

- ``s:{bin}``: live scores in each bin of the training score distribution;
- ``i:{bucket}`` and ``c:{bucket}``: impressions and clicks on decisions the
  model scored, by the score's bucket of width 1/1000.

From them: PSI and the Jensen-Shannon distance of the live score shares
against training's, the band PSI puts them in, the live AUC (over the fine
buckets: scores in one bucket count as ties) and, per decile of the training
scores, the mean predicted score against the observed CTR.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .distributions import MIN_LIVE, Band, TrainingDistribution, js_distance, psi, shares_of

BUCKETS = 1000  # the resolution of the scores feedback is counted by
DECILES = 10
SCORE = "s:"
IMPRESSIONS = "i:"
CLICKS = "c:"


def bucket_of(score: float) -> int:
    return min(max(int(score * BUCKETS), 0), BUCKETS - 1)


def _center(bucket: int) -> float:
    return (bucket + 0.5) / BUCKETS


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """One decile of the training scores: what the model predicted there, and what was observed."""

    decile: int = field(metadata={"doc": "1 (lowest scores) to 10 (fewer when training scores take few values)"})
    low: float | None = field(metadata={"doc": "the decile's lowest score (null: from 0)"})
    high: float | None = field(metadata={"doc": "the next decile's lowest score (null: up to 1)"})
    impressions: int
    clicks: int
    predicted: float | None = field(metadata={"doc": "the mean score of its impressions (to 1/2000)"})
    observed: float | None = field(metadata={"doc": "clicks / impressions; null without impressions"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "decile": self.decile,
            "low": self.low,
            "high": self.high,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "predicted": self.predicted,
            "observed": self.observed,
        }


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One served model: its file, how it was trained, and how its live scores and outcomes compare."""

    name: str
    file: str = field(metadata={"doc": "relative to the ruleset's root"})
    version: str = field(metadata={"doc": "the first 16 hex digits of the file's SHA-256"})
    trained_at: str | None
    training_auc: float | None = field(metadata={"doc": "tailor.auc: the AUC on the holdout when it was trained"})
    training_scores: tuple[float, ...] = field(
        metadata={"doc": "the share of training scores in each bin (empty: the model has no tailor.distribution)"}
    )
    edges: tuple[float, ...] = field(metadata={"doc": "the bins' cut points: the training scores' 20-quantiles"})
    live_scores: tuple[float, ...] = field(metadata={"doc": "the share of live scores in each bin"})
    scored: int = field(metadata={"doc": "live scores counted since this version was first served"})
    psi: float | None = field(metadata={"doc": "population stability index, live against training"})
    js: float | None = field(metadata={"doc": "Jensen-Shannon distance (base 2), live against training"})
    band: Band = field(metadata={"doc": f"by PSI: ok < 0.1 <= warn < 0.25 <= alert; none below {MIN_LIVE} scores"})
    impressions: int = field(metadata={"doc": "impressions on decisions the model scored"})
    clicks: int
    auc: float | None = field(metadata={"doc": "live AUC of the score for a click; null without both outcomes"})
    calibration_error: float | None = field(
        metadata={"doc": "mean |predicted - observed| over the deciles, weighted by impressions"}
    )
    calibration: tuple[CalibrationRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "version": self.version,
            "trained_at": self.trained_at,
            "training_auc": self.training_auc,
            "training_scores": list(self.training_scores),
            "edges": list(self.edges),
            "live_scores": list(self.live_scores),
            "scored": self.scored,
            "psi": self.psi,
            "js": self.js,
            "band": self.band.value,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "auc": self.auc,
            "calibration_error": self.calibration_error,
            "calibration": [row.to_dict() for row in self.calibration],
        }

    @classmethod
    def of(
        cls,
        name: str,
        file: str,
        version: str,
        metadata: Mapping[str, str],
        counts: Mapping[str, float],
    ) -> ModelStatus:
        distribution = TrainingDistribution.read(metadata)
        live: list[float] = []
        training: tuple[float, ...] = ()
        edges: tuple[float, ...] = ()
        drift = distance = None
        scored = 0
        if distribution is not None:
            training, edges = distribution.score.shares, distribution.score.edges
            live_counts = [counts.get(f"{SCORE}{index}", 0.0) for index in range(len(training))]
            scored = int(sum(live_counts))
            live = shares_of(live_counts)
            if scored >= MIN_LIVE:
                drift, distance = psi(training, live), js_distance(training, live)
        impressions = [0.0] * BUCKETS
        clicks = [0.0] * BUCKETS
        for key, amount in counts.items():
            kind, _, index = key.partition(":")
            if kind in ("i", "c") and index.isdigit() and int(index) < BUCKETS:
                (impressions if kind == "i" else clicks)[int(index)] += amount
        rows = _calibration(impressions, clicks, distribution)
        shown = sum(row.impressions for row in rows)
        error = (
            sum(row.impressions * abs(row.predicted - row.observed) for row in rows if row.observed is not None) / shown
            if shown
            else None
        )
        return cls(
            name,
            file,
            version,
            metadata.get("tailor.trained_at"),
            _number(metadata.get("tailor.auc")),
            training,
            edges,
            tuple(live),
            scored,
            drift,
            distance,
            Band.of(drift),
            int(sum(impressions)),
            int(sum(clicks)),
            bucket_auc(impressions, clicks),
            error,
            tuple(rows),
        )


def bucket_auc(impressions: list[float], clicks: list[float]) -> float | None:
    """The AUC of scores counted by bucket (ascending): a click's score against a non-click's, ties half."""
    positives = [min(c, i) for c, i in zip(clicks, impressions, strict=True)]
    negatives = [max(i - c, 0.0) for c, i in zip(clicks, impressions, strict=True)]
    total_p, total_n = sum(positives), sum(negatives)
    if not total_p or not total_n:
        return None
    below = 0.0
    wins = 0.0
    for p, n in zip(positives, negatives, strict=True):
        wins += p * (below + n / 2)
        below += n
    return wins / (total_p * total_n)


def decile_cuts(distribution: TrainingDistribution | None) -> list[float]:
    """The cut points of the training scores' deciles: for each tenth, the first bin edge with at least
    that share below it (fewer cuts when the scores take few values); equal tenths without a distribution."""
    if distribution is None:
        return [k / DECILES for k in range(1, DECILES)]
    cuts: list[float] = []
    below = 0.0
    tenth = 1
    score = distribution.score
    for edge, share in zip(score.edges, score.shares, strict=False):  # the edge above each bin
        below += share
        if tenth < DECILES and below >= tenth / DECILES - 1e-9:
            cuts.append(edge)
            while tenth < DECILES and below >= tenth / DECILES - 1e-9:
                tenth += 1
    return cuts


def _calibration(
    impressions: list[float], clicks: list[float], distribution: TrainingDistribution | None
) -> list[CalibrationRow]:
    """Per decile of the training scores."""
    cuts = decile_cuts(distribution)
    groups = len(cuts) + 1
    shown = [0.0] * groups
    clicked = [0.0] * groups
    predicted = [0.0] * groups
    for bucket in range(BUCKETS):
        if not impressions[bucket] and not clicks[bucket]:
            continue
        center = _center(bucket)
        decile = bisect_right(cuts, center)
        shown[decile] += impressions[bucket]
        clicked[decile] += clicks[bucket]
        predicted[decile] += impressions[bucket] * center
    rows = []
    for decile in range(groups):
        low = cuts[decile - 1] if decile else None
        high = cuts[decile] if decile < groups - 1 else None
        n = shown[decile]
        rows.append(
            CalibrationRow(
                decile + 1,
                low,
                high,
                int(n),
                int(clicked[decile]),
                predicted[decile] / n if n else None,
                clicked[decile] / n if n else None,
            )
        )
    return rows


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ModelsReport:
    """``GET /v1/models``: every model of the version being served."""

    ruleset: str
    version: str
    models: tuple[ModelStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ruleset": self.ruleset, "version": self.version, "models": [m.to_dict() for m in self.models]}
