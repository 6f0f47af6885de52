"""Feedback and KPIs at run time: join records written off the response path, feedback taken in.

``Attribution.served`` listens to every decision ``/v1/decide`` serves
(``DecisionService.listen``). It only queues the record; a task writes the
queue to the store in batches (join records, the "decisions" counters and,
with ``--impressions served``, impressions and their events), so a decision
waits for none of it. The task lets records gather for ``LINGER`` seconds
first (unless a batch is full, or someone waits for the writes): at a
moderate rate a store call then keeps several decisions rather than one,
and each call costs the server and Redis about as much as a few decisions.
The queue is bounded: past ``QUEUE`` records waiting, new ones are dropped
and counted, rather than memory growing without end.

``Attribution.receive`` takes a feedback batch: it writes what is queued
first (so a decision this process served is always joinable), reads the
join records, judges each item (``feedback.judge``), lets the store count
each item once, and records the counted items' behavioural events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .background_writes import BackgroundWrites
from .consent import made_without_consent
from .decision_record import DecisionRecord
from .events import FUTURE_TOLERANCE, EventRejected
from .feedback import (
    DEFAULT_ATTRIBUTION,
    FeedbackItem,
    FeedbackResult,
    Impressions,
    Join,
    Outcome,
    Tally,
    judge,
)
from .kpis import KpiQuery, KpiReport
from .metrics import Metrics
from .service import WRITE_TIMEOUT, StoreUnavailable
from .store import FeatureStore

if TYPE_CHECKING:
    from .model_monitor import ModelMonitor

log = logging.getLogger("tailor.runtime")

QUEUE = 50_000  # served decisions waiting to be written, at most
WRITE_BATCH = 512  # served decisions written in one go
LINGER = 0.02  # seconds queued decisions gather before a write, unless a batch is full or a flush waits


class Attribution:
    """Join records, feedback and KPIs over a store, for one server process."""

    def __init__(
        self,
        store: FeatureStore,
        metrics: Metrics,
        *,
        attribution: float = DEFAULT_ATTRIBUTION,
        impressions: Impressions = Impressions.FEEDBACK,
        consent_attribute: str | None = None,
        monitor: ModelMonitor | None = None,
    ):
        self.store = store
        self.consent_attribute = consent_attribute  # with it, feedback for users whose attribute is false is dropped
        self.monitor = monitor  # told of the feedback counted on decisions models scored
        self.metrics = metrics
        self.attribution = attribution
        self.impressions = impressions
        self._served = BackgroundWrites(
            self._keep, _user_of, what="served decisions", batch=WRITE_BATCH, max_queued=QUEUE, linger=LINGER
        )

    # --- served decisions ---

    def served(self, record: DecisionRecord) -> None:
        """The listener: queue the record; it is written with others in the background."""
        if not self._served.add(record):
            self.metrics.served_records["dropped"].inc()

    async def flush(self) -> None:
        """Wait until every decision queued so far is written (or has failed to be), without lingering."""
        await self._served.flush()

    def forget(self, user_id: str) -> int:
        """Drop the user's queued decisions (an erasure); how many there were."""
        return self._served.forget(user_id)

    async def _keep(self, records: Sequence[DecisionRecord]) -> int:
        """Write a batch of join records; never raises (a failure is counted), so nothing is retried."""
        joins = [Join.of(record) for record in records]
        served = self.impressions is Impressions.SERVED
        outcome = "kept"
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.store.keep_decisions(joins, self.attribution, impressions=served)
        except Exception as exc:  # a lost join record makes its feedback unknown: counted, never fatal
            outcome = "failed"
            log.warning("could not keep %d served decisions for feedback: %s: %s", len(joins), type(exc).__name__, exc)
        self.metrics.served_records[outcome].inc(len(joins))
        if served and outcome == "kept" and self.monitor is not None:
            self.monitor.served_impressions(joins)
        if served and outcome == "kept":
            tally = self.metrics.feedback_counted
            for join in joins:
                for slot, (rule, _) in join.slots.items():
                    tally[slot, rule, "impressions"] += 1
        return len(joins) if outcome == "kept" else 0

    async def close(self) -> None:
        await self.flush()

    # --- feedback ---

    async def receive(self, items: Sequence[FeedbackItem], now: float | None = None) -> FeedbackResult:
        """Join, judge and count a batch; ``EventRejected`` (nothing counted) for an item from the future,
        ``StoreUnavailable`` when the store fails (a retry counts nothing twice)."""
        now = time.time() if now is None else now
        for index, item in enumerate(items):
            if item.ts is not None and item.ts > now + FUTURE_TOLERANCE:
                raise EventRejected(
                    f"item {index} is from the future: its ts is {item.ts - now:.0f} s after the server's clock, "
                    f"more than the {FUTURE_TOLERANCE:.0f} s tolerated; nothing of the batch was counted"
                )
        await self.flush()
        # Without consent, dropped unread: the item says so, or its decision was made without it.
        dropped = {
            index for index, item in enumerate(items) if item.consent is False or made_without_consent(item.decision_id)
        }
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                asked = [item.decision_id for index, item in enumerate(items) if index not in dropped]
                joins = await self.store.joins(asked, marks=False) if asked else {}
                if self.consent_attribute is not None and joins:
                    refused = await self.store.declined([j.user_id for j in joins.values()], self.consent_attribute)
                    dropped |= {
                        index
                        for index, item in enumerate(items)
                        if (join := joins.get(item.decision_id)) is not None and join.user_id in refused
                    }
                kept = [item for index, item in enumerate(items) if index not in dropped]
                judged = judge(kept, joins, attribution=self.attribution, impressions=self.impressions, now=now)
                # Counted with their events and the marks training reads from the join records.
                counted = await self.store.take_feedback(judged.tallies, judged.events, self.attribution, now)
                for index, outcome in zip(judged.counted, counted, strict=True):
                    judged.outcomes[index] = outcome
        except Exception as exc:
            raise StoreUnavailable(
                f"the feedback could not be counted ({type(exc).__name__}); retry the batch: "
                "items counted already answer as duplicates"
            ) from exc
        judged_outcomes = iter([outcome for outcome in judged.outcomes if outcome is not None])
        outcomes = [Outcome.NO_CONSENT if index in dropped else next(judged_outcomes) for index in range(len(items))]
        assert next(judged_outcomes, None) is None, "the store judged every tally"
        if dropped:
            self.metrics.no_consent["feedback"].inc(len(dropped))
        self._count(outcomes, judged.tallies, counted)
        if self.monitor is not None:
            self.monitor.outcomes(joins, judged.tallies, counted)
        return FeedbackResult.of(outcomes)

    def _count(self, outcomes: Sequence[Outcome], tallies: Sequence[Tally], counted: Sequence[Outcome]) -> None:
        items = self.metrics.feedback_items
        for outcome in outcomes:
            items[outcome.value].inc()
        tally = self.metrics.feedback_counted
        for counted_tally, outcome in zip(tallies, counted, strict=True):
            if outcome is Outcome.ACCEPTED and counted_tally.measure is not None:
                tally[counted_tally.slot, counted_tally.rule, counted_tally.measure] += 1

    async def joined(self, decision_ids: Sequence[str]) -> dict[str, Join]:
        """The join records still kept, with the feedback counted on them (``tailor train --from-log``)."""
        await self.flush()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                return await self.store.joins(decision_ids)
        except Exception as exc:
            raise StoreUnavailable(f"the join records could not be read ({type(exc).__name__})") from exc

    # --- KPIs ---

    async def kpis(self, query: KpiQuery) -> KpiReport:
        """The KPI rows, counting every decision this process has served so far."""
        await self.flush()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                counts = await self.store.kpi_counts(query)
        except Exception as exc:
            raise StoreUnavailable(f"the KPIs could not be read ({type(exc).__name__})") from exc
        return KpiReport.of(counts, query)


def _user_of(record: DecisionRecord) -> str:
    return record.user_id
