"""The collector's pauses are timed by generation, and only while installed."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest

from tailor.runtime.gc_pauses import GcPauses


def count(pauses: GcPauses, generation: str) -> int:
    return sum(pauses.pauses[generation].counts)


def test_each_collection_is_timed_in_its_generation() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert count(pauses, "0") >= 1
    assert count(pauses, "2") >= 2
    assert pauses.pauses["2"].sum > 0
    before = count(pauses, "2")
    gc.collect(2)  # uninstalled: no longer counted
    assert count(pauses, "2") == before


def test_the_pauses_are_exposed_as_a_histogram() -> None:
    pauses = GcPauses()
    registry = CollectorRegistry()
    registry.register(pauses)
    pauses.install()
    try:
        gc.collect(1)
    finally:
        pauses.uninstall()
    samples = {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith("tailor_gc_pause_seconds_count")
    }
    assert samples['tailor_gc_pause_seconds_count{generation="1"}'] >= 1  # young ones may run meanwhile
    assert set(samples) == {f'tailor_gc_pause_seconds_count{{generation="{g}"}}' for g in "012"}
