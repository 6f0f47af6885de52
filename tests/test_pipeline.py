"""The compiler pipeline: named stages, each stage's product, one place every entry point goes through."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest
from onnx import helper
from onnxmltools.convert import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

import tailor
from tailor.compiler import pipeline
from tailor.compiler.normalize import NormalProgram
from tailor.compiler.pipeline import STAGE_NAMES, Stage, compile_ruleset
from tailor.dsl.loader import ParsedFile
from tailor.dsl.parser import parse_source
from tailor.dsl.source import Source
from tailor.runtime import ruletest
from tailor.runtime.ruleset_loader import compile_path, lint_path
from tailor.runtime.train import parse_feature

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"

TEXT = """
content a = {"id": 1}
content b = {"id": 2}
segment fan = views("Electronics", 24h) > 2
rule fans when fan or context.page == "deals" then show a in hero priority 5
when user.tier == "gold" then show b in hero
default show b in hero
"""


def parsed(text: str, name: str = "shop.rules") -> ParsedFile:
    module, problems = parse_source(Source(name, text))
    return ParsedFile(Path(name), module, tuple(problems), "digest")


def test_the_stages_are_named_data_in_order() -> None:
    assert STAGE_NAMES == ("check", "normalize", "model_inputs", "plan", "generate")
    assert all(isinstance(stage, Stage) for stage in pipeline.STAGES)


def test_each_stage_leaves_its_product_and_its_time() -> None:
    compilation = compile_ruleset([parsed(TEXT)], name="shop")
    assert compilation.ok and compilation.completed == STAGE_NAMES
    assert set(compilation.timings) == set(STAGE_NAMES)
    assert compilation.program is not None and compilation.program.name == "shop"
    assert isinstance(compilation.normal, NormalProgram)
    fans = next(n for n in compilation.normal.rules if n.rule.name == "fans")
    assert fans.disjuncts is not None and len(fans.disjuncts) == 2  # the segment inlined, two ways to fire
    assert compilation.model_inputs == {}
    assert compilation.plan is not None and len(compilation.plan.conjunctions) == 3
    assert "def stage0" in compilation.compiled.source
    for stage in STAGE_NAMES:
        assert compilation.product(stage) is not None


def test_until_stops_after_the_named_stage() -> None:
    compilation = compile_ruleset([parsed(TEXT)], until="normalize")
    assert compilation.completed == ("check", "normalize")
    assert compilation.plan is None and compilation.compiled is None
    with pytest.raises(ValueError, match="no compiler stage 'optimise'"):
        compile_ruleset([parsed(TEXT)], until="optimise")


def test_the_pipeline_stops_after_the_first_stage_with_errors() -> None:
    compilation = compile_ruleset([parsed("rule r when user.x > 1 then show nothing_declared\n")])
    assert not compilation.ok
    assert compilation.completed == ("check",)
    assert compilation.normal is None
    assert [d.code for d in compilation.diagnostics if d.severity.value == "error"]


def test_syntax_errors_of_the_files_are_gathered_with_the_checks() -> None:
    compilation = compile_ruleset([parsed("rule r when then\n"), parsed(TEXT, "b.rules")])
    assert not compilation.ok
    assert any(d.span is not None and d.span.file == "shop.rules" for d in compilation.diagnostics)


def test_model_inputs_are_compiled_from_feature_texts_given_as_data() -> None:
    text = TEXT + 'model p_click = "p.onnx"\nrule m when p_click > 0.5 then show a in side\n'
    features = {"p_click": ['views("Electronics",24h)', 'context.page == "home"', "user.age"]}
    compilation = compile_ruleset([parsed(text)], model_features=features)
    assert compilation.ok, compilation.diagnostics
    inputs = compilation.model_inputs["p_click"]
    assert [i.text for i in inputs] == features["p_click"]
    assert [i.condition is not None for i in inputs] == [False, True, False]
    assert "user.age" in compilation.plan.features  # fetched in stage 1 with everything else


def test_a_bad_model_input_is_reported_on_the_model_line() -> None:
    text = TEXT + 'model p_click = "p.onnx"\n'
    compilation = compile_ruleset([parsed(text)], model_features={"p_click": ['user.tier == "gold"', "user.tier"]})
    assert not compilation.ok and compilation.completed == ("check", "normalize", "model_inputs")
    [problem] = compilation.diagnostics
    assert problem.span is not None and problem.span.line == 8
    assert problem.message.startswith("model p_click: input 2 (user.tier): inputs are numbers")


def test_every_entry_point_compiles_through_the_pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[str] = []
    counted = tuple(Stage(s.name, lambda c, s=s: (ran.append(s.name), s.run(c))[1], s.product) for s in pipeline.STAGES)
    monkeypatch.setattr(pipeline, "STAGES", counted)

    def went_through(call) -> list[str]:
        ran.clear()
        call()
        return list(ran)

    (tmp_path / "shop.rules").write_text(TEXT)
    (tmp_path / "shop_test.rules").write_text('test "gold" given user.tier = "gold" expect hero = b\n')
    assert went_through(lambda: tailor.loads(TEXT)) == list(STAGE_NAMES)
    assert went_through(lambda: tailor.load(RETAIL)) == list(STAGE_NAMES)
    assert went_through(lambda: lint_path(tmp_path)) == list(STAGE_NAMES[:4])
    assert went_through(lambda: ruletest.prepare(tmp_path)) == list(STAGE_NAMES)
    assert went_through(lambda: parse_feature('views("Books", 7d)')) == ["check", "normalize", "model_inputs"]


def test_a_model_input_that_is_a_bare_profile_attribute_loads(tmp_path: Path) -> None:
    """An attribute read only by a model is a number input: NaN when unknown or not a number."""
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(400, 2)).astype(np.float32)
    labels = (rows[:, 0] + rows[:, 1] > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "seed": 1, "deterministic": True, "num_threads": 1}
    booster = lightgbm.train({**params, "verbose": -1}, lightgbm.Dataset(rows, labels), num_boost_round=5)
    model = convert_lightgbm(booster, initial_types=[("features", FloatTensorType([None, 2]))], zipmap=False)
    features = ['views("Electronics", 24h)', "user.age"]
    helper.set_model_props(model, {"tailor.features": json.dumps(features)})
    (tmp_path / "p.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "shop.rules").write_text(
        'content a = {}\nmodel p_click = "p.onnx"\nrule r when p_click > 0.5 then show a in hero\n'
    )

    ruleset = tailor.load(tmp_path)
    assert [i.text for i in ruleset.plan.model_inputs["p_click"]] == features
    engine = tailor.Engine(ruleset)
    for age in (42, "forty-two", None, True):
        explanation = engine.explain(features={'views("Electronics", 24h)': 3, "user.age": age})
        row = explanation.model_inputs["p_click"]
        assert row['views("Electronics", 24h)'] == 3.0
        if age == 42:
            assert row["user.age"] == 42.0
        else:
            assert math.isnan(row["user.age"]), f"{age!r} is not a number"


def test_loads_takes_a_file_name_as_the_name() -> None:
    ruleset = tailor.loads("content a = {}\n\n\n\nwhen true then show a in hero\n", name="offers.rules")
    assert ruleset.files == ("offers.rules",)
    assert ruleset.name == "offers"
    assert [r.name for r in ruleset.rules] == ["offers:5"]
    plain = tailor.loads("content a = {}\nwhen true then show a in hero\n", name="offers")
    assert plain.files == ("offers.rules",) and [r.name for r in plain.rules] == ["offers:2"]


def test_compile_path_reports_a_missing_path_and_an_empty_directory(tmp_path: Path) -> None:
    [missing] = compile_path(tmp_path / "nope").diagnostics
    assert missing.message == "no such file or directory"
    [empty] = compile_path(tmp_path).diagnostics
    assert empty.message == "no .rules files here"


def _tailor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


@pytest.mark.parametrize("emit", ["check", "normalize", "model_inputs", "plan", "python"])
def test_compile_emits_each_stage_with_timings(emit: str) -> None:
    done = _tailor("compile", "rulesets/retail", "--emit", emit, "--timings")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    stages = [line.split()[0] for line in done.stderr.splitlines()]
    assert stages == ["parse", "check", "read", "normalize", "model_inputs", "plan", "generate", "total"]


def test_compile_prints_errors_with_their_location(tmp_path: Path) -> None:
    (tmp_path / "bad.rules").write_text("rule r when user.x > 1 then show missing\n")
    done = _tailor("compile", str(tmp_path / "bad.rules"), "--emit", "normalize")
    assert done.returncode == 1
    assert "bad.rules:1:" in done.stdout + done.stderr
