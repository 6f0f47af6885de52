"""Frequency caps: a rule that ends with ``cap N per WINDOW`` stops firing for a user who had N impressions.

The cap is the predicate ``count("impression", CONTENT, WINDOW) < N``: fetched
with the other store features, tested, linted and explained like them, and
told apart from a condition that did not hold.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tailor
from tailor.compiler.decide import Decider, Outcomes
from tailor.compiler.explain import CandidateTrace, capped_rules, explain
from tailor.compiler.ruleset import Ruleset, loads
from tailor.dsl.diagnostics import RulesError, is_problem, render
from tailor.runtime import ruletest
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.ruleset_loader import lint_path

SHOP = """\
ruleset shop

content accessories = {"kind": "banner"}
content gadgets = {"kind": "banner"}
content generic = {"kind": "banner"}

segment electronics_fan = user.interest == "electronics"

rule electronics_accessories
  when electronics_fan
  then show accessories in hero
  priority 10
  cap 3 per 24h

rule gadgets
  when electronics_fan
  then show gadgets in hero
  priority 5

default show generic in hero
"""

IMPRESSIONS = 'count("impression", "accessories", 24h)'
CAP = IMPRESSIONS + " < 3"
T = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


@pytest.fixture(scope="module")
def shop() -> Ruleset:
    return loads(SHOP, "shop.rules")


def impression(content: str, ts: float) -> dict:
    return {"user_id": "u", "type": "impression", "key": content, "ts": ts}


def outcomes(ruleset: Ruleset, context: dict, features: dict) -> tuple[Decider, Outcomes]:
    """One decision on supplied values, through the compiler's own steps (as the decision flow runs them)."""
    decider = Decider(ruleset)
    alive, needed = decider.begin(context)
    return decider, decider.finish(context, alive, needed, features)


# --- compiling -------------------------------------------------------------------------------------


def test_the_cap_is_a_store_predicate_on_the_impressions_of_the_rules_content(shop: Ruleset) -> None:
    plan = shop.plan
    assert plan.features[IMPRESSIONS].event == "impression"
    assert plan.features[IMPRESSIONS].key == "accessories"
    assert plan.features[IMPRESSIONS].window == 86400.0
    (capped,) = [c for c in plan.conjunctions if c.rule.name == "electronics_accessories"]
    assert {a.text() for a in capped.atoms} == {CAP, 'user.interest == "electronics"'}
    (uncapped,) = [c for c in plan.conjunctions if c.rule.name == "gadgets"]
    assert CAP not in [a.text() for a in uncapped.atoms]
    assert capped.rule.cap is not None and capped.rule.cap.text == "cap 3 per 24h"
    # Stage 1 fetches it with the rest, for the candidates that still need it.
    assert set(shop.compiled.needed(plan.all_bits)) == {IMPRESSIONS, "user.interest"}


def test_a_cap_shares_the_feature_a_condition_writes_by_hand() -> None:
    by_hand = f"when {IMPRESSIONS} >= 1\n  then show accessories"
    ruleset = loads(SHOP.replace("when electronics_fan\n  then show accessories", by_hand))
    assert set(ruleset.plan.features) == {IMPRESSIONS, "user.interest"}
    assert [t.ref.text for t in ruleset.plan.tables].count(IMPRESSIONS) == 1  # one table for both predicates
    engine = tailor.Engine(ruleset)
    for count, shown in [(0, "gadgets"), (1, "accessories"), (2, "accessories"), (3, "gadgets")]:
        decision = engine.decide(None, {}, features={"user.interest": "electronics", IMPRESSIONS: count})
        assert decision.slots["hero"].content == shown, count


def test_compile_emits_the_cap(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)

    def emit(stage: str) -> str:
        result = run("compile", "shop.rules", "--emit", stage, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "-> accessories: electronics_fan  [cap 3 per 24h]" in emit("check")
    assert f"  cap 3 per 24h: {CAP} in every conjunction" in emit("normalize")
    plan = emit("plan")
    assert f"  {IMPRESSIONS}  [table; 1 predicates; used by 1 conjunctions]" in plan
    tables = f'tables: user.interest == "electronics" and {CAP}'
    assert f"electronics_accessories (priority 10) -> accessories: {tables}" in plan
    python = emit("python")
    assert f"# {CAP}" in python and f"out.append('{IMPRESSIONS}')" in python


# --- deciding: a sequence of decisions against a store ---------------------------------------------


def test_the_fourth_decision_in_the_window_falls_to_the_next_rule_and_the_cap_lifts_after_it() -> None:
    store = MemoryStore()
    engine = tailor.Engine(loads(SHOP), store)
    engine.set_profile("u", {"interest": "electronics"})
    shown = []
    for minute in range(4):
        at = T + minute * 60
        before = store.round_trips
        shown.append(engine.decide("u", {}, ["hero"], at=at).slots["hero"].content)
        assert store.round_trips == before + 1  # the cap is read in the decision's one fetch
        if shown[-1] == "accessories":
            engine.record([impression("accessories", at + 1)], now=at + 1)
    assert shown == ["accessories", "accessories", "accessories", "gadgets"]
    # Impressions of other content do not count towards this cap.
    engine.record([impression("gadgets", T + 300)], now=T + 300)
    assert engine.decide("u", {}, at=T + 12 * HOUR).slots["hero"].content == "gadgets"
    # A day and two hours after the last impression the window has passed: the cap lifts.
    assert engine.decide("u", {}, at=T + 26 * HOUR).slots["hero"].content == "accessories"


def test_a_capped_rule_without_a_fallback_leaves_the_default() -> None:
    store = MemoryStore()
    ruleset = loads(SHOP.replace("priority 5", "priority 5\n  cap 1 per 7d"))
    engine = tailor.Engine(ruleset, store)
    engine.set_profile("u", {"interest": "electronics"})
    engine.record([impression("accessories", T - 60 * i) for i in range(1, 4)], now=T)
    engine.record([impression("gadgets", T - 6 * 86400)], now=T)
    assert engine.decide("u", {}, at=T).slots["hero"].content == "generic"
    assert engine.decide("u", {}, at=T + 1.5 * 86400).slots["hero"].content == "accessories"  # 24h passed
    assert engine.decide("u", {}, at=T + 2 * HOUR).slots["hero"].content == "generic"


def test_a_visitor_the_store_does_not_know_is_under_every_cap(shop: Ruleset) -> None:
    engine = tailor.Engine(shop, MemoryStore())
    decision = engine.decide("stranger", {}, features={"user.interest": "electronics"}, at=T)
    assert decision.slots["hero"].content == "accessories"


def test_an_unknown_impression_count_does_not_let_a_capped_rule_fire(shop: Ruleset) -> None:
    features = {"user.interest": "electronics", IMPRESSIONS: None}
    assert tailor.Engine(shop).decide(None, {}, features=features).slots["hero"].content == "gadgets"


# --- explain, and what a decision records of its caps -----------------------------------------------


def test_explain_tells_a_capped_rule_from_one_whose_condition_failed(shop: Ruleset) -> None:
    decider, capped = outcomes(shop, {}, {"user.interest": "electronics", IMPRESSIONS: 3})
    trace = explain(decider, capped).slots["hero"]
    first, second = trace.candidates
    assert (first.rule, first.outcome, first.won) == ("electronics_accessories", "capped", False)
    assert first.reason == "capped: 3 impressions in 24h, cap 3"
    assert (second.rule, second.outcome, second.won) == ("gadgets", "won", True)
    assert capped_rules(decider, capped) == ("electronics_accessories",)
    rendered = explain(decider, capped).render()
    assert "✗ electronics_accessories (priority 10) -> accessories: capped: 3 impressions in 24h, cap 3" in rendered

    decider, unmet = outcomes(shop, {}, {"user.interest": "books", IMPRESSIONS: 3})
    first = explain(decider, unmet).slots["hero"].candidates[0]
    assert (first.outcome, first.reason) == ("unmet", 'user.interest = "books", needed == "electronics"')
    assert capped_rules(decider, unmet) == ()

    decider, under = outcomes(shop, {}, {"user.interest": "electronics", IMPRESSIONS: 1})
    first = explain(decider, under).slots["hero"].candidates[0]
    assert (first.outcome, first.reason) == ("won", f'user.interest = "electronics", {IMPRESSIONS} = 1')
    assert capped_rules(decider, under) == ()


def test_one_impression_is_singular_and_an_unknown_count_is_unmet() -> None:
    ruleset = loads(SHOP.replace("cap 3 per 24h", "cap 1 per 24h"))
    decider, capped = outcomes(ruleset, {}, {"user.interest": "electronics", IMPRESSIONS: 1})
    assert explain(decider, capped).slots["hero"].candidates[0].reason == "capped: 1 impression in 24h, cap 1"
    decider, unknown = outcomes(ruleset, {}, {"user.interest": "electronics", IMPRESSIONS: None})
    first = explain(decider, unknown).slots["hero"].candidates[0]
    assert (first.outcome, first.reason) == ("unmet", f"{IMPRESSIONS} is unknown, needed < 1")


def test_capped_rules_ranked_below_what_was_served_are_not_counted() -> None:
    text = SHOP.replace("priority 5", "priority 50")  # gadgets now outranks the capped rule
    decider, result = outcomes(loads(text), {}, {"user.interest": "electronics", IMPRESSIONS: 5})
    assert result.decision.slots["hero"].content == "gadgets"
    assert capped_rules(decider, result) == ()


def test_candidate_outcomes_read_back_from_json() -> None:
    trace = CandidateTrace("r", 10, "accessories", False, "capped: 3 impressions in 24h, cap 3", "a.rules", 3, "capped")
    assert CandidateTrace.from_dict(trace.to_dict()) == trace
    older = {key: value for key, value in trace.to_dict().items() if key != "outcome"}
    assert CandidateTrace.from_dict(older).outcome == "unmet"
    assert CandidateTrace.from_dict({**older, "won": True}).outcome == "won"


# --- rule tests and coverage --------------------------------------------------------------------------

SHOP_TESTS = f"""\
test "fans see accessories while under the cap"
  given user.interest = "electronics", {IMPRESSIONS} = 2
  expect hero = accessories

test "fans who had three impressions today see gadgets"
  given user.interest = "electronics", {IMPRESSIONS} = 3
  expect hero = gadgets
"""


def test_rule_tests_give_the_impression_count_and_coverage_sees_the_cap_both_ways(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    (tmp_path / "shop_test.rules").write_text(SHOP_TESTS)
    suite, problems = ruletest.prepare(tmp_path)
    assert problems == [] and suite is not None
    report = ruletest.run(suite)
    assert report.failed == 0 and len(report.results) == 2
    assert (CAP, True, True) in report.coverage.predicates
    result = run("test", "--coverage", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"never true: {CAP}" not in result.stdout and f"never false: {CAP}" not in result.stdout

    (tmp_path / "shop_test.rules").write_text(SHOP_TESTS.split("\n\n")[0] + "\n")
    result = run("test", "--coverage", ".", cwd=tmp_path)
    assert result.returncode == 0
    assert f"never false: {CAP}" in result.stdout  # no test reached the cap


def test_a_failing_rule_test_explains_the_cap(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    (tmp_path / "shop_test.rules").write_text(SHOP_TESTS.replace("expect hero = gadgets", "expect hero = accessories"))
    result = run("test", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "capped: 3 impressions in 24h, cap 3" in result.stdout


# --- checking and lint: golden diagnostics -------------------------------------------------------------

BAD_CAPS = """\
content a = {}
rule negative when true then show a cap -1 per 1d
rule fraction when true then show a cap 2.5 per 24h
rule instant when true then show a cap 3 per 0h
default show a
"""

BAD_CAPS_RENDERED = """\
caps.rules:2:41: error: a cap must be a whole number of impressions, 0 or more, not -1
  |
2 | rule negative when true then show a cap -1 per 1d
  |                                         ^^ write it like cap 3 per 24h
caps.rules:3:41: error: a cap must be a whole number of impressions, 0 or more, not 2.5
  |
3 | rule fraction when true then show a cap 2.5 per 24h
  |                                         ^^^ write it like cap 3 per 24h
caps.rules:4:46: error: the window of a cap must be longer than zero
  |
4 | rule instant when true then show a cap 3 per 0h
  |                                              ^^ write it like cap 3 per 24h"""


def test_a_cap_that_is_not_a_whole_number_or_has_no_window_is_an_error() -> None:
    with pytest.raises(RulesError) as failed:
        loads(BAD_CAPS, "caps.rules")
    assert "\n".join(render(d) for d in failed.value.diagnostics) == BAD_CAPS_RENDERED


LINTED = """\
content a = {}
content b = {}
rule zero when true then show a cap 0 per 24h
rule long when true then show a priority 2 cap 3 per 60d
rule contradicted when count("impression", "b", 1d) > 5 then show b cap 3 per 1d
rule capped_true when true then show b priority 9 cap 2 per 1d
default show b
"""

LINTED_RENDERED = """\
lint.rules:3:37: warning: rule 'zero' can never fire: cap 0 allows no impressions of 'a'
  |
3 | rule zero when true then show a cap 0 per 24h
  |                                     ^ a cap is how many impressions a user may have had in the window:\
 write 1 or more, or delete the rule to switch it off
lint.rules:4:54: warning: the cap of rule 'long' looks back 60d, but events are kept for only 30d,\
 so older impressions are not counted
  |
4 | rule long when true then show a priority 2 cap 3 per 60d
  |                                                      ^^^ shorten the cap's window,\
 or run the server with a longer --retention
lint.rules:5:6: warning: rule 'contradicted' can never fire: its condition can never be true
  |
5 | rule contradicted when count("impression", "b", 1d) > 5 then show b cap 3 per 1d
  |      ^^^^^^^^^^^^ its conditions contradict each other, or compare with something that is never known"""


def test_lint_warns_of_a_cap_of_zero_a_window_beyond_retention_and_a_cap_the_condition_contradicts(
    tmp_path: Path,
) -> None:
    (tmp_path / "lint.rules").write_text(LINTED)
    found = [d for d in lint_path(tmp_path / "lint.rules") if is_problem(d)]  # less the note on consent
    # A capped `when true` rule does not always fire, and does not shadow the rules below it.
    assert {d.code for d in found} == {"never-fires", "window-beyond-retention"}
    assert "\n".join(render(d) for d in found).replace(str(tmp_path) + "/", "") == LINTED_RENDERED
    assert lint_path(tmp_path / "lint.rules", retention=90 * 86400.0)[1].code == "never-fires"


def test_an_uncapped_rule_under_a_capped_one_with_the_same_condition_is_not_shadowed(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP)
    assert [d for d in lint_path(tmp_path / "shop.rules") if is_problem(d)] == []
    (tmp_path / "shop.rules").write_text(SHOP.replace("  cap 3 per 24h\n", ""))
    assert [d.code for d in lint_path(tmp_path / "shop.rules") if is_problem(d)] == ["shadowed"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True)
