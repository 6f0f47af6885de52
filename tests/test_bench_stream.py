"""``bench.stream`` measures what it says: every event it streams is stored, and its target reads the figures."""

from __future__ import annotations

from bench import stream


def test_the_stream_benchmark_stores_every_event_and_states_its_target(module_redis: str):
    results = stream.run(redis_base=module_redis, db=15, events=500)
    assert results["floor"]["events"] == results["ingest"]["events"] == 500
    assert results["ingest"]["accepted"] == 500
    assert results["ingest"]["events_per_s"] > 0 and results["ingest"]["redis_us_per_event"] > 0
    (target,) = stream.targets(results)
    assert target.value == results["ingest"]["events_per_s"] and target.limit == stream.TARGET
    assert target.met is not None
