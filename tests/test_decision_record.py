"""The record of a served decision: what the log, feedback joins and KPIs are built on."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson

from tailor.runtime.decision_record import DecisionRecord, ExperimentArm
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

RULES = """
content vip = {"title": "VIP"}
content fan = {"title": "Fan"}
content generic = {"title": "Hi"}
rule gold when user.tier == "gold" then show vip in hero priority 5
rule fans when views("Electronics", 24h) > 2 then show fan in hero
default show generic in hero
"""


def served_records(tmp_path, decide_args: list[tuple]) -> list[DecisionRecord]:
    (tmp_path / "home.rules").write_text(RULES)
    records: list[DecisionRecord] = []

    async def run() -> None:
        store = MemoryStore()
        service = DecisionService(tmp_path, store)
        service.install(service.prepare())
        service.listen(records.append)
        for user_id, context, features in decide_args:
            decided = await service.decide(user_id, context, None, features, 1_700_000_000.0)
            service.publish(decided, service.new_decision_id(), user_id, context, 1_700_000_000.0)

    asyncio.run(run())
    return records


def test_record_names_the_rule_priority_and_the_features_read(tmp_path) -> None:
    [gold, plain] = served_records(
        tmp_path, [("u1", {"page": "home"}, {"user.tier": "gold"}), ("u2", {"page": "home"}, None)]
    )
    assert gold.slots["hero"].to_dict() == {"content": "vip", "rule": "gold", "priority": 5}
    assert gold.features["user.tier"] == "gold"
    assert gold.context == {"page": "home"} and gold.at == 1_700_000_000.0
    assert plain.slots["hero"].to_dict() == {"content": "generic", "rule": "default", "priority": None}
    assert plain.features['views("Electronics", 24h)'] == 0
    assert gold.decision_id != plain.decision_id
    assert not plain.degraded and plain.reason is None


def test_record_round_trips_through_its_dict(tmp_path) -> None:
    [record] = served_records(tmp_path, [("u1", {}, {"user.tier": "gold"})])
    assert DecisionRecord.from_dict(record.to_dict()) == record


def test_the_log_writes_the_record_as_its_dict_byte_for_byte(tmp_path) -> None:
    # The decision log hands orjson the dataclass itself (no dicts built): the bytes must be the dict's.
    records = served_records(
        tmp_path, [("u1", {"page": "home", "n": 3, "é": "\u2028"}, {"user.tier": "gold"}), ("u2", {}, None)]
    )
    with_arms = replace(
        records[1],
        experiments=(ExperimentArm("hero_test", "b", "p1", True, ("hero",)), ExperimentArm("x", "a", "p2", False)),
        models={"p_click": 0.25, "failed": None},
        holdout=True,
    )
    for record in [*records, with_arms]:
        assert orjson.dumps(record) == orjson.dumps(record.to_dict())


def test_nothing_is_built_without_a_listener(tmp_path) -> None:
    (tmp_path / "home.rules").write_text(RULES)
    service = DecisionService(tmp_path, MemoryStore())
    service.install(service.prepare())
    decided = asyncio.run(service.decide("u1", {}, None, None))
    service.publish(decided, "d1", "u1", {}, None)  # no listener: a no-op
    assert decided.outcomes.decision.slots["hero"].content == "generic"
