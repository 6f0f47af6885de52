"""Per-file caching of normalized rules: a reload normalizes only what changed, never serving a stale entry."""

from __future__ import annotations

from pathlib import Path

from tailor.compiler.normal_cache import NormalCache
from tailor.dsl.loader import ParseCache
from tailor.runtime.ruleset_loader import compile_path

FILES = {
    "a.rules": """
content a = {"id": 1}
content b = {"id": 2}
segment fan = views("Electronics", 24h) > 2
rule fans when fan and context.page == "deals" then show a in hero priority 5
default show b in hero
""",
    "b.rules": """
rule gold when user.tier == "gold" or fan then show b in hero priority 3
rule capped when context.page in ["home", "deals"] then show a in hero priority 1 cap 3 per 1d
""",
    "c.rules": """
rule plain when user.age > 30 and user.age > 40 then show a in side
""",
}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)


def normal_forms(root: Path, normal_cache: NormalCache | None = None, cache: ParseCache | None = None):
    loaded = compile_path(root, cache=cache, normal_cache=normal_cache)
    assert loaded.compilation.ok, loaded.diagnostics
    rules = loaded.compilation.normal.rules
    forms = [(r.rule.name, r.rule.order, r.condition, r.disjuncts, r.cap) for r in rules]
    return forms, loaded.compilation.compiled.source


def test_unchanged_files_are_not_normalized_again(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache, parse_cache = NormalCache(), ParseCache()
    first = normal_forms(tmp_path, cache, parse_cache)
    assert (cache.hits, cache.misses) == (0, 3)
    assert normal_forms(tmp_path, cache, parse_cache) == first
    assert (cache.hits, cache.misses) == (3, 3)
    write(tmp_path, {"c.rules": FILES["c.rules"].replace("> 40", "> 50")})
    edited = normal_forms(tmp_path, cache, parse_cache)
    assert (cache.hits, cache.misses) == (5, 4)
    assert edited == normal_forms(tmp_path)  # as a compile without the cache makes it
    assert edited != first


def test_an_earlier_file_growing_moves_the_later_rules(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache = NormalCache()
    normal_forms(tmp_path, cache)
    write(tmp_path, {"a.rules": FILES["a.rules"] + 'rule extra when user.tier == "new" then show b in hero\n'})
    assert normal_forms(tmp_path, cache) == normal_forms(tmp_path)
    assert cache.hits == 2  # b and c kept their normal forms; their rules' order is the new one


def test_a_segment_changed_in_another_file_invalidates_the_files_using_it(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache = NormalCache()
    before = normal_forms(tmp_path, cache)
    write(tmp_path, {"a.rules": FILES["a.rules"].replace("> 2", "> 7")})
    after = normal_forms(tmp_path, cache)
    assert after == normal_forms(tmp_path)
    gold = {name: condition for name, _, condition, _, _ in after[0]}["gold"]
    assert gold != {name: condition for name, _, condition, _, _ in before[0]}["gold"]
    assert cache.hits == 0  # b.rules did not change, yet its entry was not served


def test_an_attribute_typed_in_another_file_invalidates(tmp_path: Path) -> None:
    files = {
        "a.rules": 'content a = {"id": 1}\nrule r when user.vip then show a in s\n',
        "b.rules": "rule q when user.age > 3 then show a in s\n",
    }
    write(tmp_path, files)
    cache = NormalCache()
    normal_forms(tmp_path, cache)
    write(tmp_path, {"b.rules": "rule q when user.age > 3 and user.member then show a in s\n"})
    assert normal_forms(tmp_path, cache) == normal_forms(tmp_path)
    assert cache.hits == 0  # a new attribute in b changes the types table a's rules were normalized under
