"""The generated code: pinned, the same in every process, self-contained, and right on its own.

``tests/golden/retail_plan.py`` is exactly what ``tailor compile
rulesets/retail --emit python`` prints. When a change to the generator is
meant to change that code, rewrite the file and review its diff:

    TAILOR_UPDATE_GOLDEN=1 python -m pytest tests/test_codegen.py

The printed module is also run on its own, in a fresh process whose engine
refuses to decide, and must serve what ``tailor.Engine`` serves.
"""

from __future__ import annotations

import builtins
import difflib
import json
import math
import os
import random
import subprocess
import symtable
import sys
from pathlib import Path
from typing import Any

import pytest
import reference

import tailor
from bench import workload
from tailor.compiler import codegen_tables
from tailor.compiler.codegen_names import Namer, derived_name

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden" / "retail_plan.py"
RETAIL = ROOT / "rulesets" / "retail"
UPDATE = "TAILOR_UPDATE_GOLDEN"
RETAIL_SLOTS = ["hero", "sidebar", "cart_upsell"]


def _run(args: list[str], seed: str = "0", cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    completed = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _retail_source() -> str:
    """The retail example's module as the engine has it; its files named as from the repository root."""
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        return tailor.load("rulesets/retail").compiled.source
    finally:
        os.chdir(cwd)


# --- pinned, and the same whatever the hash seed ----------------------------------


def test_retail_code_matches_its_golden_file() -> None:
    printed = _run(["-m", "tailor.cli", "compile", "rulesets/retail", "--emit", "python"])
    if os.environ.get(UPDATE):
        GOLDEN.write_text(printed, encoding="utf-8")
    golden = GOLDEN.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(golden.splitlines(True), printed.splitlines(True), "golden", "printed", n=2))
    assert printed == golden, f"the generated code changed (set {UPDATE}=1 to accept it):\n{diff[:4000]}"
    assert printed == _retail_source()


GENERATE = """
import sys
sys.path.insert(0, ".")
import tailor
from bench import workload
print(tailor.load("rulesets/retail").compiled.source)
print(tailor.loads(workload.ruleset_text(150), name="bench").compiled.source)
"""


def test_the_same_plan_gives_the_same_source_in_every_process() -> None:
    """Sets of strings iterate in hash order, which differs per process unless the code sorts them."""
    first, second = (_run(["-c", GENERATE], seed) for seed in ("1", "2"))
    assert first == second


# --- self-contained and plain -----------------------------------------------------

# Seven two-way choices: 128 conjunctions, too many to expand, so the condition is evaluated as a whole.
BIG = " and ".join(f'(context.p{i} == "x" or {f"user.q{i} > 1" if i < 7 else "p_click > 0.5"})' for i in range(1, 8))
FORMULA = """ruleset shop

content a = {"id": "a"}
content b = {"id": "b"}
model p_click = "p.onnx"

segment fan = views("Books", 1h) > 2

rule big
  when BIG
  then show a in hero
  priority 10

rule maths
  when views(1h) + clicks(1h) > user.threshold and (fan is missing) == false
  then show b in hero

rule scored
  when p_click > 0.5 and -views(24h) < -3
  then show b in side

rule books
  when views("Books", 1h) > 0 or views("books", 1h) > 0 or views("Bücher", 1h) > 0
  then show a in side

default show a in side
""".replace("BIG", BIG)


def _sources() -> dict[str, str]:
    return {
        "retail": _retail_source(),
        "formula": tailor.loads(FORMULA, name="shop").compiled.source,
        "workload": tailor.loads(workload.ruleset_text(1000), name="bench").compiled.source,
    }


def _undefined(source: str) -> set[str]:
    """Names the functions read that the module neither defines nor imports, and that are no builtins."""
    module = symtable.symtable(source, "<plan>", "exec")
    defined = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported()}
    known = set(dir(builtins))
    missing: set[str] = set()
    tables = list(module.get_children())
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for symbol in table.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                name = symbol.get_name()
                if name not in defined and name not in known:
                    missing.add(name)
    return missing


def test_the_module_defines_or_imports_every_name_it_uses() -> None:
    for name, source in _sources().items():
        assert _undefined(source) == set(), name
        imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
        for line in imports:
            assert line.startswith(("from bisect ", "from tailor.compiler.")), f"{name}: {line}"


def test_no_function_carries_its_tables_as_default_arguments() -> None:
    for name, source in _sources().items():
        defs = [line.strip() for line in source.splitlines() if line.lstrip().startswith("def ")]
        assert defs, name
        assert max(len(line) for line in defs) <= 80, (name, max(defs, key=len))
        assert all("=" not in line for line in defs if not line.startswith("def decide(")), name


def test_identical_checks_are_one_function_shared_by_their_bits() -> None:
    source = _retail_source()
    assert source.count("def check_") == 2  # hero_by_model's p_click > 0.5; electronics_accessories' > 0.7
    compiled = tailor.load(RETAIL).compiled
    shared = [check for check in compiled.checks if check is not None and check.__name__.endswith("accessories")]
    assert len(shared) == 2 and shared[0] is shared[1]  # its two conjunctions share one function


def test_features_are_named_after_their_text() -> None:
    source = _retail_source()
    for line in (
        "    views_electronics_24h = fetched.get('views(\"Electronics\", 24h)', 0)",
        "    user_tier = fetched.get('user.tier')",
        "    context_page = context.get('page')",
        "    p_click = V['p_click']",
    ):
        assert line + "\n" in source
    assert "F0" not in source


def test_names_fall_back_to_an_index_when_the_text_gives_none() -> None:
    assert derived_name('count("cart_abandoned", "any", 7d)') == "count_cart_abandoned_any_7d"
    assert derived_name('clicks("acc-42", 30d)') == "clicks_acc_42_30d"
    assert derived_name('views("Bücher", 1h)') is None  # not ASCII
    assert derived_name("x" * 60) is None  # too long to read
    namer = Namer()
    assert namer.name('views("Books", 1h)', "feature", 3) == "views_books_1h"
    assert namer.name('views("books", 1h)', "feature", 4) == "views_books_1h_4"  # the same name, taken
    assert namer.name('views("Bücher", 1h)', "feature", 5) == "feature_5"
    assert namer.name("class", "feature", 6) == "class_6"  # a keyword
    assert namer.name("type", "feature", 7) == "type_7"  # a builtin the code uses
    assert namer.name("alive", "slot", 8) == "alive_8"  # a name of the generated code
    assert namer.name("choices", "slot", 10) == "choices_10"
    assert namer.name("check_x", "feature", 9) == "feature_9"  # the prefix of the check functions


# --- right on its own -------------------------------------------------------------


def _retail_requests(count: int, seed: int = 5) -> list[dict[str, Any]]:
    """Requests over every value the retail rules test, with unknown and wrongly typed ones among them."""
    rng = random.Random(seed)
    context_values: dict[str, list[Any]] = {
        "page": ["home", "product", "cart", 5, None],
        "category": ["Electronics", "Garden"],
        "cart_total": [20, 35, 40, 49.99, 50, 100, 120.5, "100", math.nan],
        "device": ["mobile", "desktop"],
    }
    feature_values: dict[str, list[Any]] = {
        "user.tier": ["gold", "platinum", "silver", None, 3],
        'since("purchase")': [3600.0, 172800, 2592000, 3888000.0, "45d"],
        'add_to_carts("Electronics", 1h)': [0, 1, 2, 1.5, True],
        'add_to_carts("Electronics", 7d)': [0, 1, 3],
        'count("cart_abandoned", "any", 7d)': [0, 1, 2, None],
        'total("purchase", "any", 30d)': [0, 100, 499.99, 500, 800.5],
        'views("Electronics", 24h)': [0, 1, 2, 3, 5, 70],
        "views(7d)": [0, 2, 3, 6],
    }
    requests = []
    for _ in range(count):
        context = {key: rng.choice(values) for key, values in context_values.items() if rng.random() < 0.7}
        features = {key: rng.choice(values) for key, values in feature_values.items() if rng.random() < 0.6}
        features["p_click"] = rng.choice([None, 0.1, 0.7, 0.71, 0.95])  # supplied: models never run here
        slots = None if rng.random() < 0.6 else rng.sample([*RETAIL_SLOTS, "nope"], rng.randint(1, 3))
        requests.append({"context": context, "features": features, "slots": slots})
    return requests


STANDALONE = """
import importlib.util, json, sys

import tailor.compiler.decide as engine

def refuse(*args, **kwargs):
    raise AssertionError("the module used the engine")

engine.Decider.__init__ = engine.Decider.begin = engine.Decider.finish = refuse
spec = importlib.util.spec_from_file_location("retail_plan", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with open(sys.argv[2]) as file:
    requests = json.load(file)
decisions = [module.decide(r["context"], r["features"], r["slots"]) for r in requests]
print(json.dumps(decisions))
"""


def test_the_printed_module_decides_as_the_engine(tmp_path: Path) -> None:
    requests = _retail_requests(400)
    (tmp_path / "retail_plan.py").write_text(GOLDEN.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "requests.json").write_text(json.dumps(requests), encoding="utf-8")
    printed = _run(["-c", STANDALONE, "retail_plan.py", "requests.json"], cwd=tmp_path)
    standalone = json.loads(printed)

    engine = tailor.Engine(tailor.load(RETAIL))
    for request, alone in zip(requests, standalone, strict=True):
        decision = engine.decide(context=request["context"], features=request["features"], slots=request["slots"])
        served = {slot: [answer.content, answer.rule] for slot, answer in decision.slots.items()}
        assert alone == served, request
    assert any(alone.get("hero") == ["hero_accessories", "electronics_accessories"] for alone in standalone)


def _shop_requests(count: int, seed: int = 9) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        context = {f"p{i}": rng.choice(["x", "y"]) for i in range(1, 8) if rng.random() < 0.8}
        features: dict[str, Any] = {f"user.q{i}": rng.choice([0, 2]) for i in range(1, 7) if rng.random() < 0.8}
        for text in ('views("Books", 1h)', 'views("books", 1h)', 'views("Bücher", 1h)', "views(1h)", "clicks(1h)"):
            if rng.random() < 0.7:
                features[text] = rng.choice([0, 1, 3, 5])
        features["views(24h)"] = rng.choice([0, 4, 9])
        features["user.threshold"] = rng.choice([None, 1, 4, 20])
        features["p_click"] = rng.choice([None, 0.2, 0.9])
        requests.append({"context": context, "features": features})
    return requests


@pytest.mark.parametrize("seed", [9, 10])
def test_formulas_condition_values_and_arithmetic_agree_with_the_reference(seed: int) -> None:
    ruleset = tailor.loads(FORMULA, name="shop")
    source = ruleset.compiled.source
    assert "def truth_" in source and "arith_value(" in source and "return truth_" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "<shop>", "exec"), namespace)
    engine = tailor.Engine(ruleset)
    program = reference.load(FORMULA)
    for request in _shop_requests(300, seed):
        expected = reference.decide(program, request["context"], request["features"])
        decision = engine.decide(context=request["context"], features=request["features"])
        alone = namespace["decide"](request["context"], request["features"])
        for slot, outcome in expected.items():
            assert (decision.slots[slot].content, decision.slots[slot].rule) == (outcome.content, outcome.rule)
            assert alone[slot] == (outcome.content, outcome.rule), (slot, request)


# Rules that exclude SKUs, so that a value also flips bits that any other value keeps.
EXCLUDING = """
rule not_three when context.sku != "sku-3" and user.tier == "silver" then show c2 in footer priority 50
rule not_some when context.sku not in ["sku-4", "sku-5"] and context.page == "home" then show c3 in sidebar priority 40
"""


def test_a_table_of_flipped_bits_decides_as_masks_and_the_reference_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SPARSE_TABLE_BITS a table names the bits each SKU flips instead of a mask per SKU."""
    text = workload.sku_ruleset_text(300) + EXCLUDING
    masks = tailor.loads(text, name="sku")
    monkeypatch.setattr(codegen_tables, "SPARSE_TABLE_BITS", 0)
    flips = tailor.loads(text, name="sku")
    assert "CONTEXT_SKU_FLIPS" in flips.compiled.source and "CONTEXT_SKU_KEEP" in masks.compiled.source
    assert "CONTEXT_SKU_FLIPS" not in masks.compiled.source
    engines = [tailor.Engine(masks), tailor.Engine(flips)]
    program = reference.load(text, name="sku")
    rng = random.Random(3)
    for _ in range(600):
        sku = rng.choice([f"sku-{rng.randrange(310)}", "sku-3", "sku-4", "other", 7, None])
        context = {"sku": sku, "page": rng.choice(["product", "home"])}
        features = {"user.tier": rng.choice(["gold", "silver", None])}
        expected = reference.decide(program, context, features)
        for engine in engines:
            decision = engine.decide(context=context, features=features)
            served = {slot: (answer.content, answer.rule) for slot, answer in decision.slots.items()}
            assert served == {slot: (outcome.content, outcome.rule) for slot, outcome in expected.items()}, context
