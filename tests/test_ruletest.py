"""``tailor test`` and ``tailor explain``, run as a user runs them: a subprocess, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.ports import free_port
from tailor.compiler.ruleset import loads
from tailor.runtime.engine import Engine
from tailor.runtime.ruletest import render_explain_json

ROOT = Path(__file__).resolve().parents[1]

SHOP = """\
ruleset shop

content banner_gold = {"id": "gold"}
content banner_home = {"id": "home"}
content banner_generic = {"id": "generic"}
content side_deal = {"id": "deal"}

rule gold_banner
  when user.tier == "gold" and context.page == "home"
  then show banner_gold in hero
  priority 20

rule home_banner
  when context.page == "home" and views("Shoes", 24h) > 2
  then show banner_home in hero
  priority 10

rule deal
  when since("purchase") > 30d
  then show side_deal in sidebar

default show banner_generic in hero
"""

PASSING = """\
test "gold home visitors get the gold banner"
  given user.tier = "gold", context.page = "home"
  expect hero = banner_gold, sidebar = nothing

test "lapsed buyers get the deal"
  given since("purchase") = 40d
  expect hero = default, sidebar = side_deal
"""

FAILING = """\
test "shoe fans get the home banner"
  given user.tier = "gold", context.page = "home", views("Shoes", 24h) = 5
  expect hero = banner_home
"""


def tailor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def shop(tmp_path: Path, tests: str) -> Path:
    (tmp_path / "shop.rules").write_text(SHOP, encoding="utf-8")
    (tmp_path / "shop_test.rules").write_text(tests, encoding="utf-8")
    return tmp_path


def test_passing_tests_exit_zero(tmp_path: Path) -> None:
    result = tailor("test", ".", cwd=shop(tmp_path, PASSING))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  gold home visitors get the gold banner  [shop_test.rules:1]" in result.stdout
    assert "2 tests: 2 passed, 0 failed" in result.stdout


def test_a_failure_shows_the_explanation_of_the_slot_that_differed(tmp_path: Path) -> None:
    result = tailor("test", ".", cwd=shop(tmp_path, PASSING + "\n" + FAILING))
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL  shoe fans get the home banner  [shop_test.rules:9]" in out
    assert "hero: expected banner_home, got banner_gold (rule gold_banner)" in out
    # The rule that won instead, and the candidate that should have won, with where they are.
    assert "✓ gold_banner (priority 20) -> banner_gold" in out
    assert "[shop.rules:8]" in out
    assert "3 tests: 2 passed, 1 failed" in out


def test_the_reason_a_candidate_lost_is_shown(tmp_path: Path) -> None:
    tests = 'test "shoe fans get the home banner"\n  given context.page = "home", views("Shoes", 24h) = 1\n'
    tests += "  expect hero = banner_home\n"
    result = tailor("test", ".", cwd=shop(tmp_path, tests))
    assert result.returncode == 1
    assert 'home_banner (priority 10) -> banner_home: views("Shoes", 24h) = 1, needed > 2' in result.stdout
    assert "hero: expected banner_home, got banner_generic (the slot's default)" in result.stdout


def test_k_selects_tests_by_title_ignoring_case(tmp_path: Path) -> None:
    result = tailor("test", ".", "-k", "LAPSED", cwd=shop(tmp_path, PASSING + "\n" + FAILING))
    assert result.returncode == 0, result.stdout
    assert "lapsed buyers get the deal" in result.stdout
    assert "shoe fans" not in result.stdout
    assert "1 test: 1 passed, 0 failed" in result.stdout


def test_coverage_counts_rules_and_lists_the_uncovered_by_file_and_line(tmp_path: Path) -> None:
    result = tailor("test", ".", "--coverage", cwd=shop(tmp_path, PASSING))
    assert result.returncode == 0, result.stdout
    assert "rule coverage: 2/3 rules won their slot (66.7%)" in result.stdout
    assert "not covered: home_banner [shop.rules:13]" in result.stdout
    assert 'never true: views("Shoes", 24h) > 2' in result.stdout
    assert "predicate coverage: " in result.stdout


def test_a_threshold_above_the_coverage_fails(tmp_path: Path) -> None:
    root = shop(tmp_path, PASSING)
    assert tailor("test", ".", "--threshold", "60", cwd=root).returncode == 0
    below = tailor("test", ".", "--threshold", "90", cwd=root)
    assert below.returncode == 1
    assert "rule coverage 66.7% is below the threshold 90%" in below.stderr


def test_junit_is_valid_xml_with_the_counts(tmp_path: Path) -> None:
    result = tailor("test", ".", "--format", "junit", cwd=shop(tmp_path, PASSING + "\n" + FAILING))
    assert result.returncode == 1
    suite = ET.fromstring(result.stdout).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    cases = suite.findall("testcase")
    assert len(cases) == 3
    failures = [case for case in cases if case.find("failure") is not None]
    assert [case.get("name") for case in failures] == ["shoe fans get the home banner"]
    failure = failures[0].find("failure")
    assert failure is not None and "gold_banner" in (failure.text or "")


def test_json_report_shape(tmp_path: Path) -> None:
    result = tailor("test", ".", "--format", "json", cwd=shop(tmp_path, PASSING + "\n" + FAILING))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ruleset"] == "shop"
    assert report["summary"] == {"total": 3, "passed": 2, "failed": 1}
    failed = [test for test in report["tests"] if not test["passed"]]
    assert failed[0]["failures"][0]["slot"] == "hero"
    assert failed[0]["failures"][0]["expected"] == "banner_home"
    assert "gold_banner" in failed[0]["failures"][0]["explain"]
    rules = {rule["rule"]: rule["covered"] for rule in report["coverage"]["rules"]}
    assert rules == {"gold_banner": True, "home_banner": False, "deal": True}


def test_unknown_content_in_expect_is_a_diagnostic(tmp_path: Path) -> None:
    tests = 'test "gold"\n  given user.tier = "gold"\n  expect hero = banner_gld\n'
    result = tailor("test", ".", cwd=shop(tmp_path, tests))
    assert result.returncode == 1
    assert "shop_test.rules:3:17: error: unknown content 'banner_gld'" in result.stdout
    assert "did you mean 'banner_gold'?" in result.stdout


def test_unknown_feature_in_given_is_a_diagnostic(tmp_path: Path) -> None:
    tests = 'test "gold"\n  given user.teir = "gold"\n  expect hero = banner_gold\n'
    result = tailor("test", ".", cwd=shop(tmp_path, tests))
    assert result.returncode == 1
    assert "shop_test.rules:2:9: error: unknown feature user.teir" in result.stdout
    assert "did you mean 'user.tier'?" in result.stdout


def test_unknown_slot_and_duplicate_titles_are_diagnostics(tmp_path: Path) -> None:
    tests = 'test "a"\n  expect heroo = default\n\ntest "a"\n  expect hero = default\n'
    result = tailor("test", ".", cwd=shop(tmp_path, tests))
    assert result.returncode == 1
    assert "shop_test.rules:2:10: error: unknown slot 'heroo'" in result.stdout
    assert 'shop_test.rules:4:6: error: there is already a test titled "a"' in result.stdout


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = tailor("test", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere: no such file or directory" in result.stderr


def test_explain_prints_the_decision_and_its_candidates(tmp_path: Path) -> None:
    shop(tmp_path, PASSING)
    args = ("--user", "u1", "--context", "page=home", "--feature", 'views("Shoes", 24h)=3', "--slot", "hero")
    result = tailor("explain", ".", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("ruleset shop (version ")
    assert "hero: banner_home  (by rule home_banner)" in out
    assert "✗ gold_banner (priority 20) -> banner_gold: user.tier is unknown" in out
    assert "✓ home_banner (priority 10) -> banner_home" in out
    assert "sidebar" not in out


def test_explain_reads_values_as_json_or_text(tmp_path: Path) -> None:
    shop(tmp_path, PASSING)
    result = tailor("explain", ".", "--context", "page=home", "--feature", "user.tier=gold", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hero: banner_gold  (by rule gold_banner)" in result.stdout
    assert "sidebar: nothing  (by no rule fired)" in result.stdout
    bad = tailor("explain", ".", "--context", "page", cwd=tmp_path)
    assert bad.returncode == 2


def test_a_server_explanation_renders_like_a_local_one() -> None:
    ruleset = loads(SHOP, "shop")
    explanation = Engine(ruleset).explain("u1", {"page": "home"}, None, {'views("Shoes", 24h)': 4}, None)
    body = {"ruleset": "shop", "explain": json.loads(json.dumps(explanation.to_dict()))}
    assert render_explain_json(body) == explanation.render()


def test_explain_asks_a_running_server_with_url(tmp_path: Path) -> None:
    shop(tmp_path, PASSING)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tailor.cli", "serve", ".", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the server did not start")
                time.sleep(0.1)
        args = ("--user", "u1", "--context", "page=home", "--feature", "user.tier=gold", "--slot", "hero")
        remote = tailor("explain", "--url", f"http://127.0.0.1:{port}", *args, cwd=tmp_path)
        local = tailor("explain", ".", *args, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert remote.returncode == 0, remote.stderr
    assert "hero: banner_gold  (by rule gold_banner)" in remote.stdout
    assert remote.stdout.splitlines()[0] == local.stdout.splitlines()[0]
    assert remote.stdout.splitlines()[1:3] == local.stdout.splitlines()[1:3]


@pytest.mark.parametrize("path", ["rulesets/retail"])
def test_the_retail_tests_pass_with_full_rule_coverage(path: str) -> None:
    result = tailor("test", path, "--coverage", "--threshold", "100", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(100.0%)" in result.stdout
    assert " 0 failed" in result.stdout
