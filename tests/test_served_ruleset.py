"""A served ruleset holds its plan, code and source, not its syntax trees; the program is rebuilt from the source."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path

import tailor
from tailor.compiler.display import program_text as check_text
from tailor.compiler.pickled import compacted, dumps
from tailor.dsl import ast
from tailor.runtime.ruleset_loader import compile_path

ROOT = Path(__file__).resolve().parents[1]
RETAIL = ROOT / "rulesets" / "retail"

TEXT = """
content a = {"id": 1}
content b = {"id": 2}
segment fan = views("Electronics", 24h) > 2
rule fans when fan or context.page == "deals" then show a in hero priority 5
when user.tier == "gold" then show b in hero
rule late when context.page == "home" then show b in side
default show b in hero
"""


def _reachable(root: object) -> list[object]:
    """Every object reachable from ``root`` (modules and classes left out)."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


def test_a_served_ruleset_holds_no_syntax_tree() -> None:
    ruleset = tailor.loads(TEXT)
    assert ruleset.plan.program is None
    assert not [obj for obj in _reachable(ruleset) if isinstance(obj, ast.RuleDecl | ast.Compare | ast.Module)]
    # Still complete: it decides, and its contents' payloads are served.
    decision = tailor.Engine(ruleset).decide(context={"page": "deals"})
    assert decision.slots["hero"].content == "a"
    assert decision.slots["hero"].payload == {"id": 1}


def test_the_rebuilt_program_is_the_compiled_one() -> None:
    compilation = compile_path(RETAIL).compilation
    served = tailor.load(RETAIL)
    rebuilt = served.program
    assert check_text(rebuilt) == check_text(compilation.program)
    assert [(r.name, r.decl, r.decl.span.file, r.decl.span.line) for r in rebuilt.rules] == [
        (r.name, r.decl, r.decl.span.file, r.decl.span.line) for r in compilation.program.rules
    ]
    assert served.program is rebuilt  # held by a caller: shared, not parsed again
    assert [info.name for info in served.rules] == [r.name for r in rebuilt.rules]
    assert served.slots == rebuilt.slots


def test_rule_listing_keeps_ruleset_order_and_lines() -> None:
    ruleset = tailor.loads(TEXT, name="shop.rules")
    assert [(r.name, r.slot, r.content, r.file, r.line) for r in ruleset.rules] == [
        ("fans", "hero", "a", "shop.rules", 5),
        ("shop:6", "hero", "b", "shop.rules", 6),
        ("late", "side", "b", "shop.rules", 7),
    ]


def test_a_pickled_ruleset_rebuilds_its_program_and_decides_alike() -> None:
    ruleset = tailor.loads(TEXT)
    copy = pickle.loads(dumps(ruleset))
    assert check_text(copy.program) == check_text(ruleset.program)
    request = {"context": {"page": "home"}, "features": {"user.tier": "gold"}}
    assert tailor.Engine(copy).decide(**request).to_dict() == tailor.Engine(ruleset).decide(**request).to_dict()


def test_compacted_copies_what_it_is_given_once_it_is_large() -> None:
    small = {"rules": [("a", 1), ("b", 2)], "name": "x" * 3}
    assert compacted(small) is small
    large = {"rules": [(str(n), n) for n in range(100_000)]}
    copy = compacted(dict(large))
    assert copy == large and copy["rules"] is not large["rules"]
