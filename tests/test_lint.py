"""Lint analyses and the compile command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tailor.runtime.ruleset_loader import lint_path

TEXT = """
content a = {}
content b = {}
content unused = {}
model p_click = "p.onnx"
segment lonely = views(1h) > 1
rule top when context.page == "home" then show a in hero priority 10
rule under when context.page == "home" and views("E", 24h) > 3 then show b in hero priority 5
rule model_rule when context.page == "home" and p_click > 0.5 then show b in hero priority 1
rule never when views(1h) > 5 and views(1h) < 2 then show a in hero
rule range_top when views(1h) > 2 then show a in side priority 3
rule range_under when views(1h) >= 5 and views(1h) < 9 then show b in side priority 2
rule amb1 when user.tier == "gold" then show a in side
rule amb2 when user.country == "US" then show b in side
rule fine when user.tier == "silver" then show b in side
when true then show a in side priority -5
default show a in hero
"""


def codes(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "l.rules").write_text(TEXT)
    found: dict[str, list[str]] = {}
    for diag in lint_path(tmp_path / "l.rules"):
        found.setdefault(diag.code, []).append(diag.message)
    return found


def test_each_analysis_fires(tmp_path: Path) -> None:
    found = codes(tmp_path)
    assert found["unused"] == [
        "content 'unused' is never shown",
        "segment 'lonely' is never used",
    ]
    assert any("'under' can never win slot 'hero'" in m for m in found["shadowed"])
    assert any("'range_under' can never win slot 'side'" in m for m in found["shadowed"])
    assert found["expensive-shadowed"][0].startswith("rule 'model_rule' needs a model")
    assert found["never-fires"] == ["rule 'never' can never fire: its condition can never be true"]
    assert found["always-fires"] == ["rule 'l:16' always fires: its condition is always true"]
    assert any("'amb1' and 'amb2'" in m for m in found["ambiguous"])
    assert len(found["ambiguous"]) == 1  # gold and silver never both hold; b and b is no conflict
    assert found["no-default"] == ["slot 'side' has no default: when no rule fires it shows nothing"]
    assert len(found["unnamed"]) == 1


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True)


SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "rulesets" / "retail" / "models" / "p_click.onnx"


def test_warnings_do_not_fail_unless_strict(tmp_path: Path) -> None:
    (tmp_path / "l.rules").write_text(TEXT)
    (tmp_path / "p.onnx").write_bytes(SHIPPED_MODEL.read_bytes())  # lint checks model files too
    assert run("lint", "l.rules", cwd=tmp_path).returncode == 0
    strict = run("lint", "--strict", "l.rules", cwd=tmp_path)
    assert strict.returncode == 1
    assert "l.rules:8:6: warning: rule 'under' can never win slot 'hero'" in strict.stdout


def test_compile_emits_plan_dot_and_python(tmp_path: Path) -> None:
    # compile reads model files; this ruleset's model has none, so leave it out.
    without_model = "\n".join(line for line in TEXT.splitlines() if "p_click" not in line)
    (tmp_path / "l.rules").write_text(without_model)
    plan = run("compile", "l.rules", "--emit", "plan", cwd=tmp_path)
    assert plan.returncode == 0
    assert "stage 0: request context" in plan.stdout and "slot hero" in plan.stdout
    dot = run("compile", "l.rules", "--emit", "dot", cwd=tmp_path)
    assert dot.stdout.startswith("digraph plan {") and "->" in dot.stdout
    python = run("compile", "l.rules", "--emit", "python", cwd=tmp_path)
    compile(python.stdout, "plan.py", "exec")
    assert "def stage0(context" in python.stdout
    (tmp_path / "bad.rules").write_text("when x then show y\n")
    assert run("compile", "bad.rules", cwd=tmp_path).returncode == 1
    assert run("compile", "missing.rules", cwd=tmp_path).returncode == 2


def test_statistics_change_the_order(tmp_path: Path) -> None:
    (tmp_path / "s.rules").write_text(
        'content c = {}\nrule r when user.tier == "gold" and user.country == "US" then show c\n'
    )
    default = run("compile", "s.rules", cwd=tmp_path).stdout
    assert 'tables: user.country == "US" and user.tier == "gold"' in default
    stats = tmp_path / "stats.json"
    stats.write_text('{"predicates": {"user.tier == \\"gold\\"": {"evaluated": 1000, "held": 10}}}')
    tuned = run("compile", "s.rules", "--stats", str(stats), cwd=tmp_path).stdout
    assert 'tables: user.tier == "gold" and user.country == "US"' in tuned


def test_windows_longer_than_the_retention_are_flagged(tmp_path: Path) -> None:
    (tmp_path / "r.rules").write_text("content a = {}\nrule r when views(60d) > 1 then show a\ndefault show a\n")
    default = run("lint", "r.rules", cwd=tmp_path)
    assert "r.rules:2:13: warning: views(60d) looks back 60d, but events are kept for only 30d" in default.stdout
    longer = run("lint", "--retention", "90d", "r.rules", cwd=tmp_path)
    assert longer.returncode == 0 and longer.stdout == ""


def test_compile_reports_a_missing_model_file_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "l.rules").write_text(TEXT)
    result = run("compile", "l.rules", cwd=tmp_path)
    assert result.returncode == 1
    assert "l.rules:5:1: error: model p_click: model file p.onnx does not exist" in result.stdout


# Each rule tests its own attribute, so none implies another and any two can fire together.
TIES = """
content a = {}
content b = {}
default show a in hero
""" + "\n".join(f'rule t{i} when context.f{i} == "x" then show {"ab"[i % 2]} in hero priority 3' for i in range(8))


def test_a_rule_tied_with_several_rules_is_one_finding_naming_them(tmp_path: Path) -> None:
    (tmp_path / "t.rules").write_text(TIES)
    found = [d for d in lint_path(tmp_path / "t.rules") if d.code == "ambiguous"]
    tail = "can {} apply to slot 'hero' with the same priority (3) but different content; only file order decides"
    assert [d.message for d in found] == [
        f"rules 't0' and 't1' {tail.format('both')}",
        f"rules 't1' and 't2' {tail.format('both')}",
        f"rule 't3' and the 2 rules above it ('t0', 't2') {tail.format('all')}",
        f"rule 't4' and the 2 rules above it ('t1', 't3') {tail.format('all')}",
        f"rule 't5' and the 3 rules above it ('t0', 't2', 't4') {tail.format('all')}",
        f"rule 't6' and the 3 rules above it ('t1', 't3', 't5') {tail.format('all')}",
        f"rule 't7' and the 4 rules above it ('t0', 't2', 't4' and 1 more) {tail.format('all')}",
    ]
    # Each finding's notes point at every rule it ties with, the unnamed ones too.
    assert [r.message for r in found[-1].related] == ["'t0' is here", "'t2' is here", "'t4' is here", "'t6' is here"]
    assert found[-1].related[-1].line == found[-2].line  # t6 is the line above t7
