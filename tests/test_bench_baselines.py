"""The decision benchmark's contenders agree, so the benchmark cannot silently rot.

Small rulesets and few requests: the hand-written if-chain, the naive
interpreter and the compiled engine must decide every request alike. The naive
interpreter is the reference, so its three-valued logic is checked on its own.
"""

from __future__ import annotations

import tailor
from bench import decide
from bench.baselines import (
    Decision,
    IfChain,
    NaiveInterpreter,
    ZenTables,
    decisions,
    disagreements,
    engine_decide,
    if_chain_source,
    load_program,
    zen_module,
)
from bench.workload import SLOTS, requests, ruleset_text

N_RULES = 50
N_REQUESTS = 200


def _workload(n_rules: int = N_RULES, n_requests: int = N_REQUESTS) -> tuple[str, list[dict]]:
    return ruleset_text(n_rules), requests(n_requests)


def _reference(text: str, reqs: list[dict]) -> list[Decision]:
    return decisions(NaiveInterpreter(load_program(text)).decide, reqs)


def test_the_if_chain_agrees_with_the_naive_interpreter() -> None:
    text, reqs = _workload()
    chain = IfChain.build(load_program(text))
    assert disagreements(_reference(text, reqs), chain.decide, reqs) == []


def test_the_compiled_engine_agrees_with_the_naive_interpreter() -> None:
    text, reqs = _workload()
    program = load_program(text)
    engine = tailor.Engine(tailor.loads(text, name="bench"))
    assert disagreements(_reference(text, reqs), engine_decide(engine, program), reqs) == []


def test_the_contenders_agree_on_a_larger_ruleset() -> None:
    text, reqs = _workload(n_rules=300, n_requests=100)
    program = load_program(text)
    expected = _reference(text, reqs)
    assert disagreements(expected, IfChain.build(program).decide, reqs) == []
    engine = tailor.Engine(tailor.loads(text, name="bench"))
    assert disagreements(expected, engine_decide(engine, program), reqs) == []


def test_the_zen_tables_agree_when_zen_is_installed() -> None:
    zen = zen_module()
    if zen is None:  # an optional peer: nothing to check without it
        return
    text, reqs = _workload()
    tables = ZenTables(load_program(text), zen)
    assert disagreements(_reference(text, reqs), tables.decide, reqs) == []


def test_the_workload_is_not_degenerate() -> None:
    """Some slots fall through to the default, most do not, and every slot gets an answer."""
    text, reqs = _workload(n_rules=300, n_requests=300)
    program = load_program(text)
    assert len(program.rules) == 300
    assert set(program.slots) == set(SLOTS)
    explained = [NaiveInterpreter(program).explain(r["context"], r["features"]) for r in reqs]
    winners = [rule for decision in explained for _content, rule in decision.values()]
    default_share = winners.count("default") / len(winners)
    assert 0.2 < default_share < 0.8
    assert all(content is not None for decision in explained for content, _rule in decision.values())


def test_the_if_chain_reads_the_request_as_a_person_would() -> None:
    text = """
    content a = {"id": "a"}
    content b = {"id": "b"}
    default show b in hero
    rule low when context.page == "home" and views("Books", 24h) > 2 then show a in hero priority 1
    rule high when user.tier in ["gold", "platinum"] then show b in hero priority 5
    """
    source = if_chain_source(load_program(text))
    high = source.index('if features[\'user.tier\'] in ("gold", "platinum"):')
    low = source.index('if context.get("page") == "home" and features[\'views("Books", 24h)\'] > 2:')
    assert high < low  # priority order
    assert '    return "b"\n\ndef decide(context, features):' in source  # the default closes the slot


RULES_WITH_GAPS = """
content vip = {"id": "vip"}
content sale = {"id": "sale"}
content fan = {"id": "fan"}
content generic = {"id": "generic"}
content upgrade = {"id": "upgrade"}
content never = {"id": "never"}

segment electronics_fan = views("Electronics", 24h) > 2

rule vip_banner when user.tier == "gold" then show vip in hero priority 10
rule sale_banner when context.country == "FR" then show sale in hero priority 10
rule fan_banner when electronics_fan then show fan in hero priority 50
default show generic in hero

rule not_gold when user.tier != "gold" then show upgrade in side
rule missing_or_not_gold when user.tier is missing or user.tier != "gold" then show upgrade in other
rule lapsed when since("purchase") > 30d or not (user.age >= 18) then show never in lapse
"""


def _naive(context: dict, features: dict) -> Decision:
    return NaiveInterpreter(load_program(RULES_WITH_GAPS)).decide(context, features)


def test_the_naive_interpreter_picks_the_highest_priority_then_the_first() -> None:
    gold_fr_fan = {"user.tier": "gold", 'views("Electronics", 24h)': 5}
    assert _naive({"country": "FR"}, gold_fr_fan)["hero"] == "fan"
    assert _naive({"country": "FR"}, {"user.tier": "gold"})["hero"] == "vip"
    assert _naive({"country": "FR"}, {})["hero"] == "sale"
    assert _naive({"country": "DE"}, {})["hero"] == "generic"


def test_the_naive_interpreter_treats_missing_data_as_unknown() -> None:
    nothing = _naive({}, {})
    assert nothing["side"] is None  # user.tier != "gold" is unknown: does not fire; no default
    assert nothing["other"] == "upgrade"  # is missing is never unknown; true or unknown is true
    assert nothing["lapse"] is None  # since() missing, not (unknown) is unknown
    assert nothing["hero"] == "generic"  # a counter that is not supplied is 0, not unknown
    assert _naive({}, {"user.tier": "silver"})["side"] == "upgrade"
    assert _naive({}, {"user.age": 16})["lapse"] == "never"
    assert _naive({}, {'since("purchase")': 40 * 86400})["lapse"] == "never"
    assert _naive({}, {'since("purchase")': 10, "user.age": 30})["lapse"] is None


def test_the_benchmark_runs_end_to_end_on_a_small_ruleset() -> None:
    result = decide.run(quick=True, rule_counts=(60,), n_requests=40)
    (case,) = result["cases"]
    assert case["rules"] == 60
    assert {decide.IF_CHAIN, decide.NAIVE, decide.COMPILED} <= set(case["us"])
    assert all(value > 0 for value in case["us"].values())
    assert case["compile_s"] > 0
    text = decide.report(result)
    assert "if-chain (hand-written Python)" in text
    assert "compiled engine" in text
    assert "targets:" in text
