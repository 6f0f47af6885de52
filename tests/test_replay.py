"""Replaying logged decisions: a verdict only where the log settles it, and always the true one.

The retail example's decisions are served by a real service (its click model
run by ONNX Runtime when a request leaves p_click out), then replayed from
their records alone and compared with the truth: each rule's condition on
every value the request could have been given.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from decision_logs import Request, serve

import tailor
from tailor.compiler.features import FeatureKind
from tailor.compiler.ir import All, predicate_features, predicates
from tailor.compiler.plan import value_type
from tailor.compiler.replay import Outcome, Replayer, Verdict
from tailor.compiler.values import Values, condition_value
from tailor.runtime.ruleset_loader import load

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"
AT = 1_700_000_000.0

RULES = """\
content a = {"id": "a"}
content b = {"id": "b"}
rule few when context.page == "home" and views(24h) < 3 then show a in hero priority 2
rule lapsed when context.page == "home" and since("purchase") is missing then show a in hero priority 1
rule cart when context.page == "cart" and views(24h) < 3 then show b in hero
default show b in hero
"""


def verdicts(ruleset: tailor.Ruleset, context: dict, features: dict, served: dict, logged: bool = True) -> dict:
    return {r.rule: r for r in Replayer(ruleset).replay(context, features, {}, served, logged)}


def test_a_value_the_decision_never_read_is_not_guessed() -> None:
    """A count missing from the record is not 0, nor a missing ``since`` missing: both rules are unjudged."""
    ruleset = tailor.loads(RULES)
    found = verdicts(ruleset, {"page": "home"}, {}, {"hero": "default"})
    assert found["few"].verdict is Verdict.UNJUDGED  # views(24h) < 3 would hold for a guessed 0
    assert found["lapsed"].verdict is Verdict.UNJUDGED  # `is missing` would hold for a guessed unknown
    assert found["cart"].verdict is Verdict.NOT_HELD  # its context predicate fails: no store value needed


def test_values_the_decision_read_settle_the_rules() -> None:
    ruleset = tailor.loads(RULES)
    features = {"views(24h)": 1, 'since("purchase")': None}
    found = verdicts(ruleset, {"page": "home"}, features, {"hero": "few"})
    assert (found["few"].verdict, found["few"].outcome) == (Verdict.HELD, Outcome.WON)
    assert (found["lapsed"].outcome, found["lapsed"].beaten_by) == (Outcome.BEATEN, "few")
    found = verdicts(ruleset, {"page": "home"}, {"views(24h)": 7, 'since("purchase")': 60}, {"hero": "default"})
    assert found["few"].verdict is found["lapsed"].verdict is Verdict.NOT_HELD


def test_a_rule_that_held_above_the_logged_winner_was_capped() -> None:
    ruleset = tailor.loads(RULES)
    features = {"views(24h)": 1, 'since("purchase")': None}
    found = verdicts(ruleset, {"page": "home"}, features, {"hero": "lapsed"})
    assert found["few"].outcome is Outcome.CAPPED and found["lapsed"].outcome is Outcome.WON
    replayed = verdicts(ruleset, {"page": "home"}, features, {"hero": "lapsed"}, logged=False)
    assert replayed["few"].outcome is Outcome.WON  # another version's decision: the replay's winner


def test_only_the_slots_a_decision_asked_for_are_replayed() -> None:
    side = 'content c = {"id": "c"}\nrule side when context.page == "home" then show c in side\n'
    ruleset = tailor.loads(RULES + side)
    found = verdicts(ruleset, {"page": "home"}, {}, {"side": "side"})
    assert set(found) == {"side"}


def _retail_requests(plan: tailor.Ruleset, count: int) -> list[tuple[Request, dict]]:
    """Random retail requests, and with each the value of every store feature it stands for.

    The store is empty, so a feature left out is what an empty store answers:
    0 for counts and totals, unknown for the rest.
    """
    rng = random.Random(11)
    choices = {
        "context.page": ["home", "product", "cart", "search"],
        "context.category": ["Electronics", "Books", "Toys"],
        "context.device": ["mobile", "desktop"],
        "context.cart_total": [0, 20, 49.99, 50, 120],
        "user.tier": ["gold", "platinum", "silver"],
        "p_click": [0.1, 0.5, 0.71, 0.9],
    }
    slots = [None, None, ("hero",), ("sidebar", "cart_upsell")]
    made = []
    for i in range(count):
        context: dict = {}
        features: dict = {}
        for text, ref in plan.plan.features.items():
            if rng.random() < 0.35:
                continue
            if ref.kind is FeatureKind.SINCE:
                value = rng.choice([None, 3600, 86400 * 3, 86400 * 45])
            elif text in choices:
                value = rng.choice(choices[text])
            else:
                value = rng.choice([0, 1, 2, 3, 5, 800])
            if ref.kind is FeatureKind.CONTEXT:
                context[ref.name] = value
            else:
                features[text] = value
        made.append((Request(f"u{i}", context, features, rng.choice(slots)), features))
    return made


def test_replayed_retail_decisions_agree_with_the_truth() -> None:
    ruleset = load(RETAIL)
    plan = ruleset.plan
    made = _retail_requests(ruleset, 400)
    records = serve(RETAIL, [request for request, _ in made], AT)
    types = {text: value_type(ref, plan.attribute_kinds) for text, ref in plan.features.items()}
    reads_model = {
        rule.name
        for rule in plan.rules
        if any(ref.kind is FeatureKind.MODEL for p in predicates(rule.condition) for ref in predicate_features(p))
    }
    replayer = Replayer(ruleset)
    seen = {verdict: 0 for verdict in Verdict}
    beaten = 0
    for (request, supplied), record in zip(made, records, strict=True):
        assert record.version == ruleset.version and not record.degraded
        if record.holdout:
            continue  # held out: no rule was asked, and nothing was fetched to judge one by
        served = {slot: answer.rule for slot, answer in record.slots.items()}
        arms = {entry.experiment: entry.arm for entry in record.experiments}
        truth = Values(request.context, supplied, plan.features, types, arms=arms)  # a model left out is unknown
        for result in replayer.add(record.context, record.features, record.models, served, arms=arms):
            rule = next(r for r in plan.rules if r.name == result.rule)
            seen[result.verdict] += 1
            beaten += result.outcome is Outcome.BEATEN
            if result.verdict is Verdict.UNJUDGED:
                assert rule.name in reads_model, (rule.name, record.to_dict())
                continue
            if rule.name in reads_model and "p_click" not in supplied:
                continue  # the truth does not know the score the model gave
            condition = rule.condition  # a cap is judged apart from the condition it guards
            if rule.cap is not None and isinstance(condition, All):
                condition = All(tuple(item for item in condition.items if item != rule.cap.atom))
            held = condition_value(condition, truth) is True
            assert held == (result.verdict is Verdict.HELD), (rule.name, record.to_dict())
    assert replayer.mismatched == 0
    assert all(tally.capped == 0 for tally in replayer.tallies().values())  # there are no caps to stop a rule
    assert seen[Verdict.HELD] > 50 and seen[Verdict.NOT_HELD] > 500 and seen[Verdict.UNJUDGED] > 0 and beaten > 0


@pytest.mark.parametrize("logged", [True, False])
def test_replay_of_the_same_version_finds_the_logged_winners(logged: bool) -> None:
    ruleset = load(RETAIL)
    made = _retail_requests(ruleset, 150)
    records = serve(RETAIL, [request for request, _ in made], AT)
    replayer = Replayer(ruleset)
    for record in records:
        served = {slot: answer.rule for slot, answer in record.slots.items()}
        arms = {entry.experiment: entry.arm for entry in record.experiments}
        results = replayer.replay(record.context, record.features, record.models, served, logged, arms)
        winners = {r.rule for r in results if r.outcome is Outcome.WON}
        logged_rules = {rule for rule in served.values() if rule not in (None, "default")}
        if logged:
            assert winners == logged_rules
        else:
            assert winners <= logged_rules  # a winner below an unjudged rule is left unsettled


CAPPED = """\
content a = {"id": "a"}
content b = {"id": "b"}
rule fans when views(24h) > 2 then show a in hero priority 2 cap 3 per 24h
rule browsers when views(24h) > 0 then show b in hero priority 1
default show b in hero
"""
IMPRESSIONS = 'count("impression", "a", 24h)'


@pytest.mark.parametrize("logged", [True, False])
def test_a_rule_its_cap_stopped_held_and_was_capped(logged: bool) -> None:
    """The cap is judged apart from the condition: held, then capped; the next rule wins."""
    ruleset = tailor.loads(CAPPED)
    found = verdicts(ruleset, {}, {"views(24h)": 5, IMPRESSIONS: 3}, {"hero": "browsers"}, logged)
    assert (found["fans"].verdict, found["fans"].outcome) == (Verdict.HELD, Outcome.CAPPED)
    assert found["browsers"].outcome is Outcome.WON
    found = verdicts(ruleset, {}, {"views(24h)": 5, IMPRESSIONS: 2}, {"hero": "fans"}, logged)
    assert found["fans"].outcome is Outcome.WON
    assert (found["browsers"].outcome, found["browsers"].beaten_by) == (Outcome.BEATEN, "fans")
