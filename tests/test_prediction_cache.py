"""The store's prediction cache (``--prediction-cache store``): shared by the processes over one store,
read in the decision's one round trip, keyed by model version and exact inputs, erased with the user."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.prediction_cache import PredictionCache, digest, entry, score_of
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService
from tailor.runtime.store import FeatureStore

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
CONTEXT = {"page": "home", "device": "mobile"}
# The hero's model rule is reached: a fan of Electronics who is not gold. The rest comes from the store.
FAN = {'views("Electronics", 24h)': 5, 'views("Electronics", 7d)': 9, "user.tier": "bronze"}
PATIENT_MS = 30_000.0  # a loaded machine must not turn a decision degraded: these tests count inferences


def service(store: FeatureStore, cache: PredictionCache = PredictionCache.STORE) -> DecisionService:
    opened = DecisionService(RETAIL, store, sample_every=0, prediction_cache=cache, deadline_ms=PATIENT_MS)
    opened.open()
    return opened


def counts(service: DecisionService) -> tuple[int, int]:
    """(computed, taken from a cache) of the version served."""
    assert service.current is not None
    return service.current.models.runs, service.current.models.cache_hits


def test_an_entry_matches_only_its_inputs_and_only_until_it_expires() -> None:
    row = [5.0, float("nan"), 1.0]
    kept = entry(1000.0, digest(row), 0.8125)
    assert score_of(kept, digest([5.0, float("nan"), 1.0]), 999.0) == 0.8125
    assert score_of(kept.encode(), digest(row), 999.0) == 0.8125  # as Redis answers it
    assert score_of(kept, digest([5.0, 0.0, 1.0]), 999.0) is None  # unknown is not 0
    assert score_of(kept, digest(row), 1000.0) is None  # expired
    assert score_of("not an entry", digest(row), 0.0) is None
    assert score_of(None, digest(row), 0.0) is None


def test_two_services_over_redis_share_scores_in_one_round_trip(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        first = service(RedisStore(redis_url, prefix=redis_prefix))
        second = service(RedisStore(redis_url, prefix=redis_prefix))
        computed = await first.decide("u2", CONTEXT, None, FAN)
        assert counts(first) == (1, 0)
        assert first.shared_predictions is not None
        await first.shared_predictions.flush()
        assert first.shared_predictions.written == 1

        trips = second.store.round_trips
        shared = await second.decide("u2", CONTEXT, None, FAN)
        assert second.store.round_trips - trips == 1  # the score came with the features
        assert counts(second) == (0, 1)
        assert shared.outcomes.decision.slots == computed.outcomes.decision.slots
        assert shared.outcomes.decision.models_run == ("p_click",)

        # Other inputs are another score: computed, not taken.
        await second.decide("u2", CONTEXT, None, {**FAN, 'views("Electronics", 24h)': 6})
        assert counts(second) == (1, 1)
        # Another user's score is not this one's.
        await second.decide("u3", CONTEXT, None, FAN)
        assert counts(second) == (2, 1)

        await first.close()
        await second.close()

    asyncio.run(main())


def test_a_score_is_read_only_under_the_model_version_served(redis_url: str, redis_prefix: str) -> None:
    """What another process wrote for another model file is never served: the field is the model's version."""

    async def main() -> None:
        store = RedisStore(redis_url, prefix=redis_prefix)
        served = service(store)
        assert served.current is not None
        version = served.current.ruleset.models["p_click"].version
        explained = await served.decide("u9", CONTEXT, None, FAN)
        inputs = explained.outcomes.values.model_inputs["p_click"]
        row_digest = digest(list(inputs.values()))
        assert served.shared_predictions is not None
        await served.shared_predictions.flush()
        client = redis.Redis.from_url(redis_url)
        key = store.predictions_key("u9")
        later = time.time() + 60
        # A score of another model file, for these very inputs: never read.
        client.hset(
            key, mapping={version: entry(later, row_digest, 0.0), "0123456789abcdef": entry(later, row_digest, 1.0)}
        )
        client.hdel(key, version)
        await served.decide("u9", CONTEXT, None, FAN)
        assert counts(served) == (2, 0)
        # This model's score for these inputs is read, whatever it says.
        client.hset(key, version, entry(later, row_digest, 0.999))
        forced = await served.decide("u9", CONTEXT, None, FAN)
        assert counts(served) == (2, 1)
        assert forced.outcomes.decision.slots["hero"].rule == "electronics_accessories"
        # Erasing the user deletes their cached scores.
        await store.erase("u9")
        assert client.exists(key) == 0
        client.close()
        await served.close()

    asyncio.run(main())


def test_the_memory_store_keeps_them_behind_the_same_interface() -> None:
    async def main() -> None:
        store = MemoryStore()
        first, second = service(store), service(store)
        await first.decide("u2", CONTEXT, None, FAN)
        assert first.shared_predictions is not None
        await first.shared_predictions.flush()
        await second.decide("u2", CONTEXT, None, FAN)
        assert counts(second) == (0, 1)
        await store.erase("u2")
        await second.decide("u2", CONTEXT, None, FAN)
        assert counts(second) == (1, 1)

    asyncio.run(main())


def test_the_process_cache_stays_the_default_and_asks_the_store_nothing(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store = RedisStore(redis_url, prefix=redis_prefix)
        served = service(store, PredictionCache.PROCESS)
        assert served.shared_predictions is None
        await served.decide("u2", CONTEXT, None, FAN)
        await served.decide("u2", CONTEXT, None, FAN)
        assert counts(served) == (1, 1)
        client = redis.Redis.from_url(redis_url)
        assert client.exists(store.predictions_key("u2")) == 0
        client.close()
        await served.close()

    asyncio.run(main())


def test_the_scores_come_with_the_consent_gate_too(redis_url: str, redis_prefix: str) -> None:
    """With --consent-attribute the fetch reads the attribute first; the cached scores still come in that trip."""

    async def main() -> None:
        def gated() -> DecisionService:
            opened = DecisionService(
                RETAIL,
                RedisStore(redis_url, prefix=redis_prefix),
                sample_every=0,
                deadline_ms=PATIENT_MS,
                prediction_cache=PredictionCache.STORE,
                consent_attribute="consent",
            )
            opened.open()
            return opened

        first, second = gated(), gated()
        await first.set_profile("u5", {"consent": True})
        await first.decide("u5", CONTEXT, None, FAN)
        assert first.shared_predictions is not None
        await first.shared_predictions.flush()
        trips = second.store.round_trips
        decided = await second.decide("u5", CONTEXT, None, FAN)
        assert decided.outcomes.consent
        assert second.store.round_trips - trips == 1
        assert counts(second) == (0, 1)
        await first.close()
        await second.close()

    asyncio.run(main())
