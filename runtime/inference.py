"""Running a ruleset's models during a decision.

A model runs only when the plan's stage 2 reaches a candidate that needs it
(``Values`` then asks this runner, at most once per model and decision). Its
inputs come from values the decision already fetched in stage 1. Predictions
are cached per (model version, user, input row) for a short time, since a
page view often asks several times in a row with nothing changed. Erasing
a user drops their cached predictions (``forget``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from tailor.compiler.model_inputs import input_vector
from tailor.compiler.model_rows import row_function
from tailor.compiler.plan import value_type
from tailor.compiler.ruleset import Ruleset
from tailor.compiler.values import Values

from .prediction_cache import SharedPredictions, digest, score_of

log = logging.getLogger("tailor.runtime")

DEFAULT_CACHE_TTL = 60.0
DEFAULT_CACHE_SIZE = 100_000


class ModelRunner:
    """Runs a version's models, caching their predictions: in this process, or, with ``shared``, in the store
    (see ``prediction_cache.py``)."""

    def __init__(
        self,
        ruleset: Ruleset,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        shared: SharedPredictions | None = None,
    ):
        self.shared = shared
        self.models = ruleset.models
        plan = ruleset.plan
        self.inputs = plan.model_inputs
        types = {text: value_type(ref, plan.attribute_kinds) for text, ref in plan.features.items()}
        # Each model's row as generated code (model_rows), and its inputs' texts for explain.
        self._rows = {name: row_function(name, inputs, types) for name, inputs in self.inputs.items()}
        self._texts = {name: tuple(i.text for i in inputs) for name, inputs in self.inputs.items()}
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.runs = 0  # inferences actually made (cache misses)
        self.cache_hits = 0
        self.failures = 0

    def forget(self, user_id: str) -> int:
        """Drop the user's cached predictions (an erasure); how many there were. A scan of the cache
        (at most ``cache_size`` entries, a few ms): erasures are rare, decisions must not pay for an index."""
        with self._lock:
            doomed = [key for key in self._cache if key[1] == user_id]
            for key in doomed:
                del self._cache[key]
        return len(doomed)

    def for_decision(
        self, user_id: str | None, deadline: float | None = None, stored: Mapping[str, Any] | None = None
    ) -> Callable[[str, Values], Any]:
        """The ``run_model`` callback of one decision; ``deadline`` is a ``time.perf_counter()`` instant.
        ``stored``: the user's cached predictions the store answered (model version -> entry)."""

        if self.shared is not None:

            def run_shared(name: str, values: Values) -> float | None:
                return self.run_shared(name, values, user_id, deadline, stored)

            return run_shared

        def run(name: str, values: Values) -> float | None:
            return self.run(name, values, user_id, deadline)

        return run

    def run_shared(
        self,
        name: str,
        values: Values,
        user_id: str | None,
        deadline: float | None,
        stored: Mapping[str, Any] | None,
    ) -> float | None:
        """``run`` with the store's cache: the score the fetch read when it is for these inputs, else computed
        and queued for the store."""
        model = self.models.get(name)
        inputs = self.inputs.get(name)
        shared = self.shared
        if model is None or inputs is None or shared is None:
            return None
        row_of = self._rows.get(name)
        try:
            row = row_of(*values.sources) if row_of is not None else input_vector(inputs, values)
        except (TypeError, ValueError):
            log.warning("model %s: an input could not be computed", name, exc_info=True)
            self.failures += 1
            return None
        values.model_inputs[name] = dict(zip(self._texts[name], row, strict=True))
        row_digest = digest(row)
        now = time.time()
        score = score_of(stored.get(model.version), row_digest, now) if stored else None
        if score is not None:
            self.cache_hits += 1
            return score
        if deadline is not None and time.perf_counter() > deadline:
            self.failures += 1
            return None
        try:
            score = float(model.predict_one(row))
        except Exception:
            log.exception("model %s failed", name)
            self.failures += 1
            return None
        self.runs += 1
        if user_id is not None:
            shared.note(user_id, model.version, row_digest, score, now)
        return score

    def run(self, name: str, values: Values, user_id: str | None, deadline: float | None) -> float | None:
        model = self.models.get(name)
        inputs = self.inputs.get(name)
        if model is None or inputs is None:
            return None
        row_of = self._rows.get(name)
        try:
            row = row_of(*values.sources) if row_of is not None else input_vector(inputs, values)
        except (TypeError, ValueError):  # an input that cannot be computed from the values given
            log.warning("model %s: an input could not be computed", name, exc_info=True)
            self.failures += 1
            return None
        values.model_inputs[name] = dict(zip(self._texts[name], row, strict=True))
        # NaN never equals itself, but a row spells unknown as the one object math.nan, which a tuple
        # compares by identity first: rows with the same unknowns are the same key.
        key = (model.version, user_id, tuple(row))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return hit[1]
        if deadline is not None and time.perf_counter() > deadline:
            self.failures += 1
            return None  # out of time: unknown, and the decision is marked degraded
        try:
            score = float(model.predict_one(row))
        except Exception:  # a broken model must not break the decision
            log.exception("model %s failed", name)
            self.failures += 1
            return None
        with self._lock:
            self.runs += 1
            if self.cache_ttl > 0:
                self._cache[key] = (now + self.cache_ttl, score)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return score
