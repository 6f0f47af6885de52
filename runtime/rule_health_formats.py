"""The rule-health report written out: text for people, JSON for programs, GitHub annotations for CI.

One emitter per format, each a function of the report alone, as the
diagnostics' are.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tailor.dsl.diagnostics import github_escape

from .rule_health import HealthReport, RuleHealth


def render_text(report: HealthReport) -> str:
    """Every rule at its file:line with its figures, grouped by file; each finding under its rule with its advice."""
    blocks: list[list[str]] = []
    current_file: str | None = None
    for health in report.rules:
        rule = health.rule
        if rule.file != current_file:
            blocks.append([])
            current_file = rule.file
        lines = blocks[-1]
        lines.append(f"{rule.file}:{rule.line}: rule {rule.name} ({rule.slot}): {_figures(health)}")
        for finding in health.findings:
            lines.append(f"  {finding.finding}: {finding.message}")
            lines.append(f"    advice: {finding.action}")
    return "\n\n".join("\n".join(lines) for lines in blocks) + ("\n" if blocks else "")


def _figures(health: RuleHealth) -> str:
    parts = []
    tally = health.tally
    if tally is not None:
        if tally.judged:
            rate = tally.candidates / tally.judged
            text = f"true in {rate:.1%} of {tally.judged} decisions ({tally.candidates}), won {tally.wins}"
            if tally.beaten:
                text += f", beaten {tally.beaten}"
            if tally.capped:
                text += f", capped {tally.capped}"
            parts.append(text)
        else:
            parts.append("no logged decision judged it")
        if tally.decisions > tally.judged:
            parts.append(f"{tally.decisions - tally.judged} decisions did not read what it needs")
    clicks = health.kpis
    if clicks is not None:
        ctr = clicks.ctr
        parts.append("no impressions" if ctr is None else f"CTR {ctr:.2%} of {clicks.impressions} impressions")
    return "; ".join(parts) if parts else "no figures"


def render_json(report: HealthReport) -> str:
    """``{"findings": [...]}``, each finding with its rule, file, line, kind, advice and figures."""
    return json.dumps(report.to_dict(), indent=2) + "\n"


def render_github(report: HealthReport) -> str:
    """One workflow-command warning per finding, so a CI run shows it on the rule's line."""
    lines = []
    for finding in report.findings:
        message = github_escape(f"{finding.rule} ({finding.finding}): {finding.message}. Advice: {finding.action}")
        lines.append(f"::warning file={finding.file},line={finding.line}::{message}")
    return "".join(line + "\n" for line in lines)


EMITTERS: dict[str, Callable[[HealthReport], str]] = {"text": render_text, "json": render_json, "github": render_github}
FORMATS = tuple(EMITTERS)
