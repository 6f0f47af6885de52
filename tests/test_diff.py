"""``tailor diff``: logged decisions replayed through two versions, checked against a brute-force comparison."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from decision_logs import write_log
from redis_process import private_redis
from replay_logs import RETAIL, copy_retail, edited, retail_log, write_export

import tailor
from tailor.compiler.decide import Decider
from tailor.compiler.features import FeatureKind
from tailor.runtime.decision_diff import DiffCounter, replay_all
from tailor.runtime.decision_log_stream import FIELD, stream_key
from tailor.runtime.decision_record import DEFAULT_RULE, DecisionRecord
from tailor.runtime.decision_replay import Replayer
from tailor.runtime.diff_formats import render_markdown

GOLDEN = Path(__file__).resolve().parent / "golden" / "diff.md"


def tailor_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def answers(decision: tailor.Decision) -> dict[str, tuple[str | None, str | None]]:
    return {
        slot: (a.content, a.rule if a.rule is not None else (DEFAULT_RULE if a.content is not None else None))
        for slot, a in decision.slots.items()
    }


def brute_force(records: list[DecisionRecord], old: tailor.Ruleset, new: tailor.Ruleset) -> set[str]:
    """The decisions whose answer differs, each request decided anew by both versions' engines from the
    values it logged (models the log did not score run on the logged inputs)."""
    engines = tailor.Engine(old), tailor.Engine(new)
    changed = set()
    for record in records:
        values = {**record.features, **record.models}  # retail's model is read under its name
        before, after = (
            answers(engine.decide(record.user_id, record.context, list(record.slots), values)) for engine in engines
        )
        if before != after:
            changed.add(record.decision_id)
    return changed


def diffed(records: list[DecisionRecord], old: tailor.Ruleset, new: tailor.Ruleset) -> tuple[set[str], DiffCounter]:
    before = Replayer(Decider(old))
    after = Replayer(Decider(new), {name: model.version for name, model in old.models.items()})
    counter = DiffCounter(old.version, new.version)
    changed = {r.decision_id for r in records if counter.add(r, before.replay(r), after.replay(r))}
    return changed, counter


@pytest.fixture(scope="module")
def retail_records() -> list[DecisionRecord]:
    return retail_log(10_000, seed=7)


def test_the_log_is_varied(retail_records: list[DecisionRecord]) -> None:
    assert sum(r.degraded for r in retail_records) > 100
    assert sum(bool(r.models) for r in retail_records) > 1000
    assert len({tuple(r.slots) for r in retail_records}) >= 2


def test_replay_through_the_serving_version_reproduces_every_decision(retail_records: list[DecisionRecord]) -> None:
    replayer = Replayer(Decider(tailor.load(RETAIL)))
    diff = replay_all(retail_records, replayer, replayer)
    assert diff.decisions == len(retail_records) == diff.reproducible
    assert diff.reproduced == len(retail_records)  # 100%
    assert diff.changed == 0 and diff.not_replayable == 0
    assert diff.degraded == sum(r.degraded for r in retail_records) > 0


def test_experiments_holdout_caps_and_degraded_decisions_replay_exactly(tmp_path: Path) -> None:
    path = copy_retail(tmp_path, extras=True)
    ruleset = tailor.load(path)
    cap = next(t for t, ref in ruleset.plan.features.items() if ref.event == "impression" and ref.window == 86400)
    records = retail_log(3000, path, seed=3, extra={cap: (0, 1, 2, 3)})
    assert any(r.holdout for r in records)
    assert any(r.experiments for r in records)
    assert any(r.degraded for r in records)
    capped = [r for r in records if r.features.get(cap, 0) >= 2 and r.slots.get("hero") is not None]
    assert capped
    replayer = Replayer(Decider(ruleset))
    diff = replay_all(records, replayer, replayer)
    assert diff.reproduced == diff.decisions == len(records)
    assert diff.changed == 0


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("home.rules", "p_click > 0.7", "p_click > 0.4"),  # a threshold moved
        ("product.rules", "priority 5", "priority 15"),  # a priority swapped: high_value_shipping over the bundle
        (
            "product.rules",
            "default show sidebar_reviews in sidebar",
            'rule garden_shipping\n  when context.category == "Garden" and total("purchase", "any", 30d) >= 100\n'
            "  then show sidebar_free_shipping in sidebar\n  priority 7\n\ndefault show sidebar_reviews in sidebar",
        ),  # a rule added
    ],
    ids=["threshold", "priority", "rule-added"],
)
def test_the_changed_set_equals_a_brute_force_comparison(
    tmp_path: Path, retail_records: list[DecisionRecord], file: str, old: str, new: str
) -> None:
    before = tailor.load(RETAIL)
    after = tailor.load(edited(RETAIL, tmp_path / "retail", file, old, new))
    changed, counter = diffed(retail_records, before, after)
    expected = brute_force(retail_records, before, after)
    assert changed == expected
    assert len(expected) > 20  # the change matters on this traffic
    report = counter.report()
    assert report.changed == len(expected) and report.decisions == len(retail_records)
    assert report.not_replayable == 0
    assert sum(t.count for slot in report.slots for t in slot.transitions) >= report.changed


def test_a_feature_the_log_lacks_is_not_replayable(tmp_path: Path, retail_records: list[DecisionRecord]) -> None:
    new = edited(
        RETAIL,
        tmp_path / "retail",
        "home.rules",
        "default show hero_generic in hero",
        'rule garden_fans\n  when clicks("Garden", 7d) > 0\n  then show hero_first_order in hero\n  priority 50\n\n'
        "default show hero_generic in hero",
    )
    old = tailor.load(RETAIL)
    diff = replay_all(retail_records, Replayer(Decider(old)), Replayer(Decider(tailor.load(new))))
    needs = [r for r in retail_records if not r.holdout and "hero" in r.slots]
    assert diff.not_replayable == len(needs) > 0
    assert diff.unlogged == {'clicks("Garden", 7d)': len(needs)}
    assert diff.decisions == len(retail_records) - len(needs)
    assert any("not replayable" in note for note in diff.notes)


def test_markdown_matches_the_golden_file(tmp_path: Path, retail_records: list[DecisionRecord]) -> None:
    new = tailor.load(edited(RETAIL, tmp_path / "retail", "home.rules", "p_click > 0.7", "p_click > 0.4"))
    old = tailor.load(RETAIL)
    from tailor.compiler.ruleset_changes import changes

    diff = replay_all(retail_records[:2000], Replayer(Decider(old)), Replayer(Decider(new)), None, changes(old, new))
    diff = dataclasses.replace(diff, old="0123456789abcdef", new="fedcba9876543210")  # versions name the paths
    text = render_markdown(diff, "git:main:rulesets/retail", "rulesets/retail")
    if not GOLDEN.exists():  # written once, then reviewed like code
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_command_on_an_export_file_json_and_fail_over(tmp_path: Path, retail_records: list[DecisionRecord]) -> None:
    export = write_export(tmp_path / "decisions.ndjson", retail_records[:3000])
    new = edited(RETAIL, tmp_path / "retail", "home.rules", "p_click > 0.7", "p_click > 0.4")
    done = tailor_cli("diff", str(RETAIL), str(new), "--replay", str(export), "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["decisions"] == 3000
    changed, _ = diffed(retail_records[:3000], tailor.load(RETAIL), tailor.load(new))
    assert data["changed"] == len(changed) > 0
    hero = next(slot for slot in data["slots"] if slot["slot"] == "hero")
    assert set(hero) == {"slot", "decisions", "changed", "transitions"}
    assert hero["changed"] == len(changed)
    assert hero["transitions"][0]["to"] == {"content": "hero_accessories", "rule": "electronics_accessories"}
    share = len(changed) / 3000
    over = tailor_cli("diff", str(RETAIL), str(new), "--replay", str(export), "--fail-over", f"{share * 100 / 2:g}%")
    assert over.returncode == 1 and "over --fail-over" in over.stderr
    under = tailor_cli("diff", str(RETAIL), str(new), "--replay", str(export), "--fail-over", f"{share * 100 * 2:g}")
    assert under.returncode == 0, under.stderr
    limited = tailor_cli(
        "diff", str(RETAIL), str(RETAIL), "--replay", str(export), "--format", "json", "--limit", "100"
    )
    assert json.loads(limited.stdout)["decisions"] == 100
    assert "against itself" in limited.stderr and "reports 0 changed" in limited.stderr


def test_a_log_directory_and_a_log_of_another_version(tmp_path: Path, retail_records: list[DecisionRecord]) -> None:
    write_log(tmp_path / "log", retail_records[:500], rotated=200)
    other = edited(RETAIL, tmp_path / "retail", "home.rules", "p_click > 0.7", "p_click > 0.4")
    done = tailor_cli("diff", str(other), str(other), "--replay", str(tmp_path / "log"), "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["decisions"] == 500 and data["changed"] == 0
    assert data["self_check"] == {"decisions": 0, "reproduced": None}
    assert "served by another version than the old one" in done.stderr


def test_a_redis_stream(tmp_path: Path, retail_records: list[DecisionRecord]) -> None:
    with private_redis(tmp_path / "redis") as redis_server:
        for record in retail_records[:700]:
            redis_server.client.xadd(stream_key(), {FIELD: orjson.dumps(record.to_dict())})
        done = tailor_cli("diff", str(RETAIL), str(RETAIL), "--replay", redis_server.url, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["decisions"] == 700 and data["self_check"] == {"decisions": 700, "reproduced": 700}


def test_git_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    rules = copy_retail(repo / "rulesets")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "retail"], check=True)
    monkeypatch.chdir(repo)  # the log's versions name the files as the server, run from here, did
    export = write_export(tmp_path / "decisions.ndjson", retail_log(1500, Path("rulesets/retail"), seed=5))
    home = rules / "home.rules"
    home.write_text(home.read_text().replace("p_click > 0.7", "p_click > 0.4"))
    subprocess.run([*git, "-C", str(repo), "commit", "-qam", "a lower threshold"], check=True)
    home.write_text(home.read_text().replace("p_click > 0.4", "p_click > 0.1"))  # not committed: not read
    done = tailor_cli(
        "diff", "git:HEAD~1:rulesets/retail", "git:HEAD:rulesets/retail", "--replay", str(export), "--format", "json",
        cwd=repo,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["self_check"] == {"decisions": 1500, "reproduced": 1500}  # HEAD~1 is the version that served
    assert data["declarations"] == [{"kind": "rule", "name": "electronics_accessories", "change": "changed"}]
    by_paths = tailor_cli(
        "diff", "git:HEAD~1:rulesets/retail", str(tmp_path / "head"), "--replay", str(export), "--format", "json",
        cwd=repo,
    )  # fmt: skip
    assert by_paths.returncode == 2 and "no such file" in by_paths.stderr
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "--", "."], check=True)  # the working tree is HEAD
    head = "git:HEAD:rulesets/retail"
    same = tailor_cli("diff", head, "rulesets/retail", "--replay", str(export), "--format", "json", cwd=repo)
    assert json.loads(same.stdout)["changed"] == 0
    assert data["changed"] > 0
    missing = tailor_cli("diff", "git:nope:rulesets/retail", "rulesets/retail", "--replay", str(export), cwd=repo)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_models_not_scored_in_the_log_run_on_logged_inputs(retail_records: list[DecisionRecord]) -> None:
    ruleset = tailor.load(RETAIL)
    model_texts = [t for t, ref in ruleset.plan.features.items() if ref.kind is FeatureKind.MODEL]
    assert model_texts == ["p_click"]
    unscored = next(r for r in retail_records if not r.models and not r.degraded and r.context["page"] == "home")
    replayed = Replayer(Decider(ruleset), {}).replay(unscored)  # trusts no logged score: runs the model
    assert replayed.unlogged == ()
