"""Rules against the model, end to end: simulated users through a real server, and the experiment's report.

``tailor simulate --url`` drives the retail example, whose ``hero_test``
shows the click model's pick to half the visitors; the model arm's hero is
given a true lift. The report must count exactly the users, impressions and
clicks the simulation sent to each arm, and its CTR lift interval must hold
the true lift; the holdout's size, read from the decision log, must fit its
binomial bounds; and a simulation that loses 30% of one arm's users
before they reach the server must be flagged as a sample ratio mismatch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from server_process import KEY, servers

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"
LIFT = 0.5  # the model arm's hero: half as many clicks again


def tailor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env={"TAILOR_API_KEY": KEY, "PATH": "/usr/bin:/bin"},
    )


def simulate(url: str, out: Path, users: int, *extra: str) -> dict[str, Any]:
    done = tailor("simulate", "--url", url, "--users", str(users), "--seed", "11", "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def experiment_report(url: str) -> dict[str, Any]:
    done = tailor("experiments", "hero_test", "--url", url, "--format", "json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["experiments"]
    return report


def check_lift_and_holdout(tmp_path: Path, users: int) -> dict[str, Any]:
    logs = tmp_path / "decisions"
    with servers(tmp_path) as start:
        server = start(RETAIL, "--decision-log", str(logs))
        sent = simulate(server.url, tmp_path / "sent.json", users, "--lift", f"hero_by_model={LIFT}")
        report = experiment_report(server.url)
    arms = {arm["arm"]: arm for arm in report["result"]["arms"]}
    truth = {row["arm"]: row for row in sent["arms"] if row["experiment"] == "hero_test"}
    # Every drawn user's hero decision reads hero_test (hero_by_model ranks first): all of them are exposed.
    for arm in ("rules", "model"):
        assert (arms[arm]["users"], arms[arm]["impressions"], arms[arm]["clicks"]) == (
            truth[arm]["users"],
            truth[arm]["impressions"],
            truth[arm]["clicks"],
        )
    true_lift = truth["model"]["true_ctr"] / truth["rules"]["true_ctr"] - 1
    (ctr,) = [c for c in report["result"]["comparisons"] if c["metric"] == "ctr"]
    for method in ("welch", "sequential", "bayesian"):
        assert ctr[method]["low"] <= true_lift <= ctr[method]["high"], (method, true_lift, ctr[method])
    assert not report["result"]["srm"]["flagged"]
    assert report["conclusions"][0].endswith("no sample ratio mismatch")
    assert report["over_time"] and report["over_time"][-1]["arm"] == "model"
    shown = {
        method: (round(ctr[method]["low"], 4), round(ctr[method]["high"], 4)) for method in ("welch", "sequential")
    }
    print(f"\n{users} users: true CTR lift {true_lift:+.4f}, estimated {ctr['welch']['expected']:+.4f}, {shown}")

    logged = tailor("experiments", "--log", str(logs), "--rules", str(RETAIL), "--format", "json")
    assert logged.returncode == 0, logged.stderr
    holdout = json.loads(logged.stdout)["holdout"]
    assert holdout["users"] == users and holdout["held_out"] == sent["held_out"]
    assert holdout["low"] <= holdout["held_out"] <= holdout["high"] and not holdout["flagged"]
    assert holdout["share"] == 0.05
    return {"true_lift": true_lift, "ctr": ctr, "report": report}


@pytest.mark.slow  # a server and 1,500 simulated users: the default run stays near five minutes
def test_the_report_recovers_the_true_lift_and_the_holdout_fits_its_share(tmp_path: Path) -> None:
    check_lift_and_holdout(tmp_path, 1500)


@pytest.mark.slow
def test_twenty_thousand_users_recover_the_true_lift(tmp_path: Path) -> None:
    found = check_lift_and_holdout(tmp_path, 20_000)
    assert found["ctr"]["sequential"]["low"] > 0  # with this many users the model's win is clear
    assert found["report"]["conclusions"][0].startswith("model beats rules on CTR by")


@pytest.mark.slow  # a server and 1,500 simulated users: the default run stays near five minutes
def test_losing_one_arms_users_is_flagged_as_a_sample_ratio_mismatch(tmp_path: Path) -> None:
    with servers(tmp_path) as start:
        server = start(RETAIL)
        sent = simulate(server.url, tmp_path / "sent.json", 1500, "--drop-users", "hero_test:model=0.3")
        report = experiment_report(server.url)
        text = tailor("experiments", "--url", server.url, "--plot", str(tmp_path / "lift.png"))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("experiment hero_test (phase ") and "rules 50%, model 50%" in text.stdout
    assert "\n- sample ratio mismatch (p = " in text.stdout
    assert (tmp_path / "lift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = {row["arm"]: row for row in sent["arms"] if row["experiment"] == "hero_test"}
    assert truth["model"]["dropped"] > 0 and truth["rules"]["dropped"] == 0
    srm = report["result"]["srm"]
    assert srm["flagged"] and srm["p_value"] < 0.001
    users = {arm["arm"]: arm["users"] for arm in report["result"]["arms"]}
    assert users["model"] == truth["model"]["users"] - truth["model"]["dropped"]
    assert report["conclusions"][0].startswith("sample ratio mismatch")
