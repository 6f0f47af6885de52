"""The README's tour runs as written: its shell blocks, in a copy of the example rulesets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR = README.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```sh\n(.*?)```", TOUR, flags=re.S)


def tour_script(port: int, *, with_training: bool) -> str:
    """The tour's commands as one script; the server started with & is waited for and stopped."""
    lines = ["set -eu", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in BLOCKS:
        if "rebuild.sh" in block and not with_training:
            continue
        for line in block.replace("8080", str(port)).splitlines():
            lines.append(line)
            if line.strip().startswith("tailor serve") and line.rstrip().endswith("&"):
                lines.append(
                    f"for i in $(seq 100); do curl -sf localhost:{port}/readyz >/dev/null && break; sleep 0.1; done"
                )
        lines.append("echo")
    return "\n".join(lines) + "\n"


def run_tour(tmp_path: Path, *, with_training: bool) -> str:
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    result = subprocess.run(
        ["bash", "-c", tour_script(free_port(), with_training=with_training)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_tour_has_its_steps() -> None:
    commands = "\n".join(BLOCKS)
    steps = ("tailor lint", "tailor fmt --check", "tailor serve", "/v1/decide", "/v1/events", "/v1/explain")
    for step in (*steps, "/v1/feedback", "tailor kpis", "tailor simulate --url", "tailor report"):
        assert step in commands


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    output = run_tour(tmp_path, with_training=False)
    # Before the events the sidebar shows its default; after them, the bundle rule fires and explain says why.
    assert '"sidebar":{"content":"sidebar_reviews"' in output
    assert '{"accepted":3,"duplicates":0,"conflicts":0,"expired":0,"dropped_no_consent":0}' in output
    assert '"rule":"electronics_bundle"' in output
    assert 'views(\\"Electronics\\", 24h) = 3' in output
    # The loop: feedback is counted, the KPIs show it, and the report names the rule whose content is ignored.
    assert '{"accepted":2,"duplicates":0,"ignored":0,"results":[],"dropped_no_consent":0}' in output
    assert re.search(r"sidebar +electronics_bundle +sidebar_bundle +1 +1 +1 ", output)  # tailor kpis
    assert re.search(r"product\.rules:3: rule electronics_bundle .*\n  low_ctr: ", output)
    assert len(re.findall(r"\n  low_ctr: ", output)) == 1
    # Breaking a rule leaves the old version serving and reports where the error is.
    assert '"last_error":[{"file":"home.rules","line":17' in output  # relative to the ruleset root


@pytest.mark.slow
def test_the_tour_trains_the_model(tmp_path: Path) -> None:
    run_tour(tmp_path, with_training=True)
    assert (tmp_path / "rulesets" / "retail" / "models" / "p_click.onnx").stat().st_size > 10_000
