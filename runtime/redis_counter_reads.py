"""Reading the counters ``RedisFeedback`` keeps: KPI rows and an experiment phase's arm totals.

Every counter is split over ``FEEDBACK_SHARDS`` keys on a cluster (one on a
single Redis), so that no key is hot; a read asks every shard and sums, one
pipeline a step (per node on a cluster). Reads are rare (a KPI page, an
experiment report) and writes are every request, so the sums are paid here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from . import experiment_counts as arm_counts
from .experiment_counts import ArmMeasures, ArmTotals
from .kpis import KpiCounts, KpiQuery, add_counts

if TYPE_CHECKING:
    from .redis_feedback import RedisFeedback


class CounterReads:
    """The reads of ``RedisFeedback``'s counters, through its keys and its store's connections."""

    def __init__(self, feedback: RedisFeedback):
        self.feedback = feedback

    async def kpi_counts(self, query: KpiQuery) -> KpiCounts:
        """Every shard's counters, summed (one shard on one Redis); a pipeline a step, per node on a cluster."""
        client = self.feedback.store._writes()
        shards = self.feedback.shards()
        if query.version is not None:
            versions = [query.version]
        else:
            async with client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.smembers(self.feedback.versions_key(shard))
                self.feedback.store.round_trips += 1
                listed = await pipe.execute()
            versions = sorted({member.decode() for members in listed for member in members})
        if not versions:
            return {}
        wanted: list[tuple[str, str | None]] = []
        if query.by_day:
            async with client.pipeline(transaction=False) as pipe:
                for version in versions:
                    for shard in shards:
                        pipe.smembers(self.feedback.days_key(version, shard))
                self.feedback.store.round_trips += 1
                listed = await pipe.execute()
            for n, version in enumerate(versions):
                days = {day.decode() for members in listed[n * len(shards) : (n + 1) * len(shards)] for day in members}
                wanted += [(version, day) for day in sorted(days) if query.has_day(day)]
        else:
            wanted = [(version, None) for version in versions]
        async with client.pipeline(transaction=False) as pipe:
            for version, day in wanted:
                for shard in shards:
                    pipe.hgetall(self.feedback.counters_key(version, day, shard))
            self.feedback.store.round_trips += 1
            replies = await pipe.execute()
        found: KpiCounts = {}
        for n, fields in enumerate(replies):
            version = wanted[n // len(shards)][0]
            for name, amount in fields.items():
                measure, _, where = name.decode().partition(":")
                slot, rule, content = json.loads(where)
                add_counts(found, (version, slot, rule, content), measure, float(amount))
        return found

    async def arm_totals(self, experiment: str, phase: str) -> ArmTotals:
        """An experiment phase's counters, every shard's summed: two round trips (the totals and the days,
        then each day's)."""
        client = self.feedback.store._reads()
        shards = self.feedback.shards()
        async with client.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.hgetall(self.feedback.arm_counters_key(experiment, phase, None, shard))
                pipe.smembers(self.feedback.arm_days_key(experiment, phase, shard))
            self.feedback.store.round_trips += 1
            listed = await pipe.execute()
        totals: ArmMeasures = {}
        for fields in listed[0::2]:
            _add_arm_measures(totals, fields)
        days = sorted({day.decode() for members in listed[1::2] for day in members})
        by_day: dict[str, ArmMeasures] = {day: {} for day in days}
        if days:
            async with client.pipeline(transaction=False) as pipe:
                for day in days:
                    for shard in shards:
                        pipe.hgetall(self.feedback.arm_counters_key(experiment, phase, day, shard))
                self.feedback.store.round_trips += 1
                replies = await pipe.execute()
            for n, fields in enumerate(replies):
                _add_arm_measures(by_day[days[n // len(shards)]], fields)
        return ArmTotals(totals, by_day)


def _add_arm_measures(found: ArmMeasures, fields: dict[bytes, bytes]) -> None:
    for name, amount in fields.items():
        measure, _, arm = name.decode().partition(":")
        arm_counts.add(found, arm, measure, float(amount))
