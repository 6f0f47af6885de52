"""A small real LightGBM click model of two supplied features, and a ruleset that runs it on every decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailor.runtime.dataset import Dataset
from tailor.runtime.train import TrainOptions, fit

FEATURES = ("views(24h)", "clicks(7d)")
SHOP = """\
ruleset shop

content promo = {"id": "promo"}
content generic = {"id": "generic"}

model p_click = "models/p_click.onnx"

rule keen
  when p_click > 0.5
  then show promo in hero

default show generic in hero
"""
T0 = 1767225600.0


def population(count: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Rows of (views, clicks): counts, more of them with ``shift``."""
    draw = np.random.default_rng(seed)
    views = draw.poisson(3 + shift, count).astype(np.float32)
    clicks = draw.poisson(0.5 + shift / 4, count).astype(np.float32)
    return np.stack([views, clicks], axis=1)


def truth(rows: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(0.4 * rows[:, 0] + 0.8 * rows[:, 1] - 2.5)))


def train_small(out: Path, seed: int = 0, *, inverted: bool = False) -> Path:
    """A real LightGBM model of the two features, written as tailor train writes it; ``inverted``
    learns the opposite of the truth (a model any sound candidate beats)."""
    rows = population(3000, seed)
    chance = 1 - truth(rows) if inverted else truth(rows)
    labels = (np.random.default_rng(seed + 1).random(len(rows)) < chance).astype(np.int8)
    dataset = Dataset(
        FEATURES,
        rows,
        labels,
        np.arange(len(rows), dtype=np.float64) + T0,
        tuple(f"u{i}" for i in range(len(rows))),
        ("promo",) * len(rows),
    )
    fit(dataset, TrainOptions(Path("events.jsonl"), "click", ("promo",), FEATURES, out, trees=20, leaves=7))
    return out
