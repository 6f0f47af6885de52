"""KPI rows: the counters the stores keep per (version, slot, rule, content), and the rates on them.

The stores add to counters (decisions served, impressions, clicks,
conversions, conversion value) in total and per UTC day, so every server
process adds to the same numbers; this module turns the counts a query asks
for into rows, each rate with its Wilson interval (``statistics.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .feedback import DECISIONS, MEASURES, VALUE
from .statistics import wilson_interval

COUNTED = (DECISIONS, *MEASURES.values(), VALUE)  # every measure a store keeps
KpiKey = tuple[str, str, str, str]  # version, slot, rule, content
#: What a store answers: per key, the sum of each measure it has seen (absent: 0).
KpiCounts = dict[KpiKey, dict[str, float]]


@dataclass(frozen=True, slots=True)
class KpiQuery:
    """Which rows ``GET /v1/kpis`` reports: every filter is optional; days are UTC and inclusive."""

    slot: str | None = None
    rule: str | None = None
    version: str | None = None
    since: str | None = None  # YYYY-MM-DD
    until: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            day = getattr(self, name)
            if day is not None:
                try:
                    date.fromisoformat(day)
                except ValueError:
                    raise ValueError(f"{name} must be a day like 2024-05-31, not {day!r}") from None
                if len(day) != 10:
                    raise ValueError(f"{name} must be a day like 2024-05-31, not {day!r}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")

    @property
    def by_day(self) -> bool:
        """Whether the per-day counters must be read: a date range was asked for."""
        return self.since is not None or self.until is not None

    def has_day(self, day: str) -> bool:
        return (self.since is None or day >= self.since) and (self.until is None or day <= self.until)


def rate_interval(successes: float, trials: float) -> tuple[float | None, float | None, float | None]:
    """The rate and its interval; None without trials. The interval of a rate above 1 (more
    clicks than impressions, as when impressions go unreported) is that of 1."""
    if trials <= 0:
        return None, None, None
    interval = wilson_interval(int(min(successes, trials)), int(trials))
    assert interval is not None
    return successes / trials, interval.low, interval.high


@dataclass(frozen=True, slots=True)
class KpiRow:
    """The counts and rates of one (ruleset version, slot, rule, content)."""

    slot: str
    rule: str = field(metadata={"doc": '"default" for the slot\'s default'})
    content: str
    version: str
    decisions: int = field(metadata={"doc": "times the slot showed this content"})
    impressions: int
    clicks: int
    conversions: int
    value: float = field(metadata={"doc": "the sum of the conversions' values"})
    ctr: float | None = field(metadata={"doc": "clicks / impressions; null without impressions"})
    ctr_low: float | None = field(metadata={"doc": "the 95% Wilson interval of the CTR"})
    ctr_high: float | None
    conversion_rate: float | None = field(metadata={"doc": "conversions / impressions; null without impressions"})
    conversion_rate_low: float | None = field(metadata={"doc": "the 95% Wilson interval of the conversion rate"})
    conversion_rate_high: float | None
    value_per_impression: float | None = field(metadata={"doc": "value / impressions; null without impressions"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "rule": self.rule,
            "content": self.content,
            "version": self.version,
            "decisions": self.decisions,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "value": self.value,
            "ctr": self.ctr,
            "ctr_low": self.ctr_low,
            "ctr_high": self.ctr_high,
            "conversion_rate": self.conversion_rate,
            "conversion_rate_low": self.conversion_rate_low,
            "conversion_rate_high": self.conversion_rate_high,
            "value_per_impression": self.value_per_impression,
        }

    @classmethod
    def of(cls, key: KpiKey, counts: Mapping[str, float]) -> KpiRow:
        version, slot, rule, content = key
        impressions = int(counts.get("impressions", 0))
        clicks = int(counts.get("clicks", 0))
        conversions = int(counts.get("conversions", 0))
        value = float(counts.get(VALUE, 0.0))
        ctr = rate_interval(clicks, impressions)
        conversion = rate_interval(conversions, impressions)
        return cls(
            slot,
            rule,
            content,
            version,
            int(counts.get(DECISIONS, 0)),
            impressions,
            clicks,
            conversions,
            value,
            *ctr,
            *conversion,
            value / impressions if impressions else None,
        )


@dataclass(frozen=True, slots=True)
class KpiReport:
    """The answer of ``GET /v1/kpis``: a row per (version, slot, rule, content), in that order."""

    rows: tuple[KpiRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def of(cls, counts: KpiCounts, query: KpiQuery) -> KpiReport:
        rows = tuple(
            KpiRow.of(key, counts[key])
            for key in sorted(counts)
            if (query.slot is None or key[1] == query.slot) and (query.rule is None or key[2] == query.rule)
        )
        return cls(rows)


def add_counts(into: KpiCounts, key: KpiKey, measure: str, amount: float) -> None:
    """Add to one counter of ``into``."""
    counts = into.get(key)
    if counts is None:
        counts = into[key] = {}
    counts[measure] = counts.get(measure, 0) + amount
