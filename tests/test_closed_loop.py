"""The whole loop on the retail example: simulated users decide, give feedback, and the numbers come back.

``tailor simulate --url`` drives a real server with personas whose clicks
follow known rates. The KPIs must count exactly what the simulation sent,
and ``tailor report``, reading the decision log and the KPIs, must name the
rule whose content nobody clicks, and no rule that works.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from server_process import KEY, servers

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"
USERS = 1200


def tailor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TAILOR_API_KEY": KEY, "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow  # a server and 1,200 simulated users: the default run stays near five minutes
def test_simulated_feedback_is_counted_exactly_and_the_ignored_rule_is_named(tmp_path: Path) -> None:
    logs = tmp_path / "decisions"
    with servers(tmp_path) as start:
        server = start(RETAIL, "--decision-log", str(logs))
        done = tailor(
            "simulate", "--url", server.url, "--users", str(USERS), "--seed", "3", "--out", str(tmp_path / "sent.json")
        )
        assert done.returncode == 0, done.stderr
        sent = json.loads((tmp_path / "sent.json").read_text())
        assert sent["users"] == USERS and sent["decisions"] == 3 * USERS

        kpis = server.http.get("/v1/kpis", headers=server.auth).json()["rows"]
        counted = {
            (row["slot"], row["rule"], row["content"]): (row["impressions"], row["clicks"], row["conversions"])
            for row in kpis
        }
        expected = {
            (row["slot"], row["rule"], row["content"]): (row["impressions"], row["clicks"], row["conversions"])
            for row in sent["rows"]
        }
        assert counted == expected

        report = tailor("report", str(RETAIL), "--log", str(logs), "--url", server.url, "--format", "json")
    assert report.returncode == 0, report.stderr
    findings = json.loads(report.stdout)["findings"]
    low_ctr = {f["rule"] for f in findings if f["finding"] == "low_ctr"}
    assert low_ctr == {sent["world"]["ignored_rule"]}
    ignored = next(f for f in findings if f["finding"] == "low_ctr")
    assert ignored["advice"] == "check content" and ignored["file"].endswith("product.rules")
