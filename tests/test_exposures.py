"""Decision records name each drawn arm and its phase; first exposures are counted once, in both stores."""

from __future__ import annotations

import asyncio

import pytest

from tailor.bucketing import bucket_ranges, choose_arm, hash
from tailor.runtime.decision_record import DecisionRecord
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.store import Exposure

RULES = """
ruleset shop
content accessories = {}
content banner = {}
content generic = {}
experiment hero_test
  arms rules 50%, model 50%
holdout 10%
rule top when context.page == "sale" then show banner in hero priority 50
rule hero_by_model when hero_test == "model" and context.page == "home" then show accessories in hero priority 20
rule footer_by_model when hero_test == "model" then show accessories in footer
default show generic in hero
default show generic in footer
"""


def arm_of(user: str) -> str | None:
    if hash("shop-holdout", user) < 0.1:
        return None
    return ("rules", "model")[choose_arm(hash("hero_test", user), bucket_ranges(2, 1.0, [0.5, 0.5]))]


def users(arm: str | None, count: int = 5) -> list[str]:
    return [u for u in (f"u{i}" for i in range(2000)) if arm_of(u) == arm][:count]


def serve(tmp_path, store, requests: list[tuple[str, dict, list[str] | None]], rules: str = RULES):
    """Serve the requests as /v1/decide does; the records, and the service (its exposures flushed)."""
    (tmp_path / "shop.rules").write_text(rules)
    records: list[DecisionRecord] = []

    async def run() -> DecisionService:
        service = DecisionService(tmp_path, store)
        service.install(service.prepare())
        service.listen(records.append)
        for user, context, slots in requests:
            decided = await service.decide(user, context, slots)
            service.publish(decided, service.new_decision_id(), user, context, None)
        await service.exposures.flush()
        return service

    return records, asyncio.run(run())


def exposed(record: DecisionRecord) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {entry.experiment: (entry.exposed, entry.slots) for entry in record.experiments}


def test_a_record_names_the_arm_its_phase_and_whether_the_user_was_exposed(tmp_path) -> None:
    model, rules = users("model", 1)[0], users("rules", 1)[0]
    records, service = serve(
        tmp_path,
        MemoryStore(),
        [
            (model, {"page": "home"}, ["hero"]),  # evaluated hero_by_model, which fired
            (rules, {"page": "home"}, ["hero"]),  # evaluated hero_by_model, which its arm ruled out
            (rules, {"page": "cart"}, ["hero"]),  # hero_by_model could not fire on this page in any arm
            (model, {"page": "sale"}, ["hero"]),  # a better rule won: hero_by_model was never looked at
            (rules, {"page": "sale"}, None),  # ... but the footer's rule reads the experiment
        ],
    )
    phase = service.current.ruleset.plan.experiments["hero_test"].phase
    first = records[0].experiments[0]
    assert first.to_dict() == {
        "experiment": "hero_test",
        "arm": "model",
        "phase": phase,
        "exposed": True,
        "slots": ["hero"],
    }
    assert [exposed(r) for r in records] == [
        {"hero_test": (True, ("hero",))},
        {"hero_test": (True, ("hero",))},
        {"hero_test": (False, ())},
        {"hero_test": (False, ())},
        {"hero_test": (True, ("footer",))},  # only the footer's feedback counts for the arm
    ]
    assert all(not r.holdout for r in records)
    assert DecisionRecord.from_dict(records[0].to_dict()) == records[0]


def test_held_out_users_are_recorded_as_such_with_no_arm(tmp_path) -> None:
    held = users(None, 2)
    records, service = serve(tmp_path, MemoryStore(), [(user, {"page": "home"}, None) for user in held])
    assert [(r.holdout, r.experiments) for r in records] == [(True, ()), (True, ())]
    assert (
        asyncio.run(service.store.exposures("hero_test", service.current.ruleset.plan.experiments["hero_test"].phase))
        == {}
    )


def test_exposures_count_each_user_once_per_phase(tmp_path) -> None:
    model, rules = users("model", 3), users("rules", 2)
    requests = [(user, {"page": "home"}, ["hero"]) for user in model + rules] * 3  # every user three times
    requests += [(rules[0], {"page": "cart"}, ["hero"])]  # not an exposure
    store = MemoryStore()
    _records, service = serve(tmp_path, store, requests)
    phase = service.current.ruleset.plan.experiments["hero_test"].phase
    assert asyncio.run(store.exposures("hero_test", phase)) == {"model": 3, "rules": 2}
    assert service.exposures.written == 5 and service.exposures.dropped == 0
    # A new split is a new phase: the same users count again, apart from the old phase's counts.
    changed = RULES.replace("rules 50%, model 50%", "rules 40%, model 60%")
    _records, again = serve(tmp_path, store, requests[:2], changed)
    new_phase = again.current.ruleset.plan.experiments["hero_test"].phase
    assert new_phase != phase
    assert sum(asyncio.run(store.exposures("hero_test", new_phase)).values()) == 2
    assert asyncio.run(store.exposures("hero_test", phase)) == {"model": 3, "rules": 2}


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_stores_remember_an_exposure_once(kind: str, request) -> None:
    async def run() -> tuple[int, int, dict[str, int], dict[str, int]]:
        if kind == "redis":
            store = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
        else:
            store = MemoryStore()
        batch = [Exposure("u1", "e", "p1", "a"), Exposure("u2", "e", "p1", "b"), Exposure("u1", "e", "p1", "a")]
        first = await store.expose(batch)
        retried = await store.expose([*batch, Exposure("u3", "e", "p2", "b")])
        counts = await store.exposures("e", "p1"), await store.exposures("e", "p2")
        await store.close()
        return first, retried, *counts

    assert asyncio.run(run()) == (2, 1, {"a": 1, "b": 1}, {"b": 1})


def test_arms_do_not_depend_on_the_store(tmp_path, redis_url: str, redis_prefix: str) -> None:
    sample = [f"u{i}" for i in range(40)]
    requests = [(user, {"page": "home"}, None) for user in sample]
    on_memory, _ = serve(tmp_path, MemoryStore(), requests)
    on_redis, _ = serve(tmp_path, RedisStore(redis_url, prefix=redis_prefix), requests)
    assert [r.experiments for r in on_memory] == [r.experiments for r in on_redis]
    assert [r.experiments[0].arm if r.experiments else None for r in on_memory] == [arm_of(u) for u in sample]
