"""Live counters of the served models, kept in the store so that every server process adds to the same ones.

``ModelMonitor.served`` listens to served decisions (``DecisionService.listen``):
each score a model gave is counted in its bin of the training score
distribution (``tailor.distribution``). ``ModelMonitor.outcomes`` is told of
the feedback counted on decisions (by ``Attribution``): each impression and
click on a decision a model scored is counted by the score's fine bucket.
Nothing is written on the response path: increments add up in a dict (its
size bounded by the number of bins, not of decisions) that one task writes
to the store every ``FLUSH_SECONDS``. Counters are per model *version*:
a new model file starts from zero.

``report`` reads them back into a ``ModelsReport`` (``GET /v1/models``), and
leaves it in ``Metrics.models_report`` for the Prometheus gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .decision_record import DecisionRecord
from .distributions import TrainingDistribution
from .feedback import MEASURES, Join, Outcome, Tally
from .model_report import CLICKS, IMPRESSIONS, SCORE, ModelsReport, ModelStatus, bucket_of
from .ruleset_root import RulesetRoot

if TYPE_CHECKING:
    from .onnx_models import ModelFile
    from .service import DecisionService, Served

log = logging.getLogger("tailor.runtime")

FLUSH_SECONDS = 0.5  # how long increments add up before they are written
OUTCOME_FIELDS = {MEASURES["impression"]: IMPRESSIONS, MEASURES["click"]: CLICKS}


class ModelMonitor:
    """Counts the served models' scores and the feedback on them, and reports drift, AUC and calibration."""

    def __init__(self, service: DecisionService):
        self.service = service
        self.root = RulesetRoot.of(service.path)
        self.written = 0  # increments written
        self.lost = 0  # increments lost with a write that failed
        self._pending: Counter[tuple[str, str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set by flush: write now
        self._distributions: dict[str, TrainingDistribution | None] = {}  # by model version
        self._failing = False

    # --- counting ---

    def served(self, record: DecisionRecord) -> None:
        """A ``DecisionService.listen`` listener: count each model score in its training bin."""
        if not record.models:
            return
        served = self._served(record.version)
        if served is None:
            return
        pending = self._pending
        for name, score in record.models.items():
            model = served.ruleset.models.get(name)
            if score is None or model is None:
                continue
            distribution = self._distribution(model)
            if distribution is not None:
                pending[name, model.version, f"{SCORE}{distribution.score.bin_of(score)}"] += 1
        self._schedule()

    def outcomes(self, joins: Mapping[str, Join], tallies: Sequence[Tally], counted: Sequence[Outcome]) -> None:
        """Feedback just counted: each accepted impression and click on a decision a model scored."""
        pending = self._pending
        for tally, outcome in zip(tallies, counted, strict=True):
            kind = OUTCOME_FIELDS.get(tally.measure or "")
            join = joins.get(tally.decision_id)
            if outcome is not Outcome.ACCEPTED or kind is None or join is None or not join.models:
                continue
            self._count(join, kind, pending)
        self._schedule()

    def served_impressions(self, joins: Sequence[Join]) -> None:
        """Served slots counted as impressions (``--impressions served``)."""
        pending = self._pending
        for join in joins:
            for _ in join.slots:
                self._count(join, IMPRESSIONS, pending)
        self._schedule()

    def _count(self, join: Join, kind: str, pending: Counter[tuple[str, str, str]]) -> None:
        served = self._served(join.version)
        if served is None:
            return
        for name, score in join.models.items():
            model = served.ruleset.models.get(name)
            if model is not None:
                pending[name, model.version, f"{kind}{bucket_of(score)}"] += 1

    def _served(self, version: str) -> Served | None:
        """The served version a record or join names, while this process still holds it."""
        current = self.service.current
        if current is not None and current.version == version:
            return current
        return next((served for served in self.service.previous if served.version == version), None)

    def _distribution(self, model: ModelFile) -> TrainingDistribution | None:
        found = self._distributions.get(model.version, self)
        if found is self:
            if len(self._distributions) > 64:
                self._distributions.clear()
            found = self._distributions[model.version] = TrainingDistribution.read(model.metadata)
        return found  # type: ignore[return-value]

    # --- writing ---

    def _schedule(self) -> None:
        if self._pending and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Write everything counted so far (before a report, on shutdown, in tests)."""
        task = self._task
        if task is not None:
            self._wake.set()
            await asyncio.shield(task)
        await self._write()

    async def _drain(self) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            await self._write()
        finally:
            self._wake.clear()
            self._task = None

    async def _write(self) -> None:
        counts, self._pending = self._pending, Counter()
        if not counts:
            return
        try:
            await self.service.store.add_model_counts(counts)
        except Exception as exc:  # counters are monitoring: a failed write is counted and logged, never fatal
            self.lost += sum(counts.values())
            if not self._failing:
                self._failing = True
                log.warning("model counters could not be written (%s: %s)", type(exc).__name__, exc)
            return
        self._failing = False
        self.written += sum(counts.values())

    # --- reading ---

    async def report(self) -> ModelsReport:
        """Every model of the version being served, read from the store (``NotReady`` before one is)."""
        served = self.service.serving()
        await self.flush()
        models = []
        for name, model in sorted(served.ruleset.models.items()):
            counts = await self.service.store.model_counts(name, model.version)
            file = self.root.name(str(model.path))
            models.append(ModelStatus.of(name, file, model.version, model.metadata, counts))
        report = ModelsReport(served.ruleset.name, served.version, tuple(models))
        self.service.metrics.models_report = report
        return report
