"""Per-file caching of checks and normal forms: a reload redoes only what changed, never serving a stale entry."""

from __future__ import annotations

from pathlib import Path

from tailor.compiler.file_cache import FileCache
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


def counts(cache: FileCache) -> list[tuple[int, int]]:
    return [(cache.check.hits, cache.check.misses), (cache.normal.hits, cache.normal.misses)]


def normal_forms(root: Path, file_cache: FileCache | None = None, cache: ParseCache | None = None):
    loaded = compile_path(root, cache=cache, file_cache=file_cache)
    assert loaded.compilation.ok, loaded.diagnostics
    rules = loaded.compilation.normal.rules
    forms = [(r.rule.name, r.rule.order, r.condition, r.disjuncts, r.cap) for r in rules]
    return forms, loaded.compilation.compiled.source


def test_unchanged_files_are_not_normalized_again(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache, parse_cache = FileCache(), ParseCache()
    first = normal_forms(tmp_path, cache, parse_cache)
    assert counts(cache) == [(0, 3), (0, 3)]
    assert normal_forms(tmp_path, cache, parse_cache) == first
    assert counts(cache) == [(3, 3), (3, 3)]
    write(tmp_path, {"c.rules": FILES["c.rules"].replace("> 40", "> 50")})
    edited = normal_forms(tmp_path, cache, parse_cache)
    assert counts(cache) == [(5, 4), (5, 4)]
    assert edited == normal_forms(tmp_path)  # as a compile without the cache makes it
    assert edited != first


def test_an_earlier_file_growing_moves_the_later_rules(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache = FileCache()
    normal_forms(tmp_path, cache)
    write(tmp_path, {"a.rules": FILES["a.rules"] + 'rule extra when context.page == "new" then show b in hero\n'})
    assert normal_forms(tmp_path, cache) == normal_forms(tmp_path)
    assert counts(cache) == [(2, 4), (2, 4)]  # b and c kept their checks and normal forms, their rules' order is new


def test_a_segment_changed_in_another_file_invalidates_the_files_using_it(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    cache = FileCache()
    before = normal_forms(tmp_path, cache)
    write(tmp_path, {"a.rules": FILES["a.rules"].replace("> 2", "> 7")})
    after = normal_forms(tmp_path, cache)
    assert after == normal_forms(tmp_path)
    gold = {name: condition for name, _, condition, _, _ in after[0]}["gold"]
    assert gold != {name: condition for name, _, condition, _, _ in before[0]}["gold"]
    assert cache.normal.hits == 0  # b.rules did not change, yet its normal forms were made again


def test_an_attribute_typed_in_another_file_invalidates(tmp_path: Path) -> None:
    files = {
        "a.rules": 'content a = {"id": 1}\nrule r when user.vip then show a in s\n',
        "b.rules": "rule q when user.age > 3 then show a in s\n",
    }
    write(tmp_path, files)
    cache = FileCache()
    normal_forms(tmp_path, cache)
    write(tmp_path, {"b.rules": "rule q when user.age > 3 and user.member then show a in s\n"})
    assert normal_forms(tmp_path, cache) == normal_forms(tmp_path)
    assert cache.normal.hits == 0  # a new attribute in b changes the types table a's rules were normalized under
    assert cache.check.hits == 1  # while a's check, which came before b's, stands


def test_a_type_inferred_in_an_earlier_file_is_checked_again_in_a_later_one(tmp_path: Path) -> None:
    files = {
        "a.rules": 'content a = {"id": 1}\nrule r when user.level > 3 then show a in s\n',
        "b.rules": 'rule q when user.level == "gold" then show a in s\n',
    }
    write(tmp_path, {**files, "a.rules": 'content a = {"id": 1}\nrule r when user.other > 3 then show a in s\n'})
    cache = FileCache()
    normal_forms(tmp_path, cache)
    write(tmp_path, files)  # now a types user.level as a number, which b compares to text
    loaded = compile_path(tmp_path, file_cache=cache)
    assert [d.code for d in loaded.diagnostics] == ["type"]
    assert loaded.diagnostics[0].span.file.endswith("b.rules")
    assert cache.check.hits == 0


def test_a_file_with_problems_is_not_kept(tmp_path: Path) -> None:
    write(tmp_path, {"a.rules": 'content a = {"id": 1}\nrule r when user.x > 1 then show nothing in s\n'})
    cache = FileCache()
    for _ in range(2):
        loaded = compile_path(tmp_path, file_cache=cache)
        assert [d.code for d in loaded.diagnostics] == ["unknown-name"]
    assert cache.check.hits == 0
