"""``tailor report`` run as a user runs it: a subprocess, a ruleset and a decision log on disk, exit codes.

The KPI side (``--url``) needs a server with feedback; here it is only shown
to fail cleanly when there is no server.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from decision_logs import capped, serve, write_log
from test_cli import tailor
from test_rule_health import CAPPED_USERS, SHOP, inside, shop_requests

from bench.ports import free_port
from tailor.cli import main


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the shop's rules, and a log of its 200 decisions an hour ago and 50 from ten days ago."""
    root = tmp_path_factory.mktemp("shop")
    (root / "rules").mkdir()
    (root / "rules" / "shop.rules").write_text(SHOP)
    with inside(root):
        recent = serve(Path("rules"), shop_requests(), time.time() - 3600)
        old = serve(Path("rules"), shop_requests()[:50], time.time() - 10 * 86400)
    log = [capped(r, "hero", "generic") if r.user_id in CAPPED_USERS else r for r in recent]
    write_log(root / "log", [*old, *log], rotated=120)
    return root


def test_the_text_report_lists_every_rule_and_its_findings(shop: Path) -> None:
    result = tailor("report", "rules", "--log", "log", cwd=shop)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line, rule in [(7, "gold"), (8, "fans"), (9, "gold_fans"), (10, "nowhere"), (11, "sale"), (12, "rare")]:
        assert any(text.startswith(f"rules/shop.rules:{line}: rule {rule} (hero): true in ") for text in lines)
    assert "rules/shop.rules:7: rule gold (hero): true in 20.0% of 200 decisions (40), won 40" in lines
    assert "  never_fired: its condition was never true in 200 decisions" in lines  # the old decisions left out
    assert "low_ctr needs the KPIs of a running server (--url URL)" in result.stderr
    assert "replayed 200 logged decisions" in result.stderr
    assert result.stderr.rstrip().endswith("4 findings in 6 rules")


def test_json_holds_the_findings_alone_and_fail_on_fails_on_them(shop: Path) -> None:
    result = tailor("report", "rules", "--log", "log", "--format", "json", "--fail-on", "low_ctr,never_fired", cwd=shop)
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert {(f["rule"], f["finding"]) for f in data["findings"]} == {
        ("nowhere", "never_fired"),
        ("gold_fans", "never_won"),
        ("sale", "mostly_capped"),
        ("rare", "low_traffic"),
    }
    never_won = next(f for f in data["findings"] if f["finding"] == "never_won")
    assert (never_won["file"], never_won["line"], never_won["beaten_by"]) == ("rules/shop.rules", 9, "gold")


def test_github_annotations_point_at_the_rules_and_unchosen_findings_pass(shop: Path) -> None:
    result = tailor("report", "rules", "--log", "log", "--format", "github", "--fail-on", "low_ctr", cwd=shop)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert "::warning file=rules/shop.rules,line=10::nowhere (never_fired): its condition was never true" in lines[1]


def test_since_chooses_the_decisions_read(shop: Path) -> None:
    result = tailor("report", "rules", "--log", "log", "--since", "30d", "--format", "json", cwd=shop)
    never_fired = next(f for f in json.loads(result.stdout)["findings"] if f["finding"] == "never_fired")
    assert never_fired["judged"] == 250


def test_usage_errors_exit_two(shop: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(shop)
    assert main(["report", "rules"]) == 2
    assert "--log DIR" in capsys.readouterr().err
    assert main(["report", "rules", "--log", "log", "--fail-on", "never_fire"]) == 2
    assert "the findings are never_fired, never_won" in capsys.readouterr().err
    assert main(["report", "rules", "--log", "nowhere"]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["report", "rules", "--log", "log", "--since", "week"])
    assert exited.value.code == 2


def test_rules_with_errors_and_an_absent_server_fail_cleanly(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    (tmp_path / "bad.rules").write_text("when a then show b\n")
    monkeypatch.chdir(shop)
    assert main(["report", str(tmp_path / "bad.rules"), "--log", "log"]) == 1
    assert "unknown name 'a'" in capsys.readouterr().out
    absent = tailor("report", "rules", "--url", f"http://127.0.0.1:{free_port()}", cwd=shop)
    assert absent.returncode == 1 and "cannot reach the server" in absent.stderr
    assert "Traceback" not in absent.stderr
