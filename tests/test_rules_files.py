"""Which files make a ruleset, and what an empty one means.

A Kubernetes ConfigMap volume (see configmap_volume.py) is the layout to get
right: each file must be read once, by its link, never again in the hidden
directory the links point into. An empty file is what a save caught half-way looks like, so it is
an error, for ``tailor lint`` as for hot reload.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from configmap_volume import HOME, SEARCH, configmap

from tailor.dsl.diagnostics import is_problem
from tailor.dsl.loader import read_file, rules_files
from tailor.runtime.ruleset_loader import compile_path, lint_path

EMPTY_FILE = "the file is empty; delete a file to remove its rules"
HOME_TEST = """\
test "gold users see the vip hero"
  given user.tier = "gold"
  expect hero = hero_vip
"""


def test_a_configmap_volume_is_read_once_by_its_links(tmp_path: Path) -> None:
    mount = configmap(tmp_path / "rules", {"home.rules": HOME, "search.rules": SEARCH, "home_test.rules": HOME_TEST})
    assert rules_files(mount) == [mount / "home.rules", mount / "search.rules"]
    assert rules_files(mount, tests=True) == [mount / "home_test.rules"]
    loaded = compile_path(mount)
    assert loaded.diagnostics == []
    ruleset = loaded.ruleset()
    assert ruleset.files == (str(mount / "home.rules"), str(mount / "search.rules"))  # named by their links
    assert {rule.file for rule in ruleset.rules} == {str(mount / "home.rules")}
    assert [d for d in lint_path(mount) if is_problem(d)] == []  # notes (consent, declarations) inform


def test_tailor_lint_accepts_a_configmap_volume_and_its_update(tmp_path: Path) -> None:
    mount = configmap(tmp_path / "rules", {"home.rules": HOME, "search.rules": SEARCH})
    result = subprocess.run([sys.executable, "-m", "tailor.cli", "lint", "rules"], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0, result.stdout
    configmap(mount, {"home.rules": HOME.replace("priority 10", "priority 20"), "search.rules": SEARCH}, "..2026_b")
    assert [p.name for p in mount.iterdir() if p.name.startswith("..2026")] == ["..2026_b"]
    assert compile_path(mount).ruleset().rules[0].priority == 20


def test_hidden_entries_are_skipped_and_a_file_two_links_reach_counts_once(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "stale.rules").write_text("this is not rules")
    (tmp_path / ".#home.rules").symlink_to("user@host.1234")  # an editor's lock file: a dangling link
    (tmp_path / ".home.rules").write_text("hidden")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "home.rules").write_text(HOME)
    (tmp_path / "b").symlink_to("a")  # the same folder again
    (tmp_path / "a" / "loop").symlink_to("..")  # and a loop back up
    (tmp_path / "search.rules").write_text(SEARCH)
    assert rules_files(tmp_path) == [tmp_path / "a" / "home.rules", tmp_path / "search.rules"]
    assert compile_path(tmp_path).diagnostics == []


def test_a_symlinked_folder_is_followed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "search.rules").write_text(SEARCH)
    root = tmp_path / "root"
    root.mkdir()
    (root / "home.rules").write_text(HOME)
    (root / "common").symlink_to(shared)
    assert rules_files(root) == [root / "common" / "search.rules", root / "home.rules"]


def test_an_empty_or_blank_file_is_an_error(tmp_path: Path) -> None:
    for text in ("", " \n\t\n"):
        path = tmp_path / "home.rules"
        path.write_text(text)
        (problem,) = read_file(path).diagnostics
        assert problem.message == EMPTY_FILE
    comment_only = tmp_path / "notes.rules"
    comment_only.write_text("# rules for the summer sale go here\n")
    assert read_file(comment_only).diagnostics == ()


def test_tailor_lint_reports_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "home.rules").write_text(HOME)
    (tmp_path / "search.rules").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "lint", "."], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"search.rules: error: {EMPTY_FILE}" in result.stdout
