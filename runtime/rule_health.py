"""Rule health: what the logged decisions and the KPIs say about each rule, as findings with advice.

Two sources, each optional. Logged decisions, replayed against the ruleset
(``compiler.replay``), say how often each rule's condition held, whether it
won its slot, which rule beat it, and whether its cap stopped it. KPI rows
(what ``GET /v1/kpis`` returns) say how often its content was clicked. The
report never needs raw events.

The thresholds are defined here once; docs/report.md explains them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tailor.compiler.replay import Replayer, RuleTally
from tailor.compiler.ruleset import RuleInfo, Ruleset

from .decision_record import DecisionRecord
from .statistics import holm, two_proportion_z_test, wilson_interval

MIN_DECISIONS = 100  # judged decisions of a rule's slot before "never fired" is claimed (rule of three: < 3%)
MIN_CANDIDATES = 20  # times a rule's condition held before whether it wins, or is capped, is judged
MIN_IMPRESSIONS = 100  # impressions of a rule's content before its CTR is judged
ALPHA = 0.05  # significance of a low CTR, after Holm's correction across the slot's rules
MOSTLY = 0.5  # "capped away most of the time": capped in more than this share of the times it held
RATE_DIGITS = 6  # rates in findings are rounded to this many decimals, p-values to as many significant digits


class Kind(StrEnum):
    """What a finding is about, in the order a rule's findings are listed."""

    NEVER_FIRED = "never_fired"
    NEVER_WON = "never_won"
    MOSTLY_CAPPED = "mostly_capped"
    LOW_CTR = "low_ctr"
    LOW_TRAFFIC = "low_traffic"


KINDS = tuple(kind.value for kind in Kind)

# The one word of advice per finding, and the line that says what to do.
ADVICE: dict[Kind, tuple[str, str]] = {
    Kind.NEVER_FIRED: ("retire", "retire it, or refine its condition if it was meant to apply"),
    Kind.NEVER_WON: (
        "refine",
        "refine it: give it a priority above {beaten_by}, or narrow {beaten_by}; else retire it",
    ),
    Kind.MOSTLY_CAPPED: (
        "refine",
        "refine it: its audience has already seen {content} up to the cap; aim it at new visitors or retire it",
    ),
    Kind.LOW_CTR: ("check content", "check content: visitors ignore {content}; check how it renders, or replace it"),
    Kind.LOW_TRAFFIC: ("refine", "refine it to reach more visitors, or wait for more traffic before judging it"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with one rule, the figures behind it, and what to do about it."""

    rule: str
    file: str
    line: int
    finding: Kind
    message: str = field(metadata={"doc": "what was found, with its figures"})
    advice: str = field(metadata={"doc": 'one word: "refine", "retire" or "check content"'})
    action: str = field(metadata={"doc": "the line of advice, for a marketer to act on"})
    figures: dict[str, Any] = field(metadata={"doc": "the counts and rates behind the finding"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "finding": str(self.finding),
            "advice": self.advice,
            "message": self.message,
            "action": self.action,
            **self.figures,
        }


@dataclass(frozen=True, slots=True)
class Clicks:
    """A rule's (or a slot's default's) KPI totals over the rows read."""

    impressions: int = 0
    clicks: int = 0

    def __add__(self, other: Clicks) -> Clicks:
        return Clicks(self.impressions + other.impressions, self.clicks + other.clicks)

    def __sub__(self, other: Clicks) -> Clicks:
        return Clicks(self.impressions - other.impressions, self.clicks - other.clicks)

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None


@dataclass(frozen=True, slots=True)
class RuleHealth:
    """One rule's figures and findings."""

    rule: RuleInfo
    tally: RuleTally | None  # None without logged decisions
    kpis: Clicks | None  # None without KPIs
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every rule of a ruleset, in file and line order, and what was found."""

    rules: tuple[RuleHealth, ...]
    notes: tuple[str, ...] = ()  # what the report could not judge, and why

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(finding for health in self.rules for finding in health.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [finding.to_dict() for finding in self.findings]}


@dataclass(frozen=True, slots=True)
class LogReplay:
    """Logged decisions replayed against a ruleset, with what was left out and why."""

    tallies: dict[str, RuleTally]
    replayed: int
    degraded: int  # left out: a decision made without its store or a model says little about the rules
    other_versions: dict[str, int]  # left out: version -> decisions, unless every version was replayed
    mismatched: int  # slots whose logged winner did not hold on replay

    def notes(self) -> list[str]:
        notes = [f"replayed {self.replayed} logged decisions"]
        if self.degraded:
            notes.append(f"left out {self.degraded} degraded decisions (store or model unavailable)")
        if self.other_versions:
            counts = ", ".join(f"{count} of {version}" for version, count in sorted(self.other_versions.items()))
            notes.append(f"left out decisions made by other versions of the rules ({counts}); see --all-versions")
        if self.mismatched:
            notes.append(f"{self.mismatched} logged winners did not hold on replay: the log and rules disagree")
        return notes


def replay_log(ruleset: Ruleset, records: Iterable[DecisionRecord], *, all_versions: bool = False) -> LogReplay:
    """Replay every record made by ``ruleset``'s version (every record at all, with ``all_versions``)."""
    replayer = Replayer(ruleset)
    degraded = 0
    others: dict[str, int] = {}
    for record in records:
        same = record.version == ruleset.version
        if not same and not all_versions:
            others[record.version] = others.get(record.version, 0) + 1
            continue
        if record.degraded:
            degraded += 1
            continue
        if record.holdout:  # held out of personalization: no rule was asked, so none is judged
            continue
        served = {slot: answer.rule for slot, answer in record.slots.items()}
        arms = {entry.experiment: entry.arm for entry in record.experiments}
        replayer.add(record.context, record.features, record.models, served, logged=same, arms=arms)
    return LogReplay(replayer.tallies(), replayer.replayed, degraded, others, replayer.mismatched)


def kpi_totals(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Clicks]:
    """Impressions and clicks by (slot, rule) over every row (contents and versions summed).

    Raises ``ValueError`` naming the first row that is not a KPI row.
    """
    totals: dict[tuple[str, str], Clicks] = {}
    for index, row in enumerate(rows):
        try:
            key = (row["slot"], row["rule"])
            counts = Clicks(row["impressions"], row["clicks"])
        except (KeyError, TypeError):
            raise ValueError(f"row {index} is not a KPI row: {row!r:.200}") from None
        if not isinstance(key[0], str) or not isinstance(key[1], str):
            raise ValueError(f"row {index} names no slot and rule: {row!r:.200}")
        if not all(isinstance(n, int) and n >= 0 for n in (counts.impressions, counts.clicks)):
            raise ValueError(f"row {index} has no counts of impressions and clicks: {row!r:.200}")
        totals[key] = totals.get(key, Clicks()) + counts
    return totals


def review(
    ruleset: Ruleset,
    tallies: Mapping[str, RuleTally] | None = None,
    kpis: Mapping[tuple[str, str], Clicks] | None = None,
    notes: Sequence[str] = (),
) -> HealthReport:
    """Every rule's health from its replayed decisions (``tallies``) and its KPIs (``kpi_totals``).

    Either may be None: then the findings that need it are not looked for.
    """
    rules = sorted(ruleset.rules, key=lambda r: (r.file, r.line, r.name))
    low_ctr = _low_ctr(rules, kpis) if kpis is not None else {}
    health = []
    for rule in rules:
        tally = tallies.get(rule.name) if tallies is not None else None
        clicks = kpis.get((rule.slot, rule.name), Clicks()) if kpis is not None else None
        found = _decision_findings(rule, tally) if tally is not None else []
        if rule.name in low_ctr:
            found.append(low_ctr[rule.name])
        traffic = _low_traffic(rule, tally, clicks)
        if traffic is not None:
            found.append(traffic)
        health.append(RuleHealth(rule, tally, clicks, tuple(found)))
    return HealthReport(tuple(health), tuple(notes))


def _finding(rule: RuleInfo, kind: Kind, message: str, figures: dict[str, Any]) -> Finding:
    advice, action = ADVICE[kind]
    action = action.format(content=rule.content, **figures)
    return Finding(rule.name, rule.file, rule.line, kind, message, advice, action, {"slot": rule.slot, **figures})


def _rate(value: float | None) -> float | None:
    """A rate as findings show it: digits beyond these are noise, and differ between platforms."""
    return None if value is None else round(value, RATE_DIGITS)


def _p(value: float) -> float:
    return float(f"{value:.{RATE_DIGITS}g}")


def _decision_figures(tally: RuleTally) -> dict[str, Any]:
    return {
        "decisions": tally.decisions,
        "judged": tally.judged,
        "candidates": tally.candidates,
        "candidate_rate": _rate(tally.candidate_rate),
        "wins": tally.wins,
        "beaten": tally.beaten,
        "capped": tally.capped,
    }


def _clicks_figures(clicks: Clicks) -> dict[str, Any]:
    interval = wilson_interval(clicks.clicks, clicks.impressions)
    return {
        "impressions": clicks.impressions,
        "clicks": clicks.clicks,
        "ctr": _rate(clicks.ctr),
        "ctr_low": _rate(interval.low) if interval else None,
        "ctr_high": _rate(interval.high) if interval else None,
    }


def _decision_findings(rule: RuleInfo, tally: RuleTally) -> list[Finding]:
    """never_fired, never_won and mostly_capped: each only with enough decisions to judge it."""
    if tally.judged < MIN_DECISIONS:
        return []
    figures = _decision_figures(tally)
    if tally.candidates == 0:
        message = f"its condition was never true in {tally.judged} decisions"
        return [_finding(rule, Kind.NEVER_FIRED, message, figures)]
    if tally.candidates < MIN_CANDIDATES:
        return []
    found = []
    if tally.wins == 0 and tally.beaten:
        beaten_by, times = next(iter(tally.beaten_by.items()))  # most often first
        others = tally.beaten - times
        message = f"its condition was true {tally.candidates} times but it never won: {beaten_by} won {times} of them"
        if others:
            message += f", other rules {others}"
        figures_won = {**figures, "beaten_by": beaten_by, "beaten_by_count": times}
        found.append(_finding(rule, Kind.NEVER_WON, message, figures_won))
    if tally.capped > MOSTLY * tally.candidates:
        share = tally.capped / tally.candidates
        message = (
            f"its cap stopped it {tally.capped} of the {tally.candidates} times its condition was true ({share:.0%})"
        )
        found.append(_finding(rule, Kind.MOSTLY_CAPPED, message, {**figures, "capped_rate": _rate(share)}))
    return found


def _low_traffic(rule: RuleInfo, tally: RuleTally | None, clicks: Clicks | None) -> Finding | None:
    """Too little traffic to judge: too few decisions of its slot, too few times it held, too few impressions."""
    reasons = []
    figures: dict[str, Any] = {}
    if tally is not None:
        figures.update(_decision_figures(tally))
        if tally.decisions < MIN_DECISIONS:
            slot = f"only {tally.decisions} decisions of its slot {rule.slot}"
            reasons.append(f"{slot} (at least {MIN_DECISIONS} needed)")
        elif tally.judged < MIN_DECISIONS:
            reasons.append(
                f"only {tally.judged} of {tally.decisions} decisions read what its condition needs "
                f"(at least {MIN_DECISIONS} needed)"
            )
        elif 0 < tally.candidates < MIN_CANDIDATES:
            reasons.append(
                f"its condition was true only {tally.candidates} times in {tally.judged} decisions "
                f"(at least {MIN_CANDIDATES} needed)"
            )
    if clicks is not None:
        figures.update(_clicks_figures(clicks))
        won = clicks.impressions > 0 or (tally is not None and tally.wins > 0)
        if won and clicks.impressions < MIN_IMPRESSIONS:
            reasons.append(
                f"only {clicks.impressions} impressions to judge its CTR by (at least {MIN_IMPRESSIONS} needed)"
            )
    if not reasons:
        return None
    return _finding(rule, Kind.LOW_TRAFFIC, "too little traffic to judge: " + "; ".join(reasons), figures)


def _low_ctr(rules: Sequence[RuleInfo], kpis: Mapping[tuple[str, str], Clicks]) -> dict[str, Finding]:
    """Rules whose CTR is significantly below the rest of their slot's, Holm-corrected per slot.

    Each rule with enough impressions is tested against its slot without it
    (other rules, the default, and rules no longer in the ruleset), since a
    rate compared with a total that contains it is not an independent sample.
    """
    slot_totals: dict[str, Clicks] = {}
    for (slot, _), clicks in kpis.items():
        slot_totals[slot] = slot_totals.get(slot, Clicks()) + clicks
    found: dict[str, Finding] = {}
    for slot in dict.fromkeys(rule.slot for rule in rules):
        tested: list[tuple[RuleInfo, Clicks, Clicks, float]] = []
        for rule in rules:
            if rule.slot != slot:
                continue
            clicks = kpis.get((slot, rule.name), Clicks())
            rest = slot_totals.get(slot, Clicks()) - clicks
            if clicks.impressions < MIN_IMPRESSIONS or rest.impressions == 0:
                continue
            test = two_proportion_z_test(clicks.clicks, clicks.impressions, rest.clicks, rest.impressions)
            if test is not None:  # both sides have impressions, checked above
                tested.append((rule, clicks, rest, test.p_value))
        adjusted = holm([p for *_, p in tested])
        for (rule, clicks, rest, raw), p_value in zip(tested, adjusted, strict=True):
            ctr, slot_ctr = clicks.ctr or 0.0, rest.ctr or 0.0
            if p_value >= ALPHA or ctr >= slot_ctr:
                continue
            figures = {
                **_clicks_figures(clicks),
                "slot_impressions": rest.impressions,
                "slot_clicks": rest.clicks,
                "slot_ctr": _rate(slot_ctr),
                "p_value": _p(p_value),
                "p_value_raw": _p(raw),
            }
            message = (
                f"CTR {ctr:.2%} on {clicks.impressions} impressions, below the rest of {slot} at {slot_ctr:.2%} "
                f"(p = {p_value:.2g} after Holm's correction over {len(tested)} rules)"
            )
            found[rule.name] = _finding(rule, Kind.LOW_CTR, message, figures)
    return found
