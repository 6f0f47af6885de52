"""Rule health: each finding is made when it should be, and only then.

The decisions are served by a real ``DecisionService`` and replayed from the
log it would write; the KPI rows are what ``GET /v1/kpis`` returns. The
outputs are pinned in tests/golden (set TAILOR_UPDATE_GOLDEN=1 to accept a
change on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from decision_logs import LIVE, Request, capped, serve, write_log

from tailor.compiler.replay import RuleTally
from tailor.compiler.ruleset import Ruleset
from tailor.runtime.decision_log_reader import read_records
from tailor.runtime.rule_health import (
    ADVICE,
    ALPHA,
    MIN_CANDIDATES,
    MIN_DECISIONS,
    MIN_IMPRESSIONS,
    MOSTLY,
    Clicks,
    Finding,
    HealthReport,
    Kind,
    kpi_totals,
    replay_log,
    review,
)
from tailor.runtime.rule_health_formats import render_github, render_json, render_text
from tailor.runtime.ruleset_loader import load
from tailor.runtime.statistics import two_proportion_z_test

GOLDEN = Path(__file__).resolve().parent / "golden"
DOC = Path(__file__).resolve().parents[1] / "docs" / "report.md"
UPDATE = "TAILOR_UPDATE_GOLDEN"
AT = 1_700_000_000.0

SHOP = """\
content vip = {"title": "VIP"}
content fan = {"title": "Fan"}
content sale = {"title": "Sale"}
content rare = {"title": "Rare"}
content generic = {"title": "Hi"}

rule gold when user.tier == "gold" then show vip in hero priority 5
rule fans when views("Electronics", 24h) > 2 then show fan in hero priority 3
rule gold_fans when user.tier == "gold" and views("Electronics", 24h) > 2 then show fan in hero priority 1
rule nowhere when context.page == "nowhere" then show sale in hero priority 4
rule sale when context.page == "sale" then show sale in hero priority 2
rule rare when context.page == "rare" then show rare in hero priority 6
default show generic in hero
"""
VIEWS = 'views("Electronics", 24h)'

# What GET /v1/kpis answers for the shop: fans' content is ignored, rare is shown too seldom to judge.
SHOP_KPIS: list[dict[str, Any]] = [
    {"slot": "hero", "rule": "gold", "content": "vip", "version": "v", "impressions": 400, "clicks": 40},
    {"slot": "hero", "rule": "fans", "content": "fan", "version": "v", "impressions": 600, "clicks": 12},
    {"slot": "hero", "rule": "sale", "content": "sale", "version": "v", "impressions": 300, "clicks": 27},
    {"slot": "hero", "rule": "rare", "content": "rare", "version": "v", "impressions": 10, "clicks": 1},
    {"slot": "hero", "rule": "default", "content": "generic", "version": "v", "impressions": 500, "clicks": 45},
]


@contextlib.contextmanager
def inside(directory: Path) -> Iterator[None]:
    """Files named relative to ``directory``, as when ``tailor report`` runs there."""
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def shop_requests() -> list[Request]:
    """200 decisions: gold (40, half of them fans too), fans (60), rare (5), sale (40), everyone else (55)."""
    requests = []
    for i in range(200):
        context, features = {"page": "home"}, {}
        if i < 40:
            features = {"user.tier": "gold", VIEWS: 5 if i < 20 else 0}
        elif i < 100:
            features = {"user.tier": "silver", VIEWS: 5}
        elif i < 105:
            context = {"page": "rare"}
        elif i < 145:
            context = {"page": "sale"}
        requests.append(Request(f"u{i}", context, features))
    return requests


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ruleset, list[Any]]:
    """The shop's ruleset and its log: 30 of the 40 sale decisions had the sale rule capped away."""
    root = tmp_path_factory.mktemp("shop")
    (root / "rules").mkdir()
    (root / "rules" / "shop.rules").write_text(SHOP)
    with inside(root):
        ruleset = load("rules")
        records = serve(Path("rules"), shop_requests(), AT)
    assert {r.version for r in records} == {ruleset.version}
    log: list[Any] = [capped(r, "hero", "generic") if r.user_id in CAPPED_USERS else r for r in records]
    return ruleset, log


CAPPED_USERS = {f"u{i}" for i in range(105, 135)}


def shop_report(shop: tuple[Ruleset, list[Any]], kpis: list[dict[str, Any]] | None = SHOP_KPIS) -> HealthReport:
    ruleset, log = shop
    records = [r if not isinstance(r, dict) else _record(r) for r in log]
    replay = replay_log(ruleset, records)
    assert replay.mismatched == 0
    return review(ruleset, replay.tallies, kpi_totals(kpis) if kpis is not None else None)


def _record(data: dict[str, Any]) -> Any:
    from tailor.runtime.decision_record import DecisionRecord

    return DecisionRecord.from_dict(data)


def found(report: HealthReport, rule: str) -> dict[str, Finding]:
    return {str(f.finding): f for f in report.findings if f.rule == rule}


# --- each finding, made when it should be --------------------------------------


def test_a_rule_whose_condition_never_held_is_never_fired(shop) -> None:
    report = shop_report(shop)
    finding = found(report, "nowhere")["never_fired"]
    assert (finding.file, finding.line) == ("rules/shop.rules", 10)
    assert finding.advice == "retire"
    assert finding.figures["candidates"] == 0 and finding.figures["judged"] == 200
    assert set(found(report, "nowhere")) == {"never_fired"}


def test_a_rule_that_held_but_never_won_names_the_rule_that_beat_it(shop) -> None:
    finding = found(shop_report(shop), "gold_fans")["never_won"]
    assert finding.figures["beaten_by"] == "gold" and finding.figures["beaten_by_count"] == 20
    assert finding.figures["candidates"] == 20 and finding.figures["wins"] == 0
    assert finding.advice == "refine" and "gold" in finding.action
    assert finding.to_dict()["beaten_by"] == "gold"


def test_a_rule_capped_away_most_of_the_time_is_mostly_capped(shop) -> None:
    finding = found(shop_report(shop), "sale")["mostly_capped"]
    assert finding.figures["capped"] == 30 and finding.figures["candidates"] == 40
    assert finding.figures["capped_rate"] == pytest.approx(0.75)
    assert finding.advice == "refine"


def test_a_rule_with_too_little_traffic_is_low_traffic(shop) -> None:
    finding = found(shop_report(shop), "rare")["low_traffic"]
    assert finding.figures["candidates"] == 5 < MIN_CANDIDATES
    assert finding.figures["impressions"] == 10 < MIN_IMPRESSIONS
    assert "5 times in 200 decisions" in finding.message and "10 impressions" in finding.message
    assert set(found(shop_report(shop), "rare")) == {"low_traffic"}  # not judged on anything else


def test_a_rule_whose_content_is_ignored_is_low_ctr(shop) -> None:
    finding = found(shop_report(shop), "fans")["low_ctr"]
    assert finding.advice == "check content" and "fan" in finding.action
    assert finding.figures["ctr"] == pytest.approx(0.02)
    rest = 113 / 1210  # the rest of the slot, the default included
    assert finding.figures["slot_ctr"] == pytest.approx(rest, abs=1e-6)
    assert finding.figures["p_value"] < ALPHA
    assert finding.figures["ctr_low"] < 0.02 < finding.figures["ctr_high"]


def test_a_healthy_rule_has_no_finding(shop) -> None:
    report = shop_report(shop)
    assert found(report, "gold") == {}
    [gold] = [h for h in report.rules if h.rule.name == "gold"]
    assert gold.tally is not None and (gold.tally.candidates, gold.tally.wins) == (40, 40)
    assert gold.kpis == Clicks(400, 40)


def test_a_healthy_ruleset_has_no_findings(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(
        'content a = {"id": "a"}\ncontent b = {"id": "b"}\n'
        'rule home when context.page == "home" then show a in hero\ndefault show b in hero\n'
    )
    ruleset = load(tmp_path)
    records = serve(tmp_path, [Request(f"u{i}", {"page": "home" if i % 2 else "cart"}) for i in range(200)], AT)
    kpis = [
        {"slot": "hero", "rule": "home", "impressions": 1000, "clicks": 50},
        {"slot": "hero", "rule": "default", "impressions": 1000, "clicks": 48},
    ]
    report = review(ruleset, replay_log(ruleset, records).tallies, kpi_totals(kpis))
    assert report.to_dict() == {"findings": []}


# --- the thresholds and the statistics -------------------------------------------


def test_holm_keeps_a_ctr_that_is_low_only_by_chance_from_being_reported(shop) -> None:
    """Four rules of one slot tested: a raw p of 0.024 is not significant once corrected."""
    ruleset, _ = shop
    rows = [
        {"slot": "hero", "rule": "gold", "impressions": 1000, "clicks": 100},
        {"slot": "hero", "rule": "fans", "impressions": 1000, "clicks": 76},
        {"slot": "hero", "rule": "sale", "impressions": 1000, "clicks": 100},
        {"slot": "hero", "rule": "gold_fans", "impressions": 1000, "clicks": 100},
    ]
    raw = two_proportion_z_test(76, 1000, 300, 3000).p_value
    assert raw < ALPHA  # significant on its own...
    report = review(ruleset, None, kpi_totals(rows))
    assert "low_ctr" not in found(report, "fans")  # ...but not among four
    rows[1]["clicks"] = 50
    assert "low_ctr" in found(review(ruleset, None, kpi_totals(rows)), "fans")


def test_too_few_decisions_claim_nothing_but_low_traffic(shop) -> None:
    ruleset, log = shop
    few = [r for r in log[: MIN_DECISIONS - 1] if not isinstance(r, dict)]
    report = review(ruleset, replay_log(ruleset, few).tallies, None)
    assert {str(f.finding) for f in report.findings} == {"low_traffic"}
    assert "never_fired" not in found(report, "nowhere")


def test_without_kpis_no_ctr_is_judged_and_without_a_log_no_decision(shop) -> None:
    log_only = shop_report(shop, kpis=None)
    assert not [f for f in log_only.findings if f.finding is Kind.LOW_CTR]
    assert "impressions" not in found(log_only, "rare")["low_traffic"].figures
    ruleset, _ = shop
    kpis_only = review(ruleset, None, kpi_totals(SHOP_KPIS))
    assert {str(f.finding) for f in kpis_only.findings} == {"low_ctr", "low_traffic"}


def test_kpi_rows_that_are_not_kpis_are_refused() -> None:
    with pytest.raises(ValueError, match="row 1"):
        kpi_totals([SHOP_KPIS[0], {"slot": "hero"}])
    with pytest.raises(ValueError, match="row 0"):
        kpi_totals([{"slot": "hero", "rule": "x", "impressions": -1, "clicks": 0}])


def test_other_versions_are_left_out_unless_every_version_is_asked_for(shop) -> None:
    ruleset, log = shop
    records = [r for r in log if not isinstance(r, dict)]
    old = [_record({**r.to_dict(), "version": "0ld"}) for r in records[:50]]
    replay = replay_log(ruleset, [*old, *records])
    assert replay.other_versions == {"0ld": 50} and replay.replayed == len(records)
    assert any("--all-versions" in note for note in replay.notes())
    every = replay_log(ruleset, [*old, *records], all_versions=True)
    assert every.replayed == len(records) + 50 and every.tallies["gold"].wins == 80


def test_degraded_decisions_are_left_out(shop) -> None:
    ruleset, log = shop
    records = [r for r in log if not isinstance(r, dict)]
    degraded = [_record({**r.to_dict(), "degraded": True, "reason": "timeout"}) for r in records[:10]]
    replay = replay_log(ruleset, [*degraded, *records])
    assert replay.degraded == 10 and replay.replayed == len(records)


# --- reading the log -------------------------------------------------------------


def test_the_log_is_read_from_rotated_gzipped_and_live_files(shop, tmp_path: Path) -> None:
    _, log = shop
    write_log(tmp_path / "log", log, rotated=120)
    with (tmp_path / "log" / LIVE).open("ab") as live:
        live.write(b'{"decision_id": "half-writ')  # the line being written
    records = list(read_records(tmp_path / "log"))
    assert len(records) == len(log)
    read = sorted(r.decision_id for r in records)  # in file order: the report counts, so order does not matter
    assert read == sorted((r["decision_id"] if isinstance(r, dict) else r.decision_id) for r in log)
    assert list(read_records(tmp_path / "log", since=AT + 1)) == []
    assert len(list(read_records(tmp_path / "log", since=AT, until=AT + 1))) == len(log)


# --- the outputs, pinned ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "render"), [("report.txt", render_text), ("report.json", render_json), ("report.github", render_github)]
)
def test_outputs_match_their_golden_files(shop, name: str, render) -> None:
    printed = render(shop_report(shop))
    golden = GOLDEN / name
    if os.environ.get(UPDATE):
        golden.write_text(printed, encoding="utf-8")
    assert printed == golden.read_text(encoding="utf-8"), f"{name} changed (set {UPDATE}=1 to accept it)"


def test_json_findings_carry_what_the_contract_names(shop) -> None:
    data = json.loads(render_json(shop_report(shop)))
    assert list(data) == ["findings"]
    kinds = {f["finding"] for f in data["findings"]}
    assert kinds == {"never_fired", "never_won", "low_traffic", "low_ctr", "mostly_capped"}
    for finding in data["findings"]:
        assert {"rule", "file", "line", "finding", "advice"} <= set(finding)
        assert finding["advice"] in ("refine", "retire", "check content")


def test_the_documentation_states_the_thresholds_findings_and_output() -> None:
    doc = DOC.read_text(encoding="utf-8")
    thresholds = {
        "MIN_DECISIONS": MIN_DECISIONS,
        "MIN_CANDIDATES": MIN_CANDIDATES,
        "MIN_IMPRESSIONS": MIN_IMPRESSIONS,
        "ALPHA": ALPHA,
        "MOSTLY": MOSTLY,
    }
    for name, value in thresholds.items():
        assert f"| `{name}` | {value} |" in doc
    for kind in Kind:
        assert f"| `{kind}` |" in doc
    assert {word for word, _ in ADVICE.values()} == {"retire", "refine", "check content"}
    example = doc.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert set(example) <= set((GOLDEN / "report.txt").read_text(encoding="utf-8").splitlines())


def test_a_rule_the_log_rarely_settles_is_low_traffic_not_never_fired(shop) -> None:
    """Below a winner, a rule that reads a model is mostly unjudged: too few judged decisions to say it never fires."""
    ruleset, _ = shop
    tally = RuleTally("nowhere", 500, 10, 0, 0, 0, 0, {})
    finding = found(review(ruleset, {"nowhere": tally}, None), "nowhere")
    assert set(finding) == {"low_traffic"}
    assert "only 10 of 500 decisions read what its condition needs" in finding["low_traffic"].message


def test_a_logged_winner_that_does_not_hold_on_replay_is_said(shop) -> None:
    ruleset, log = shop
    record = next(r for r in log if not isinstance(r, dict) and r.slots["hero"].rule == "fans")
    wrong = _record({**record.to_dict(), "features": {**record.features, VIEWS: 0}})
    replay = replay_log(ruleset, [wrong])
    assert replay.mismatched == 1
    assert any("disagree" in note for note in replay.notes())
