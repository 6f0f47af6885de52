# ruff: noqa: E501 (the snapshot is the table as printed)
"""``tailor kpis``'s text table, on rows as ``GET /v1/kpis`` answers them (end to end: test_feedback_replay)."""

from __future__ import annotations

from tailor.commands.kpis import table
from tailor.runtime.kpis import KpiRow

SNAPSHOT = """\
version  slot     rule       content  decisions  impressions  clicks          ctr [95%]  conversions   conv. rate [95%]   value  value/impr.
v1       hero     home_hero  home         1,200        1,000      42  4.20% [3.12-5.63]            3  0.30% [0.10-0.88]  120.50       0.1205
v1       sidebar  default    side            10            0       0                  -            0                  -    0.00            -
"""


def test_the_table_shows_counts_and_rates_with_their_intervals() -> None:
    rows = [
        KpiRow.of(
            ("v1", "hero", "home_hero", "home"),
            {"decisions": 1200, "impressions": 1000, "clicks": 42, "conversions": 3, "value": 120.5},
        ).to_dict(),
        KpiRow.of(("v1", "sidebar", "default", "side"), {"decisions": 10}).to_dict(),
    ]
    assert table(rows) == SNAPSHOT


def test_an_empty_report_says_how_to_fill_it() -> None:
    assert "POST /v1/feedback" in table([])
