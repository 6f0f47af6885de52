"""A serving process keeps its ruleset out of the collector's way, and reloads do not leak."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from small_model import SHOP, train_small

from tailor.dsl import collector
from tailor.runtime import heap
from tailor.runtime.compile_worker import CompileRequest, CompileWorker
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
    collector.keep_frozen(False)
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


def shop_version(version: int) -> str:
    """The model-running shop ruleset with forty more rules: a version, as a reload would read it."""
    rules = "".join(
        f'rule r{i} when context.page == "p{i}" and views(24h) > {version % 7} then show promo in hero\n'
        for i in range(40)
    )
    return f"{SHOP}\n# version {version}\n{rules}"


def test_a_reload_leaves_the_frozen_heap_frozen_and_it_does_not_grow(tmp_path: Path, unfrozen: None) -> None:
    """A reload loads the worker's version and collects only what is new (milliseconds, not the tenth of a
    second a full collection of the libraries takes), and the versions it replaces, frozen, are freed by
    reference counting: so over many reloads the frozen heap stays the size of the versions kept."""
    train_small(tmp_path / "models" / "p_click.onnx")
    rules = tmp_path / "shop.rules"
    rules.write_text(shop_version(1))
    service = DecisionService(tmp_path, MemoryStore(), freeze_heap=True, keep=2)
    service.open()
    frozen_at_start = [object()]  # a container the first settle froze: no reload may thaw it
    gc.freeze()
    worker = CompileWorker()
    worker.start()

    async def reload_and_decide(version: int) -> None:
        rules.write_text(shop_version(version))
        served = await worker.compile(CompileRequest(tmp_path), service.served)  # loaded, and its Decider built
        assert not any(o is frozen_at_start for o in gc.get_objects()), "loading a version unfroze the heap"
        assert service.install(served)
        del served
        decided = await service.decide("u1", {"page": "p3"}, features={"views(24h)": 3, "clicks(7d)": 1})
        assert decided.served.version == service.current.version and decided.reason is None

    sizes = []
    try:
        for version in range(2, 14):
            asyncio.run(reload_and_decide(version))
            sizes.append(gc.get_freeze_count())
    finally:
        worker.close()
    steady = sizes[4:]  # once the rollback list is full: a leaked version would add hundreds of objects each
    assert max(steady) - min(steady) < 64, sizes
