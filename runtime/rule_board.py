"""Every served rule on one board: its source, its live counts, its CTR with an interval, and its health.

What the console's Rules page draws (``GET /v1/rules``). The counts of
candidates and wins come from the recent logged decisions replayed against
the served version (``rule_health.replay_log``); impressions and clicks from
the KPI counters; the findings are ``tailor report``'s (``rule_health.review``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tailor.compiler.ruleset import Ruleset

from .kpis import KpiReport, rate_interval
from .rule_health import Finding, LogReplay, kpi_totals, review
from .ruleset_root import RulesetRoot


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One rule as the console shows it."""

    name: str
    slot: str
    priority: int
    content: str
    file: str
    line: int
    source: str = field(metadata={"doc": "the rule's text as written in its file"})
    cap: str | None = field(metadata={"doc": "its frequency cap as written (cap 3 per 24h), if any"})
    decisions: int = field(metadata={"doc": "recent logged decisions that asked for the rule's slot"})
    candidates: int = field(metadata={"doc": "those where its condition held"})
    wins: int = field(metadata={"doc": "those it won"})
    impressions: int
    clicks: int
    ctr: float | None = field(metadata={"doc": "clicks / impressions over every version; null without impressions"})
    ctr_low: float | None = field(metadata={"doc": "the 95% Wilson interval of the CTR"})
    ctr_high: float | None
    findings: tuple[Finding, ...] = field(metadata={"doc": "what tailor report finds wrong with it"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slot": self.slot,
            "priority": self.priority,
            "content": self.content,
            "file": self.file,
            "line": self.line,
            "source": self.source,
            "cap": self.cap,
            "decisions": self.decisions,
            "candidates": self.candidates,
            "wins": self.wins,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "ctr_low": self.ctr_low,
            "ctr_high": self.ctr_high,
            "findings": [finding.to_dict() for finding in self.findings],
        }


@dataclass(frozen=True, slots=True)
class RuleBoard:
    """The served version's rules, in file and line order, with what the recent traffic says of them."""

    name: str
    version: str
    replayed: int = field(metadata={"doc": "recent logged decisions of this version replayed for the counts"})
    rules: tuple[RuleRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "replayed": self.replayed,
            "rules": [rule.to_dict() for rule in self.rules],
        }

    @classmethod
    def of(cls, ruleset: Ruleset, replayed: LogReplay, kpis: KpiReport, root: RulesetRoot) -> RuleBoard:
        """The board of ``ruleset`` from its recent decisions replayed (``replay_log``) and the KPIs."""
        clicks = kpi_totals(row.to_dict() for row in kpis.rows)
        health = review(ruleset, replayed.tallies, clicks)
        decls = {rule.name: rule.decl for rule in ruleset.program.rules}
        rows = []
        for judged in health.rules:
            rule, tally, counted = judged.rule, judged.tally, judged.kpis
            decl = decls[rule.name]
            impressions, hits = (counted.impressions, counted.clicks) if counted is not None else (0, 0)
            rows.append(
                RuleRow(
                    rule.name,
                    rule.slot,
                    rule.priority,
                    rule.content,
                    root.name(rule.file),
                    rule.line,
                    _text(decl.span),
                    _text(decl.cap.span) if decl.cap is not None else None,
                    tally.decisions if tally is not None else 0,
                    tally.candidates if tally is not None else 0,
                    tally.wins if tally is not None else 0,
                    impressions,
                    hits,
                    *rate_interval(hits, impressions),
                    tuple(_relative(finding, root) for finding in judged.findings),
                )
            )
        return cls(ruleset.name, ruleset.version, replayed.replayed, tuple(rows))


def _text(span: Any) -> str:
    return span.source.text[span.start : span.end] if span is not None else ""


def _relative(finding: Finding, root: RulesetRoot) -> Finding:
    return replace(finding, file=root.name(finding.file))
