"""How hot reload survives what files and file systems do to it, as a user meets each case.

Each failure here was silent once: production kept serving old rules while
everyone believed an edit was live. Every case runs a real ``Reloader`` on a
real ``DecisionService`` over real files, and at least once a real
``tailor serve`` process polled over HTTP. Waiting is a bounded polling loop,
never an assertion on how long something took.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from configmap_volume import HOME, SEARCH, configmap
from server_process import WAIT, Server, children, eventually, running, servers

from tailor.runtime import reload as reload_module
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.reload import Reloader
from tailor.runtime.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
GONE = "the ruleset directory is gone"
EMPTY = "the file is empty; delete a file to remove its rules"
FAST_CHECKS = 0.25  # seconds between the in-process reloaders' checks, to keep the tests short

T = TypeVar("T")


def home(priority: int) -> str:
    return HOME.replace("priority 10", f"priority {priority}")


def write_ruleset(root: Path, home_text: str = HOME) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "home.rules").write_text(home_text)
    (root / "search.rules").write_text(SEARCH)
    return root


async def until(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll ``probe`` on the running loop until it returns something true."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)
    return result


def priority_served(service: DecisionService) -> int | None:
    current = service.current
    return current.rules[0].priority if current is not None else None


async def hero(service: DecisionService, **features: Any) -> Any:
    decided = await service.decide("u", {}, ["hero"], features)
    return service.response(decided.served, decided.outcomes, "d1")["slots"]["hero"]["content"]


def run_reloader(service: DecisionService, scenario: Callable[[Reloader], Any], **options: Any) -> None:
    """Run ``scenario(reloader)`` with a started reloader (watching), and stop it after."""

    async def main() -> None:
        reloader = Reloader(service, **{"check_interval": FAST_CHECKS, **options})
        reloader.start()
        await asyncio.sleep(0.3)  # let the watcher start; a change before it would be missed
        try:
            await scenario(reloader)
        finally:
            await reloader.stop()

    asyncio.run(main())


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    with servers(tmp_path) as start:
        yield start


def changed(server: Server, version: str) -> Callable[[], dict[str, Any] | None]:
    """A probe: the ruleset body once the served version is no longer ``version``."""
    return lambda: ((r := server.ruleset())["version"] != version and r) or None


def failing(server: Server) -> Callable[[], dict[str, Any] | None]:
    """A probe: the ruleset body once ``last_error`` is set."""
    return lambda: ((r := server.ruleset())["last_error"] and r) or None


# --- 1. the directory is deleted, restored, replaced --------------------------------


def test_a_directory_deleted_and_restored_is_watched_again(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    first = service.open().version

    async def scenario(reloader: Reloader) -> None:
        checked = await until(lambda: service.reload_checked_at, "a first check")
        shutil.rmtree(root)  # a re-clone: rm -rf, then the files come back
        await until(lambda: service.last_error, "the deletion to be reported")
        (problem,) = service.last_error
        assert problem["message"].startswith(GONE)
        assert service.current is not None and service.current.version == first  # the old version serves on
        assert await hero(service, **{"user.tier": "gold"}) == "hero_vip"
        gone_at = service.reload_checked_at
        await until(lambda: (service.reload_check_age() or 0) > 4 * FAST_CHECKS, "the check age to grow")
        assert service.reload_checked_at == gone_at and gone_at >= checked  # no check succeeds meanwhile

        write_ruleset(root, home(20))
        await until(lambda: priority_served(service) == 20, "the restored directory to be served")
        assert service.last_error is None
        await until(lambda: service.reload_checked_at != gone_at, "checks to resume")
        (root / "home.rules").write_text(home(30))  # the watch is on the new directory
        await until(lambda: priority_served(service) == 30, "an edit in the restored directory")

    run_reloader(service, scenario)
    assert service.previous[0].version == first


def test_a_directory_replaced_by_a_rename_is_watched_again(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    staged = write_ruleset(tmp_path / "rules.new", home(20))
    service = DecisionService(root, MemoryStore())
    service.open()

    async def scenario(reloader: Reloader) -> None:
        os.rename(root, tmp_path / "rules.old")  # an atomic deploy: the new directory renamed into place
        os.rename(staged, root)
        await until(lambda: priority_served(service) == 20, "the new directory to be served")
        (root / "home.rules").write_text(home(30))
        await until(lambda: priority_served(service) == 30, "an edit in the new directory")

    run_reloader(service, scenario)


def test_a_symlink_swapped_to_a_new_release_is_watched_again(tmp_path: Path) -> None:
    write_ruleset(tmp_path / "releases" / "v1")
    v2 = write_ruleset(tmp_path / "releases" / "v2", home(20))
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases" / "v1")
    service = DecisionService(current, MemoryStore())
    service.open()

    async def scenario(reloader: Reloader) -> None:
        swap = tmp_path / "current.tmp"
        swap.symlink_to(v2)
        os.replace(swap, current)
        await until(lambda: priority_served(service) == 20, "the new release to be served")
        (v2 / "home.rules").write_text(home(30))
        await until(lambda: priority_served(service) == 30, "an edit in the new release")

    run_reloader(service, scenario)


def test_a_watch_that_ends_is_logged_and_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    service.open()
    real_awatch = reload_module.awatch
    calls = []

    def awatch(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) > 1:
            return real_awatch(*args, **kwargs)

        async def broken() -> Any:  # what watchfiles raises when its thread dies
            raise RuntimeError("watch thread unexpectedly received a signal")
            yield

        return broken()

    monkeypatch.setattr(reload_module, "awatch", awatch)

    async def scenario(reloader: Reloader) -> None:
        await until(lambda: len(calls) > 1, "the watch to be restarted")
        (root / "home.rules").write_text(home(20))
        await until(lambda: priority_served(service) == 20, "an edit after the restart")

    with caplog.at_level(logging.INFO, logger="tailor.runtime"):
        run_reloader(service, scenario)
    (record,) = [r for r in caplog.records if "ended unexpectedly" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "watch thread unexpectedly received a signal" in record.getMessage()


def test_the_reload_check_age_is_a_metric(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    registry = service.metrics.registry
    assert registry.get_sample_value("tailor_reload_check_age_seconds") is None  # nothing checked yet
    service.open()

    async def scenario(reloader: Reloader) -> None:
        opened = service.reload_checked_at
        await until(lambda: service.reload_checked_at != opened, "a check")
        assert registry.get_sample_value("tailor_reload_check_age_seconds") >= 0

    run_reloader(service, scenario)


def test_serve_keeps_serving_while_its_directory_is_gone_and_serves_it_back(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    root = write_ruleset(tmp_path / "rules")
    server = start_server(root)
    first = server.ruleset()
    assert server.metric("tailor_reload_check_age_seconds") is not None

    shutil.rmtree(root)
    gone = eventually(failing(server), "the deletion to be reported")
    assert gone["version"] == first["version"]
    assert gone["last_error"][0]["message"].startswith(GONE)
    assert server.decide(features={"user.tier": "gold"})["slots"]["hero"]["content"] == "hero_vip"

    write_ruleset(root, home(20))  # restored (a branch switch, a re-clone)
    restored = eventually(changed(server, first["version"]), "the restored directory to be served")
    assert restored["last_error"] is None
    assert restored["rules"][0]["priority"] == 20

    staged = write_ruleset(tmp_path / "rules.new", home(30))  # an atomic deploy
    os.rename(root, tmp_path / "rules.old")
    os.rename(staged, root)
    deployed = eventually(changed(server, restored["version"]), "the deployed directory to be served")
    assert deployed["rules"][0]["priority"] == 30
    (root / "home.rules").write_text(home(40))
    edited = eventually(changed(server, deployed["version"]), "an edit in the deployed directory")
    assert edited["rules"][0]["priority"] == 40

    output = server.output()
    assert "ruleset reload failed" in output and GONE in output
    assert "now names a different directory" in output
    assert server.stop() == 0


# --- 2. a reload that hangs ----------------------------------------------------------


def test_a_compile_that_hangs_is_killed_and_the_next_edit_is_served(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    first = service.open().version

    async def scenario(reloader: Reloader) -> None:
        stuck = reloader.compiler.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)  # a compile that never returns (a file on a mount that stopped answering)
        (root / "home.rules").write_text(home(20))
        await until(lambda: service.last_error, "the hung reload to be reported")
        (problem,) = service.last_error
        assert problem["message"] == "the reload took longer than 1 s and was abandoned"
        assert service.current is not None and service.current.version == first
        await until(lambda: not running(stuck), "the hung compile to be killed")
        (root / "home.rules").write_text(home(30))
        await until(lambda: priority_served(service) == 30, "the next edit to be served")
        assert service.last_error is None
        assert reloader.compiler.pid not in (None, stuck)  # a new worker

    run_reloader(service, scenario, reload_timeout=1.0)
    assert service.metrics.registry.get_sample_value("tailor_reloads_total", {"outcome": "failed"}) >= 1


def test_a_worker_that_dies_mid_compile_is_reported_and_replaced(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    first = service.open().version

    async def scenario(reloader: Reloader) -> None:
        worker = reloader.compiler.pid
        assert worker is not None
        os.kill(worker, signal.SIGSTOP)
        (root / "home.rules").write_text(home(20))
        await until(lambda: reloader.compiler.busy, "the compile to start")
        os.kill(worker, signal.SIGKILL)  # the kernel's out-of-memory killer, say
        await until(lambda: service.last_error, "the failed reload to be reported")
        (problem,) = service.last_error
        assert problem["message"] == "the compiler failed: the compile worker exited (killed by SIGKILL)"
        assert service.current is not None and service.current.version == first
        (root / "home.rules").write_text(home(30))
        await until(lambda: priority_served(service) == 30, "the next edit to be served")
        assert reloader.compiler.pid not in (None, worker)

    run_reloader(service, scenario)


STUCK_RELOAD = """
import asyncio, os, signal, sys
from pathlib import Path
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.reload import Reloader
from tailor.runtime.service import DecisionService

service = DecisionService(Path(sys.argv[1]), MemoryStore())
service.open()

async def main():
    reloader = Reloader(service)
    reloader.start(watch=False)
    worker = reloader.compiler.pid
    os.kill(worker, signal.SIGSTOP)  # the compile never returns
    reloader.request()
    while not reloader.compiler.busy:
        await asyncio.sleep(0.01)
    await reloader.stop()
    return worker

print(asyncio.run(main()))
"""


def test_a_process_exits_with_a_compile_stuck_and_leaves_no_worker_behind(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    result = subprocess.run(
        [sys.executable, "-c", STUCK_RELOAD, str(root)], capture_output=True, text=True, timeout=WAIT
    )
    assert result.returncode == 0, result.stderr
    assert not running(int(result.stdout))


def test_a_worker_whose_server_is_killed_exits(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    server = subprocess.Popen([sys.executable, "-m", "tailor.cli", "serve", str(root), "--port", "0"])
    try:
        (worker,) = eventually(
            lambda: [pid for pid, command in children(server.pid) if "compile_worker" in command] or None, "the worker"
        )
        os.kill(worker, signal.SIGSTOP)  # in the middle of a compile, say
        server.kill()  # no chance to clean up
        server.wait(timeout=WAIT)
        os.kill(worker, signal.SIGCONT)
        eventually(lambda: not running(worker), "the worker to notice its server is gone")
    finally:
        server.kill()


def test_serve_refuses_a_model_that_is_a_fifo_or_dev_zero_and_stops_on_signals(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    root = write_ruleset(tmp_path / "rules")
    os.mkfifo(root / "p.onnx")
    server = start_server(root)
    first = server.ruleset()

    (root / "home.rules").write_text(HOME + 'model p = "p.onnx"\n')
    broken = eventually(failing(server), "the FIFO to be refused")
    (problem,) = broken["last_error"]
    assert (
        problem["message"] == "model p: model file p.onnx is not a regular file (it is a named pipe)"
    )  # relative to the ruleset root
    assert problem["line"] == HOME.count("\n") + 1
    assert broken["version"] == first["version"]

    (root / "home.rules").write_text(HOME + 'model p = "/dev/zero"\n')
    zero = eventually(lambda: (r := server.ruleset())["last_error"] != [problem] and r, "/dev/zero to be refused")
    assert "/dev/zero is not a regular file (it is a character device)" in zero["last_error"][0]["message"]

    (root / "home.rules").write_text(home(20))  # later edits are served
    fixed = eventually(changed(server, first["version"]), "the next edit to be served")
    assert fixed["last_error"] is None

    (root / "home.rules").write_text(HOME + 'model p = "p.onnx"\n')
    eventually(failing(server), "the FIFO to be refused again")
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once shut down
    assert "Application shutdown complete" in server.output()


def test_a_model_declared_inside_the_directory_keeps_the_watch_armed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model line naming a file inside the watched directory changes what the watch filters by, not
    where it watches: the watch follows it in place. Re-arming it instead lost an edit saved while the
    old watch was torn down, which then waited for the next check."""
    root = write_ruleset(tmp_path / "rules")
    (root / "p.onnx").write_bytes(b"not a model")
    service = DecisionService(root, MemoryStore())
    service.open()

    async def scenario(reloader: Reloader) -> None:
        armed = reloader._armed
        assert armed is not None and armed.model_files == frozenset()
        (root / "home.rules").write_text(HOME + 'model p = "p.onnx"\n')
        await until(lambda: service.last_error, "the broken model to be refused")
        await until(lambda: reloader._armed.model_files, "a check to follow the declared model")
        assert reloader._armed.folder == armed.folder
        reloader.check_interval = 3600.0  # from here on only the watch can hear an edit
        await asyncio.sleep(FAST_CHECKS * 2)
        (root / "home.rules").write_text(home(20))
        await until(lambda: priority_served(service) == 20, "the next edit to be heard by the watch")

    with caplog.at_level(logging.INFO, logger="tailor.runtime"):
        run_reloader(service, scenario)
    assert "watching their directories" not in caplog.text
    assert "watching it again" not in caplog.text


# --- 3. half-written files -----------------------------------------------------------


def test_a_file_saved_in_two_steps_is_compiled_once_it_settles(tmp_path: Path) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    first = service.open().version
    text = home(20)
    half = len(text) // 2

    async def scenario(reloader: Reloader) -> None:
        with (root / "home.rules").open("w") as file:  # a non-atomic save: truncate, then write, in two steps
            file.write(text[:half])
            file.flush()
            await asyncio.sleep(0.3)
            file.write(text[half:])
        await until(lambda: priority_served(service) == 20, "the saved file to be served")

    run_reloader(service, scenario, settle_ms=1500)
    assert [old.version for old in service.previous] == [first]  # nothing half-written was served between
    assert service.last_error is None


def test_a_version_that_drops_a_slot_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_ruleset(tmp_path / "rules")
    service = DecisionService(root, MemoryStore())
    first = service.open().version

    async def scenario(reloader: Reloader) -> None:
        (root / "search.rules").unlink()
        await until(lambda: service.current is not None and service.current.version != first, "the deletion")

    with caplog.at_level(logging.WARNING, logger="tailor.runtime"):
        run_reloader(service, scenario)
    (record,) = [r for r in caplog.records if "no longer serves slot" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "slot sidebar" in record.getMessage() and first in record.getMessage()


def test_serve_keeps_a_truncated_file_off_the_air(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    root = write_ruleset(tmp_path / "rules")
    server = start_server(root)
    first = server.ruleset()

    (root / "home.rules").write_text("")  # truncated; the rest not written yet
    broken = eventually(failing(server), "the empty file to be refused")
    (problem,) = broken["last_error"]
    assert problem["message"] == EMPTY
    assert problem["file"].endswith("home.rules")
    assert broken["version"] == first["version"]
    assert server.decide()["slots"]["hero"]["content"] == "hero_generic"

    (root / "home.rules").write_text(home(20))
    written = eventually(changed(server, first["version"]), "the written file to be served")
    assert written["last_error"] is None

    (root / "home.rules").unlink()  # deleting the file is how its rules go
    deleted = eventually(changed(server, written["version"]), "the deletion to be served")
    assert deleted["last_error"] is None
    assert "hero" not in server.decide()["slots"] or server.decide()["slots"]["hero"]["content"] is None
    assert "no longer serves slot hero" in server.output()
    assert server.stop() == 0


# --- 4. a Kubernetes ConfigMap volume -----------------------------------------------


def test_serve_loads_a_configmap_volume_and_its_update(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    mount = configmap(tmp_path / "config", {"home.rules": HOME, "search.rules": SEARCH})
    server = start_server(mount)
    first = server.ruleset()
    assert first["files"] == ["home.rules", "search.rules"]  # by their link paths, relative to the root

    configmap(mount, {"home.rules": home(20), "search.rules": SEARCH}, "..2026_11_29_12_05_00.456")
    updated = eventually(changed(server, first["version"]), "the ConfigMap update to be served")
    assert updated["last_error"] is None
    assert updated["rules"][0]["priority"] == 20
    assert server.stop() == 0


# --- 5. model files outside the ruleset directory ----------------------------------


def retail_with_models_outside(tmp_path: Path) -> tuple[Path, Path]:
    """The retail example with its model one level up, beside the ruleset: ``../models/p_click.onnx``."""
    rules = tmp_path / "retail"
    shutil.copytree(ROOT / "rulesets" / "retail", rules, ignore=shutil.ignore_patterns("models"))
    shutil.copytree(ROOT / "rulesets" / "retail" / "models", tmp_path / "models")
    declaring = rules / "retail.rules"
    declaring.write_text(declaring.read_text().replace('"models/p_click.onnx"', '"../models/p_click.onnx"'))
    return rules, tmp_path / "models" / "p_click.onnx"


def test_a_model_outside_the_ruleset_directory_is_watched(tmp_path: Path) -> None:
    rules, model = retail_with_models_outside(tmp_path)
    good = model.read_bytes()
    service = DecisionService(rules, MemoryStore())
    first = service.open().version

    async def scenario(reloader: Reloader) -> None:
        model.write_bytes(b"not a model")
        await until(lambda: service.last_error, "the broken model to be noticed")
        assert service.last_error[0]["message"].startswith("model p_click: not a valid ONNX model")
        model.write_bytes(good)
        await until(lambda: service.last_error is None, "the fixed model to be picked up")

        other = tmp_path / "elsewhere" / "p_click.onnx"  # the model set changes: watched where it is now
        other.parent.mkdir()
        other.write_bytes(good)
        declaring = rules / "retail.rules"
        declaring.write_text(declaring.read_text().replace('"../models/', '"../elsewhere/'))
        await until(lambda: service.current is not None and service.current.version != first, "the new model path")
        other.write_bytes(b"not a model either")
        await until(lambda: service.last_error, "the moved model's change to be noticed")

    run_reloader(service, scenario)


def test_serve_reloads_a_model_outside_the_ruleset_directory(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    rules, model = retail_with_models_outside(tmp_path)
    good = model.read_bytes()
    server = start_server(rules)
    first = server.ruleset()

    model.write_bytes(b"not a model")
    broken = eventually(failing(server), "the broken model to be noticed")
    assert broken["version"] == first["version"]
    assert broken["last_error"][0]["message"].startswith("model p_click: not a valid ONNX model")
    model.write_bytes(good)
    eventually(lambda: server.ruleset()["last_error"] is None, "the fixed model to be picked up")
    assert server.stop() == 0
