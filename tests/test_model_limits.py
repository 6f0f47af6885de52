"""A model path can name anything; reading it is bounded so that it never hangs or exhausts memory.

A FIFO blocked its reader forever (and with it every later reload), and
``/dev/zero`` was read until MemoryError. Each is now an error on the model
line, as ``tailor lint`` shows.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tailor.dsl.diagnostics import Severity
from tailor.runtime import onnx_models
from tailor.runtime.daemon_thread import call_within, run_in_thread
from tailor.runtime.model_limits import DEFAULT_MODEL_MAX_BYTES, DEFAULT_MODEL_READ_TIMEOUT, ModelLimits
from tailor.runtime.onnx_models import ModelError, read_model
from tailor.runtime.ruleset_loader import lint_path

SHIPPED = Path(__file__).resolve().parents[1] / "rulesets" / "retail" / "models" / "p_click.onnx"
RULES = """\
content a = {"id": "a"}
model p = "MODEL"
default show a in hero
"""


def lint(tmp_path: Path, model: str) -> subprocess.CompletedProcess[str]:
    """``tailor lint`` on a ruleset declaring ``model``, in a process that cannot take the machine's memory."""
    (tmp_path / "r.rules").write_text(RULES.replace("MODEL", model))

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", "lint", "r.rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # a read that hangs fails the test here
        preexec_fn=cap_memory,
    )


def test_a_fifo_is_not_a_model_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p.onnx")
    result = lint(tmp_path, "p.onnx")
    assert result.returncode == 1
    assert "r.rules:2:1: error: model p: model file p.onnx is not a regular file (it is a named pipe)" in result.stdout


def test_dev_zero_is_not_a_model_file(tmp_path: Path) -> None:
    result = lint(tmp_path, "/dev/zero")
    assert result.returncode == 1
    assert "error: model p: model file /dev/zero is not a regular file (it is a character device)" in result.stdout


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "p.onnx"
    with huge.open("wb") as file:
        file.truncate(DEFAULT_MODEL_MAX_BYTES + 1)  # sparse: no disk, and never read
    result = lint(tmp_path, "p.onnx")
    assert "error: model p: model file p.onnx is larger than 256 MB" in result.stdout
    with pytest.raises(ModelError) as caught:
        read_model("p", SHIPPED, ModelLimits(max_bytes=64 * 1024))
    assert caught.value.message == f"model file {SHIPPED} is larger than 64 KB"
    assert read_model("p", SHIPPED, ModelLimits(max_bytes=SHIPPED.stat().st_size)).version


def test_lint_takes_the_limits(tmp_path: Path) -> None:
    shutil.copy(SHIPPED, tmp_path / "p.onnx")
    (tmp_path / "r.rules").write_text(RULES.replace("MODEL", "p.onnx"))
    assert not [d for d in lint_path(tmp_path / "r.rules") if d.severity is Severity.ERROR]
    limited = lint_path(tmp_path / "r.rules", model_limits=ModelLimits(max_bytes=1024))
    (problem,) = [d for d in limited if d.severity is Severity.ERROR]
    assert problem.message.endswith("is larger than 1 KB")


def test_a_read_that_does_not_finish_in_time_is_abandoned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SHIPPED, tmp_path / "p.onnx")
    stuck = threading.Event()  # a file system that stopped answering: the read never returns

    def never_returns(path: Path, max_bytes: int) -> bytes:
        stuck.wait()
        return b""

    monkeypatch.setattr(onnx_models, "_read_regular_file", never_returns)
    try:
        with pytest.raises(ModelError) as caught:
            read_model("p", tmp_path / "p.onnx", ModelLimits(read_timeout=0.2))
    finally:
        stuck.set()
    assert caught.value.message == f"model file {tmp_path / 'p.onnx'} took longer than 0.2 s to read"
    assert DEFAULT_MODEL_READ_TIMEOUT == 5.0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ModelLimits(max_bytes=0)
    with pytest.raises(ValueError):
        ModelLimits(read_timeout=0)


# --- the daemon threads that bound the waits ---


def test_call_within_returns_raises_or_gives_up() -> None:
    assert call_within(lambda: 42, 5, name="t") == 42
    with pytest.raises(KeyError):
        call_within(lambda: {}["missing"], 5, name="t")
    release = threading.Event()
    with pytest.raises(TimeoutError):
        call_within(release.wait, 0.05, name="stuck")
    (thread,) = [t for t in threading.enumerate() if t.name == "stuck"]
    assert thread.daemon  # the process exits without waiting for it
    release.set()


def test_run_in_thread_can_be_abandoned() -> None:
    release = threading.Event()

    async def scenario() -> None:
        assert await run_in_thread(lambda: "done", name="t") == "done"
        with pytest.raises(ZeroDivisionError):
            await run_in_thread(lambda: 1 / 0, name="t")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await run_in_thread(release.wait, name="abandoned")

    asyncio.run(scenario())  # the loop closes with the thread still running
    release.set()  # and the thread's late result goes nowhere, without an error
    deadline = time.monotonic() + 10
    while any(t.name == "abandoned" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
