"""A serving process keeps its ruleset out of the collector's way, and reloads do not leak."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.runtime import heap
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.service import DecisionService

RULES = """ruleset heap
content a = {{"v": {version}}}
rule r when context.page == "home" then show a in hero
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual
    gc.set_threshold(*thresholds)


def test_installing_a_version_freezes_it_and_frees_versions_no_longer_kept(tmp_path: Path, unfrozen: None) -> None:
    rules = tmp_path / "heap.rules"
    rules.write_text(RULES.format(version=1))
    service = DecisionService(tmp_path, MemoryStore(), freeze_heap=True, keep=1)
    first = service.open()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[2] == heap.FULL_EVERY  # full collections spaced out over what is not frozen
    # The generated functions and their namespace form a cycle: only the collector frees them.
    first_code = weakref.ref(first.ruleset.compiled.stage0)
    del first

    for version in (2, 3):  # version 2 is kept for rollback; version 1 is dropped
        rules.write_text(RULES.format(version=version))
        assert service.install(service.prepare())

    assert first_code() is None, "a replaced version stayed frozen in memory"
    assert service.current is not None and service.current.ruleset.payload("a") == {"v": 3}


def test_a_library_user_keeps_the_collector_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "heap.rules").write_text(RULES.format(version=1))
    before = gc.get_freeze_count(), gc.get_threshold()
    DecisionService(tmp_path, MemoryStore()).open()
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_a_server_process_keeps_no_parse_trees(tmp_path: Path, unfrozen: None) -> None:
    (tmp_path / "heap.rules").write_text(RULES.format(version=1))
    service = DecisionService(tmp_path, MemoryStore(), freeze_heap=True, keep=1)
    served = service.open()
    assert service.cache.misses == 0  # the first load parsed into a cache of its own, now freed
    assert served.ruleset.plan.program is None
    assert served.ruleset.payload("a") == {"v": 1}
    assert [rule.name for rule in served.ruleset.program.rules] == [rule.name for rule in served.ruleset.rules]
