"""Distributions of a model's score and inputs: the training-time bins, and how far a live one has moved.

``tailor train`` cuts the training rows' scores (and each input) at their 20
quantiles and keeps the cut points and the share of rows between them in the
model file's metadata (``tailor.distribution``, JSON). The server counts live
scores in the same bins; PSI and the Jensen-Shannon distance compare the two
shares. Values equal to a cut point fall in the bin above it (``bin_of``),
for training and serving alike.
"""

from __future__ import annotations

import itertools
import json
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

DISTRIBUTION_KEY = "tailor.distribution"
BINS = 20
EPSILON = 1e-4  # the share an empty bin is taken to have: PSI divides by shares and takes their logarithm
PSI_WARN = 0.1
PSI_ALERT = 0.25
MIN_LIVE = 100  # live scores needed before a band is given: fewer say little


class Band(Enum):
    """How far the live scores have drifted from training, by PSI."""

    OK = "ok"  # PSI below 0.1
    WARN = "warn"  # 0.1 up to 0.25
    ALERT = "alert"  # 0.25 or more
    NONE = "none"  # too few live scores, or no training distribution to compare with

    @classmethod
    def of(cls, psi: float | None) -> Band:
        if psi is None:
            return cls.NONE
        return cls.ALERT if psi >= PSI_ALERT else cls.WARN if psi >= PSI_WARN else cls.OK


@dataclass(frozen=True, slots=True)
class Bins:
    """Cut points (ascending, distinct) and the share of values in each of the ``len(edges) + 1`` bins."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    unknown: float = 0.0  # the share of values that were unknown (NaN): inputs only

    def bin_of(self, value: float) -> int:
        return bisect_right(self.edges, value)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares), "unknown": self.unknown}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bins:
        edges = tuple(float(e) for e in data["edges"])
        shares = tuple(float(s) for s in data["shares"])
        if len(shares) != len(edges) + 1 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("a distribution needs ascending edges and one share more than edges")
        return cls(edges, shares, float(data.get("unknown", 0.0)))


def quantile_bins(values: Sequence[float], bins: int = BINS) -> Bins:
    """The ``bins``-quantile cut points of the known values (repeated cuts merged) and each bin's share."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    known = data[~np.isnan(data)]
    unknown = 1 - len(known) / len(data) if len(data) else 0.0
    if not len(known):
        return Bins((), (1.0,), unknown)
    cuts = np.quantile(known, np.arange(1, bins) / bins, method="higher")
    edges = tuple(float(edge) for edge in np.unique(cuts))
    counts = np.bincount(np.searchsorted(np.asarray(edges), known, side="right"), minlength=len(edges) + 1)
    return Bins(edges, tuple(float(c) / len(known) for c in counts), round(unknown, 6))


@dataclass(frozen=True, slots=True)
class TrainingDistribution:
    """What ``tailor.distribution`` holds: the training rows' score bins and each input's."""

    score: Bins
    inputs: dict[str, Bins]

    def to_json(self) -> str:
        data = {"bins": BINS, "score": self.score.to_dict(), "inputs": {k: v.to_dict() for k, v in self.inputs.items()}}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def of(cls, scores: Sequence[float], rows: Any, features: Sequence[str]) -> TrainingDistribution:
        """From the training rows (a float array ``[N, F]``) and the model's scores on them."""
        inputs = {feature: quantile_bins(rows[:, column]) for column, feature in enumerate(features)}
        return cls(quantile_bins(scores), inputs)

    @classmethod
    def read(cls, metadata: Mapping[str, str]) -> TrainingDistribution | None:
        """From a model file's metadata; None when it has none (or one that is not usable)."""
        text = metadata.get(DISTRIBUTION_KEY)
        if text is None:
            return None
        try:
            data = json.loads(text)
            return cls(Bins.from_dict(data["score"]), {k: Bins.from_dict(v) for k, v in data["inputs"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


# --- how far apart two distributions are ---------------------------------------------


def shares_of(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of ``actual`` shares against ``expected`` ones (empty bins: EPSILON)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """The Jensen-Shannon distance (base 2: from 0, the same, to 1, disjoint)."""
    divergence = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            divergence += a * math.log2(a / m) / 2
        if b > 0:
            divergence += b * math.log2(b / m) / 2
    return math.sqrt(max(divergence, 0.0))
