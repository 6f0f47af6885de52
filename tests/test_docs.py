"""The language reference and the retail example ruleset stay true.

Every ```rules block of docs/language.md is a complete file: it parses, it is
already in the canonical layout, and every content, segment, model and
feature function it uses is declared or spelled as the language defines. The
reference lists every reserved word and documents every feature function, and
its sample error message is exactly what the parser prints. The example in
rulesets/retail/ parses, is formatted, and is a complete ruleset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tailor.compiler.check import check
from tailor.compiler.walk import walk
from tailor.dsl import ast
from tailor.dsl.diagnostics import RulesError, Severity, render, render_all
from tailor.dsl.formatter import format_text
from tailor.dsl.parser import parse, parse_source
from tailor.dsl.source import Source
from tailor.dsl.tokenizer import KEYWORDS
from tailor.runtime.ruleset_loader import lint_path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "language.md"
RETAIL = ROOT / "rulesets" / "retail"

# The reserved words of the v1 spec, in its order.
SPEC_RESERVED_WORDS = (
    *("ruleset", "content", "model", "segment", "rule", "when", "then", "show", "in", "priority", "default"),
    *("and", "or", "not", "is", "missing", "true", "false", "test", "given", "expect", "experiment", "holdout"),
)

# Feature functions and their argument forms, as the v1 spec states them.
FEATURE_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "views": (("KEY", "WINDOW"), ("WINDOW",)),
    "clicks": (("KEY", "WINDOW"), ("WINDOW",)),
    "add_to_carts": (("KEY", "WINDOW"), ("WINDOW",)),
    "purchases": (("KEY", "WINDOW"), ("WINDOW",)),
    "count": (("TYPE", "KEY", "WINDOW"),),
    "total": (("TYPE", "KEY", "WINDOW"),),
    "since": (("TYPE",), ("TYPE", "KEY")),
}
SIGNATURES = [f"{name}({', '.join(form)})" for name, forms in FEATURE_FORMS.items() for form in forms]
RETAIL_SLOTS = {"hero", "sidebar", "cart_upsell"}


# --- reading the reference ------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its tag, the doc line of its first text line, its text."""

    lang: str
    line: int
    text: str
    marker: str  # the HTML comment on the line just above the fence, if any


_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")


def read_blocks(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"docs/language.md:{index + 1}: this code block is never closed")
        above = _MARKER.match(lines[index - 1]) if index > 0 else None
        body = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(fence.group(1), index + 2, body, above.group(1) if above else ""))
        index = end + 1
    return blocks


DOC_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = read_blocks(DOC_TEXT)
RULES_BLOCKS = [pytest.param(block, id=f"line{block.line}") for block in BLOCKS if block.lang == "rules"]


def marked_block(prefix: str) -> Block:
    found = [block for block in BLOCKS if block.marker.startswith(prefix)]
    assert len(found) == 1, f"expected one code block marked <!-- {prefix} --> in the reference, found {len(found)}"
    return found[0]


# --- completeness: the compiler's own checker ------------------------------------------


def declared(modules: list[ast.Module], kind: type) -> list[ast.Declaration]:
    return [decl for module in modules for decl in module.declarations if isinstance(decl, kind)]


def check_errors(modules: list[ast.Module]) -> list[str]:
    _program, problems = check(modules)
    return [render(problem) for problem in problems if problem.severity is Severity.ERROR]


def calls_in(modules: list[ast.Module]) -> list[ast.Call]:
    conditions = [decl.condition for decl in declared(modules, ast.SegmentDecl)]
    conditions += [decl.condition for decl in declared(modules, ast.RuleDecl)]
    return [node for condition in conditions for node in walk(condition) if isinstance(node, ast.Call)]


def parse_block(block: Block) -> ast.Module:
    return parse(block.text, "example.rules")


# --- the reference's examples ------------------------------------------------------


def test_the_reference_has_examples_and_every_block_is_tagged():
    assert len(RULES_BLOCKS) >= 10
    untagged = [block.line for block in BLOCKS if not block.lang]
    assert untagged == [], f"code blocks without a language tag start at lines {untagged}"


@pytest.mark.parametrize("block", RULES_BLOCKS)
def test_rules_block_parses(block: Block):
    # Padding with blank lines makes any error point at the reference's own line.
    padded = "\n" * (block.line - 1) + block.text
    try:
        module = parse(padded, "docs/language.md")
    except RulesError as exc:
        pytest.fail(f"the ```rules block at docs/language.md line {block.line} does not parse:\n{exc}")
    assert module.declarations, f"the ```rules block at line {block.line} declares nothing"


@pytest.mark.parametrize("block", RULES_BLOCKS)
def test_rules_block_is_formatted_canonically(block: Block):
    assert format_text(block.text) == block.text, f"run the block at line {block.line} through tailor fmt"


@pytest.mark.parametrize("block", RULES_BLOCKS)
def test_rules_block_is_a_complete_file(block: Block):
    module = parse_block(block)
    tests = [decl for decl in module.declarations if isinstance(decl, ast.TestDecl)]
    if tests:
        # A _test.rules file holds tests only; it refers to the ruleset it tests.
        assert len(tests) == len(module.declarations), f"block at line {block.line} mixes tests and declarations"
        return
    assert check_errors([module]) == []


def test_the_example_tests_are_complete_tests():
    modules = [parse_block(block) for block in BLOCKS if block.lang == "rules"]
    tests = [decl for module in modules for decl in module.declarations if isinstance(decl, ast.TestDecl)]
    assert tests, "the reference shows no test in a ```rules block"
    assert all(test.expect and test.title.value for test in tests)


# --- what the reference must cover --------------------------------------------------


def test_reserved_words_are_listed_exactly():
    listed = marked_block("reserved-words").text.split()
    assert sorted(listed) == sorted(SPEC_RESERVED_WORDS)
    assert sorted(KEYWORDS) == sorted(SPEC_RESERVED_WORDS), "the tokenizer's keywords differ from the spec"


@pytest.mark.parametrize("signature", SIGNATURES)
def test_feature_function_is_documented(signature: str):
    assert f"`{signature}`" in DOC_TEXT


def test_every_feature_function_form_appears_in_a_valid_example():
    modules = [parse_block(block) for block in BLOCKS if block.lang == "rules"]
    used = {(call.function, len(call.args)) for call in calls_in(modules)}
    expected = {(name, len(form)) for name, forms in FEATURE_FORMS.items() for form in forms}
    assert expected - used == set()


@pytest.mark.parametrize("operator", [*ast.COMPARISON_OPERATORS, *ast.ARITHMETIC_OPERATORS, "is missing"])
def test_operator_is_documented(operator: str):
    assert f"`{operator}`" in DOC_TEXT


def test_the_sample_error_is_what_the_parser_prints():
    example = marked_block("diagnostic-example:")
    file_name = example.marker.split(":", 1)[1].strip()
    output = marked_block("diagnostic-output")
    _module, problems = parse_source(Source(file_name, example.text))
    assert len(problems) >= 2, "the sample should show several errors reported at once"
    assert output.text == render_all(problems) + "\n"


def test_the_excerpt_is_taken_from_the_example_ruleset():
    excerpt = marked_block("excerpt:")
    path = ROOT / excerpt.marker.split(":", 1)[1].strip()
    assert excerpt.text in path.read_text(encoding="utf-8")


# --- the retail example ruleset -------------------------------------------------------

RETAIL_FILES = sorted(path for path in RETAIL.rglob("*.rules") if not path.name.endswith("_test.rules"))


def retail_modules() -> list[ast.Module]:
    return [parse(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()) for path in RETAIL_FILES]


def test_retail_is_split_into_several_files():
    assert len(RETAIL_FILES) >= 3


@pytest.mark.parametrize("path", RETAIL_FILES, ids=lambda path: path.name)
def test_retail_file_parses_and_is_formatted(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        parse(text, path.relative_to(ROOT).as_posix())
    except RulesError as exc:
        pytest.fail(str(exc))
    assert format_text(text) == text, f"run tailor fmt on {path.name}"


def test_retail_lints_clean():
    """No problems, and every attribute declared: the only notes say what users without consent see."""
    found = lint_path(RETAIL)
    assert [render(d) for d in found if d.code != "without-consent"] == []
    assert sorted(d.message.split("'")[1] for d in found) == sorted(RETAIL_SLOTS)


def test_retail_is_one_complete_ruleset():
    modules = retail_modules()
    assert check_errors(modules) == []
    assert [decl.name.name for decl in declared(modules, ast.RulesetDecl)] == ["retail"]
    unnamed = [decl.span.line for decl in declared(modules, ast.RuleDecl) if decl.name is None]
    assert unnamed == [], "every rule of the example has a name"
    assert sorted(decl.slot_name for decl in declared(modules, ast.DefaultDecl)) == sorted(RETAIL_SLOTS)
    assert {decl.slot_name for decl in declared(modules, ast.RuleDecl)} == RETAIL_SLOTS


def test_retail_declares_and_uses_the_click_model():
    modules = retail_modules()
    models = {decl.name.name: decl.path.value for decl in declared(modules, ast.ModelDecl)}
    assert models == {"p_click": "models/p_click.onnx"}
    used = [
        node
        for decl in declared(modules, ast.RuleDecl)
        for node in walk(decl.condition)
        if isinstance(node, ast.Name) and node.name == "p_click"
    ]
    assert len(used) == 2  # electronics_accessories, and hero_test's model arm (hero_by_model)


def test_retail_uses_everything_it_declares():
    modules = retail_modules()
    shown = {decl.content.name for decl in declared(modules, ast.RuleDecl) + declared(modules, ast.DefaultDecl)}
    assert {decl.name.name for decl in declared(modules, ast.ContentDecl)} == shown
    conditions = [decl.condition for decl in declared(modules, ast.SegmentDecl) + declared(modules, ast.RuleDecl)]
    referenced = {node.name for c in conditions for node in walk(c) if isinstance(node, ast.Name)}
    assert {decl.name.name for decl in declared(modules, ast.SegmentDecl)} <= referenced
    for decl in declared(modules, ast.ContentDecl):
        assert isinstance(decl.payload, dict) and decl.payload.get("id"), decl.name.name


def test_retail_readme_names_every_file():
    readme = (RETAIL / "README.md").read_text(encoding="utf-8")
    for path in RETAIL_FILES:
        assert path.name in readme


OTHER_DOCS = sorted(path for path in (ROOT / "docs").glob("*.md") if path != DOC)
OTHER_BLOCKS = [
    (path, block)
    for path in OTHER_DOCS
    for block in read_blocks(path.read_text(encoding="utf-8"))
    if block.lang == "rules"
]


@pytest.mark.parametrize(("path", "block"), OTHER_BLOCKS, ids=[f"{p.name}:{b.line}" for p, b in OTHER_BLOCKS])
def test_rules_blocks_in_other_docs_compile(path: Path, block: Block):
    module = parse(block.text, "example.rules")
    assert check_errors([module]) == [], f"the ```rules block at {path.name} line {block.line}"
    assert format_text(block.text) == block.text
