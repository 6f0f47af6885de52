"""Deeply nested expressions and long flat chains, met as users meet them.

An expression nested past the language's limit is a diagnostic at that
expression, never a Python traceback: in ``tailor lint``, ``tailor fmt``,
``tailor compile`` and ``tailor test`` (real files, a subprocess), in
``tailor.loads`` and in a server reload. A chain of 20,000 ``or``s (or
``and``s) written without parentheses is one level: it is accepted, and it
compiles in seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailor.compiler.check import check
from tailor.compiler.ir import All, Any_, Atom
from tailor.compiler.normalize import Normalizer
from tailor.compiler.pipeline import compile_ruleset
from tailor.compiler.ruleset import loads
from tailor.dsl import ast
from tailor.dsl.diagnostics import RulesError
from tailor.dsl.formatter import format_text
from tailor.dsl.loader import ParsedFile
from tailor.dsl.nesting import MAX_NESTING, NESTING_CODE, nesting_depth
from tailor.dsl.parser import parse, parse_expression, parse_source
from tailor.dsl.source import Source
from tailor.runtime.engine import Engine
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.reload import Reloader
from tailor.runtime.ruleset_loader import compile_path
from tailor.runtime.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
TERMS = 20_000
SECONDS = 90  # the longest a command may take on a 20,000-term chain

SHOP = """\
content c = {"kind": "banner"}
default show c in hero
rule vip when user.vip then show c in side
"""


def nots(count: int) -> str:
    return "not " * count + "user.vip"


def nested_ors(levels: int) -> str:
    """``((a or b) or c) …``: ``levels`` parenthesised ``or``s around a comparison."""
    expr = "context.a == 1"
    for index in range(levels):
        expr = f"({expr} or context.b{index} == 1)"
    return expr


def long_sum(terms: int) -> str:
    return " + ".join(["views(1h)"] * terms) + " > 3"


def flat_or(terms: int) -> str:
    return " or ".join(f'context.sku == "s{index}"' for index in range(terms))


def mixed_or(terms: int) -> str:
    """Comparisons over many features, of every kind, none of which merge with the others."""
    kinds = (
        lambda i: f'context.sku == "s{i}"',
        lambda i: f'views("c{i}", 24h) > {i % 7}',
        lambda i: f"user.age{i % 50} > {i}",
        lambda i: f'context.p{i % 30} != "x{i}"',
    )
    return " or ".join(kinds[index % 4](index) for index in range(terms))


def flat_and(terms: int) -> str:
    return " and ".join(f'context.k{index} == "s{index}"' for index in range(terms))


def too_deep(where: str, levels: int) -> str:
    return f"{where}: error: this expression is nested too deeply: {levels} levels, the limit is {MAX_NESTING}"


# Files of one ruleset, each with a shape from the issue, and the diagnostic each must give.
DEEP_FILES = {
    "nots.rules": f"rule nots when {nots(500)} then show c in hero\n",
    "parens.rules": f"rule parens when {nested_ors(1000)} then show c in hero\n",
    "sum.rules": f"rule total when {long_sum(TERMS)} then show c in hero\n",
    "segment.rules": f"segment deep = {nots(500)}\n",
}
DEEP_DIAGNOSTICS = [
    too_deep("nots.rules:1:16", 500),
    too_deep(f"parens.rules:1:{len('rule parens when ') + 1000 + 1}", 1001),  # the tree starts inside the parentheses
    too_deep("segment.rules:1:16", 500),
    too_deep("sum.rules:1:17", TERMS + 1),  # each call is a level too
]


def tailor(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def deep_ruleset(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    for name, text in DEEP_FILES.items():
        (root / name).write_text(text)
    return root


def assert_reported(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[:2000]
    assert "Traceback" not in output and "RecursionError" not in output
    for diagnostic in DEEP_DIAGNOSTICS:
        assert diagnostic in result.stdout
    assert "split it into segments" in result.stdout


# --- the commands, on the shapes -------------------------------------------------


def test_lint_reports_each_deep_expression_where_it_is(tmp_path: Path) -> None:
    root = deep_ruleset(tmp_path)
    result = tailor("lint", ".", cwd=root)
    assert_reported(result)
    assert result.stdout.count(": error: ") == len(DEEP_DIAGNOSTICS)


def test_fmt_reports_deep_expressions_and_rewrites_nothing(tmp_path: Path) -> None:
    root = deep_ruleset(tmp_path)
    assert_reported(tailor("fmt", "--check", ".", cwd=root))
    assert_reported(tailor("fmt", ".", cwd=root))
    for name, text in DEEP_FILES.items():
        assert (root / name).read_text() == text


def test_compile_reports_deep_expressions(tmp_path: Path) -> None:
    assert_reported(tailor("compile", ".", cwd=deep_ruleset(tmp_path)))


def test_rule_tests_report_deep_expressions_in_rules_and_in_tests(tmp_path: Path) -> None:
    root = deep_ruleset(tmp_path)
    (root / "shop_test.rules").write_text('test "vip"\n  given user.vip = true\n  expect side = c\n')
    assert_reported(tailor("test", ".", cwd=root))

    for name in DEEP_FILES:
        (root / name).unlink()
    (root / "shop_test.rules").write_text(
        'test "vip"\n  given user.vip = true\n  expect side = c\n\n'
        f'test "deep"\n  given user.vip = {nots(300)}\n  expect side = c\n'
    )
    result = tailor("test", ".", cwd=root)
    assert result.returncode == 1
    assert too_deep("shop_test.rules:6:20", 300) in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", DEEP_FILES)
def test_loads_raises_the_diagnostic(name: str) -> None:
    with pytest.raises(RulesError) as raised:
        loads(SHOP + DEEP_FILES[name], filename=name)
    found = raised.value.diagnostics
    assert found[0].code == NESTING_CODE
    assert found[0].message.startswith("this expression is nested too deeply")
    assert found[0].line == 4  # after the shop's three lines


def test_a_server_reload_reports_the_expression_and_keeps_serving(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    service = DecisionService(root, MemoryStore())
    serving = service.open().version
    reloader = Reloader(service)
    for name, text in DEEP_FILES.items():
        (root / name).write_text(text)
        assert asyncio.run(reloader.reload()) == "failed"
        assert service.current is not None and service.current.version == serving
        problem = service.last_error[0]
        assert problem["file"].endswith(name) and problem["line"] == 1 and problem["code"] == NESTING_CODE, problem
        assert "nested too deeply" in problem["message"]
        (root / name).unlink()


# --- long flat chains ---------------------------------------------------------------------


def flat_ruleset(tmp_path: Path) -> Path:
    root = tmp_path / "catalogue"
    root.mkdir()
    (root / "shop.rules").write_text(SHOP)
    (root / "skus.rules").write_text(f"rule skus when {flat_or(TERMS)} then show c in hero\n")
    (root / "mixed.rules").write_text(f"rule mixed when {mixed_or(TERMS)} then show c in hero\n")
    (root / "segment.rules").write_text(
        f"segment listed = {flat_or(TERMS)}\nrule listed_sku when listed then show c in side\n"
    )
    return root


def test_a_20000_term_or_chain_lints_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(SHOP + f"rule skus when {flat_or(TERMS)} then show c in hero\n")
    started = time.monotonic()
    result = tailor("lint", "shop.rules", cwd=tmp_path, timeout=SECONDS)
    assert result.returncode == 0, (result.stdout + result.stderr)[:2000]
    assert time.monotonic() - started < SECONDS


@pytest.mark.slow
def test_20000_term_or_chains_of_every_kind_lint_and_compile_in_seconds(tmp_path: Path) -> None:
    root = flat_ruleset(tmp_path)
    for command in ("lint", "compile"):
        started = time.monotonic()
        result = tailor(command, ".", cwd=root, timeout=SECONDS)
        assert result.returncode == 0, (result.stdout + result.stderr)[:2000]
        assert time.monotonic() - started < SECONDS
    engine = Engine(compile_path(root).ruleset())
    assert engine.decide(context={"sku": "s19999"}).slots["hero"].rule == "skus"
    assert engine.decide(context={"sku": "s3"}).slots["side"].rule == "listed_sku"


@pytest.mark.slow
def test_fmt_lays_out_a_20000_term_chain_one_operand_a_line(tmp_path: Path) -> None:
    path = tmp_path / "skus.rules"
    text = SHOP + f"rule skus when {flat_or(TERMS)} then show c in hero\n"
    path.write_text(text)
    result = tailor("fmt", "skus.rules", cwd=tmp_path, timeout=SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr
    formatted = path.read_text()
    assert formatted.count('\n    or context.sku == "s') == TERMS - 1
    assert parse(formatted) == parse(text)
    assert format_text(formatted) == formatted


def test_a_20000_term_and_chain_checks_and_normalizes() -> None:
    text = SHOP + f"rule every when {flat_and(TERMS)} then show c in hero\n"
    module, problems = parse_source(Source("every.rules", text))
    assert problems == []
    compilation = compile_ruleset([ParsedFile(Path("every.rules"), module, (), "")], until="normalize")
    assert compilation.ok, compilation.diagnostics
    (rule,) = [r for r in compilation.normal.rules if r.rule.name == "every"]
    assert isinstance(rule.condition, All) and len(rule.condition.items) == TERMS


# --- the limit itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "levels"),
    [
        ("user.vip", 0),
        ("views(1h)", 1),
        ("views(1h) > 2", 2),
        ("not user.vip", 1),
        ("a or b or c or d", 1),
        ("a and b or c", 2),
        ("(a or b) or c", 2),
        ("1 + 2 + 3", 2),
        ("-(-(-1))", 3),
        ('user.tier in ["a", "b"]', 2),
        ("user.age is not missing", 1),
    ],
)
def test_nesting_depth_counts_levels(text: str, levels: int) -> None:
    assert nesting_depth(parse_expression(text)) == levels


def test_nesting_depth_has_no_recursion_limit() -> None:
    negated: ast.Expr = ast.Attribute("user", "vip")
    total: ast.Expr = ast.Call("views", (ast.Duration(1, "h"),))
    for _ in range(TERMS):
        negated = ast.Not(negated)
        total = ast.Arithmetic("+", total, ast.Call("views", (ast.Duration(1, "h"),)))
    assert nesting_depth(negated) == TERMS
    assert nesting_depth(total) == TERMS + 1
    assert nesting_depth(ast.Name("s"), {"s": 7}) == 7
    assert nesting_depth(ast.Not(ast.Or((ast.Name("s"), ast.Name("t")))), {"s": 7}) == 9


def test_the_limit_is_exact() -> None:
    at_limit = parse(f"rule r when {nots(MAX_NESTING)} then show c\n")
    assert len(at_limit.declarations) == 1
    module, problems = parse_source(Source("deep.rules", f"rule r when {nots(MAX_NESTING + 1)} then show c\n"))
    assert [p.message for p in problems] == [
        f"this expression is nested too deeply: {MAX_NESTING + 1} levels, the limit is {MAX_NESTING}"
    ]
    assert problems[0].column == len("rule r when ") + 1 and problems[0].hint == "split it into segments"
    assert module.declarations == ()


def test_only_the_deep_declaration_is_left_out() -> None:
    text = f"rule a when user.vip then show c\nrule b when {nots(200)} then show c\nrule d when user.x then show c\n"
    module, problems = parse_source(Source("deep.rules", text))
    assert [p.line for p in problems] == [2]
    assert [decl.name.name for decl in module.declarations] == ["a", "d"]


def test_a_lone_expression_is_measured_too() -> None:
    with pytest.raises(RulesError, match="nested too deeply: 150 levels"):
        parse_expression(nots(150))


def test_shapes_at_the_limit_compile_and_decide() -> None:
    """Every recursive pass handles the deepest accepted expressions, segments inlined."""
    alternating = "context.z == 1"
    for index in range((MAX_NESTING - 1) // 2):
        alternating = f"(context.a{index} == 1 or context.b{index} == 1) and (context.c{index} == 1 or ({alternating}))"
    segments = ["segment s0 = user.vip"]
    for index in range(1, MAX_NESTING // 3 + 1):
        segments.append(f"segment s{index} = not (s{index - 1} and context.x{index} == 1)")
    last = len(segments) - 1
    text = "\n".join(
        [
            SHOP,
            *segments,
            f"rule nots when {nots(MAX_NESTING)} then show c in a",
            f"rule parens when {nested_ors(MAX_NESTING - 1)} then show c in b",
            f"rule total when {long_sum(MAX_NESTING - 1)} then show c in d",
            f"rule alternating when {alternating} then show c in e",
            f"rule chain when {'not ' * (MAX_NESTING - 1)}s{last} then show c in f",
            f"rule negated when user.n > {'-' * (MAX_NESTING - 1)}1 then show c in g",
        ]
    )
    engine = Engine(loads(text + "\n"))
    features = {"user.vip": True, "views(1h)": 1, "user.n": 3}
    decision = engine.decide(context={"a": 1, "z": 1}, features=features)
    assert {slot: outcome.rule for slot, outcome in decision.slots.items()} == {
        "hero": None,  # the default
        "side": "vip",
        "a": "nots",
        "b": "parens",
        "d": "total",
        "e": None,  # context.a0 is unknown
        "f": None,  # and so is every context.xN of the chain
        "g": "negated",
    }
    assert "nots" in engine.explain(context={"a": 1}, features=features).render()


def test_a_chain_of_segments_is_measured_inlined_and_reported_where_it_crosses() -> None:
    lines = ['content c = {"kind": "banner"}', "segment s0 = user.vip"]
    for index in range(1, 400):
        lines.append(f"segment s{index} = not (s{index - 1} and context.x{index} == 1)")
    lines.append("rule r when s399 then show c")
    _program, problems = check([parse("\n".join(lines) + "\n", "chain.rules")])
    crossing = MAX_NESTING // 3 + 1  # each segment adds three levels: not, and, and the use of the one before
    assert [(p.code, p.line, p.message) for p in problems] == [
        (
            NESTING_CODE,
            crossing + 2,
            f"segment 's{crossing}' is nested too deeply with the segments it uses: {3 * crossing} levels,"
            f" the limit is {MAX_NESTING}",
        )
    ]


def test_a_chain_of_segments_naming_each_other_counts_each_use() -> None:
    lines = ['content c = {"kind": "banner"}', "segment s0 = user.vip"]
    lines += [f"segment s{index} = s{index - 1}" for index in range(1, 1000)]
    lines.append("rule r when s999 then show c")
    _program, problems = check([parse("\n".join(lines) + "\n", "chain.rules")])
    assert [p.message.split(":")[0] for p in problems] == [
        f"segment 's{MAX_NESTING + 1}' is nested too deeply with the segments it uses"
    ]


def test_the_reference_states_the_limit_and_its_message() -> None:
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert f"at most **{MAX_NESTING} levels**" in doc
    assert f"error: this expression is nested too deeply: 500 levels, the limit is {MAX_NESTING}" in doc
    assert "split it into segments" in doc


def test_flat_or_over_one_feature_is_one_membership_atom() -> None:
    program, problems = check([parse(SHOP + f"rule skus when {flat_or(TERMS)} then show c in hero\n")])
    assert problems == []
    condition = Normalizer(program).condition(program.rules[-1].decl.condition)
    assert isinstance(condition, Atom) and condition.op == "in" and len(condition.value) == TERMS


def test_flat_or_over_many_features_keeps_every_operand_in_order() -> None:
    program, problems = check([parse(SHOP + f"rule mixed when {mixed_or(TERMS)} then show c in hero\n")])
    assert problems == []
    condition = Normalizer(program).condition(program.rules[-1].decl.condition)
    assert isinstance(condition, Any_)
    # The 5,000 context.sku comparisons become one membership, where the first stood.
    assert condition.items[0] == Atom("in", condition.items[0].feature, frozenset(f"s{i}" for i in range(0, TERMS, 4)))
    assert condition.items[1].text() == 'views("c1", 24h) > 1'
    assert len(condition.items) == 1 + 3 * TERMS // 4
