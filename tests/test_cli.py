"""The command line, run as a user runs it: a subprocess, real files, exit codes."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

CLEAN = 'content generic = {"id": "g"}\nwhen context.page == "home" then show generic in hero\n'


def tailor(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lint_clean_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(
        'content generic = {"id": "g"}\nrule home when context.page == "home" then show generic in hero\n'
        "default show generic in hero\nattribute context.page text\n"
    )
    result = tailor("lint", "shop.rules", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_lint_reports_file_line_column_and_caret(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(CLEAN + "when views(24h) > 2 then show generc in hero\n")
    result = tailor("lint", "shop.rules", cwd=tmp_path)
    assert result.returncode == 1
    assert "shop.rules:3:31: error: unknown content 'generc'" in result.stdout
    assert "did you mean 'generic'?" in result.stdout
    assert "^^^^^^" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_lint_syntax_errors_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.rules").write_text("when x > then show a\nwhen y = 1 then show b\n")
    result = tailor("lint", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.rules:1:10: error:" in result.stdout
    assert "bad.rules:2:8: error:" in result.stdout
    assert "use == to compare" in result.stdout


def test_lint_usage_errors_exit_two(tmp_path: Path) -> None:
    assert tailor("lint", "missing.rules", cwd=tmp_path).returncode == 2
    assert tailor("lint", cwd=tmp_path).returncode == 2
    assert tailor("lint", "--format", "xml", ".", cwd=tmp_path).returncode == 2


def test_lint_json_and_github_formats(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text("when a then show b\n")
    as_json = tailor("lint", "--format", "json", "shop.rules", cwd=tmp_path)
    found = json.loads(as_json.stdout)
    assert as_json.returncode == 1
    assert found[0]["file"] == "shop.rules" and found[0]["line"] == 1 and found[0]["severity"] == "error"
    github = tailor("lint", "--format", "github", "shop.rules", cwd=tmp_path)
    assert github.stdout.startswith("::error file=shop.rules,line=1,col=6::unknown name 'a'")


def test_fmt_rewrites_checks_and_diffs(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    path.write_text('content generic = {"id":"g"}\nwhen   context.page=="home" then show generic in hero\n')
    check = tailor("fmt", "--check", ".", cwd=tmp_path)
    assert check.returncode == 1
    assert "would reformat shop.rules" in check.stdout
    diff = tailor("fmt", "--diff", "shop.rules", cwd=tmp_path)
    assert diff.returncode == 1
    assert '+when context.page == "home" then show generic in hero' in diff.stdout
    assert path.read_text().startswith('content generic = {"id":"g"}')  # --check and --diff change nothing
    assert tailor("fmt", ".", cwd=tmp_path).returncode == 0
    assert path.read_text() == CLEAN
    again = tailor("fmt", "--check", ".", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""


def test_fmt_stdin_and_parse_errors(tmp_path: Path) -> None:
    piped = tailor("fmt", "-", cwd=tmp_path, stdin="when a>1 then show b")
    assert piped.returncode == 0 and piped.stdout == "when a > 1 then show b\n"
    (tmp_path / "bad.rules").write_text("when then\n")
    broken = tailor("fmt", "bad.rules", cwd=tmp_path)
    assert broken.returncode == 1
    assert "bad.rules:1:6: error:" in broken.stdout
    assert (tmp_path / "bad.rules").read_text() == "when then\n"


def test_shell_completion_lists_commands_and_options(tmp_path: Path) -> None:
    script = tailor("completion", "bash", cwd=tmp_path).stdout
    probe = (
        script
        + "\nCOMP_WORDS=(tailor li); COMP_CWORD=1; _tailor; echo ${COMPREPLY[@]}"
        + "\nCOMP_WORDS=(tailor lint --st); COMP_CWORD=2; _tailor; echo ${COMPREPLY[@]}"
    )
    completed = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.stdout.split("\n")[:2] == ["lint", "--strict"]
    assert tailor("completion", "zsh", cwd=tmp_path).stdout.startswith("autoload -U +X bashcompinit")


def test_defaults_are_the_runtimes_own(tmp_path: Path) -> None:
    """Each default is read where the runtime defines it, so a change there changes the command line too."""
    from tailor.cli import build_parser
    from tailor.compiler.lint import DEFAULT_RETENTION
    from tailor.runtime.launch import ServeOptions
    from tailor.runtime.simulate import simulate_to
    from tailor.runtime.train import TrainOptions

    parser = build_parser()
    serve = parser.parse_args(["serve", "rules"])
    served = ServeOptions(path="rules")
    assert (serve.host, serve.port, serve.workers, serve.deadline_ms, serve.stats_sample) == (
        served.host,
        served.port,
        served.workers,
        served.deadline_ms,
        served.sample_every,
    )
    train = parser.parse_args(["train", *train_required()])
    trained = TrainOptions(Path("e"), "click", ("t",), ("f",), Path("o"))
    assert (train.holdout, train.seed, train.label_window, train.trees, train.leaves) == (
        trained.holdout,
        trained.seed,
        trained.label_window,
        trained.trees,
        trained.leaves,
    )
    simulate = parser.parse_args(["simulate", "--users", "1", "--days", "1", "--out", "o"])
    assert simulate.seed == inspect.signature(simulate_to).parameters["seed"].default
    for argv in (["lint", "rules"], ["serve", "rules"], ["train", *train_required()]):
        assert parser.parse_args(argv).retention == DEFAULT_RETENTION == served.retention == trained.retention
    help_text = tailor("serve", "--help", cwd=tmp_path).stdout
    assert f"(default: {served.port})" in help_text and f"(default: {served.host})" in help_text


def train_required() -> list[str]:
    return ["--events", "e", "--label", "click", "--target", "t", "--features", "f", "--out", "o"]


def test_help_imports_neither_the_server_nor_training(tmp_path: Path) -> None:
    """``tailor --help`` and the light commands stay quick: FastAPI, numpy and LightGBM load only when used."""
    probe = (
        "import sys\nfrom tailor.cli import main\n"
        "for argv in (['--help'], ['lint', '--help'], ['completion', 'bash']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = ('fastapi', 'numpy', 'onnxruntime', 'lightgbm',\n"
        "         'tailor.runtime.launch', 'tailor.runtime.http', 'tailor.runtime.train')\n"
        "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stderr.strip() == "[]", result.stderr


def test_lint_says_what_it_checked(tmp_path: Path) -> None:
    """A clean ruleset gets one line on standard error; JSON and GitHub output stay machine-clean."""
    rules = tmp_path / "rules"
    (rules / "pages").mkdir(parents=True)
    (rules / "home.rules").write_text(
        'content generic = {"id": "g"}\nrule home when context.page == "home" then show generic in hero\n'
        "default show generic in hero\nattribute context.page text\n"
    )
    (rules / "pages" / "cart.rules").write_text(
        'rule cart when context.page == "cart" then show generic in side\n'
        'rule big when context.page == "cart" and context.total > 100 then show generic in side priority 2\n'
        "default show generic in side\nattribute context.total number\n"
    )
    (rules / "home_test.rules").write_text("# tests are not part of the ruleset\n")
    result = tailor("lint", "rules", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "rules: 3 rules in 2 files, no problems\n"
    both = tailor("lint", "rules/home.rules", "rules/pages/cart.rules", cwd=tmp_path)
    assert both.returncode == 1  # the cart file alone does not declare its content
    single = tailor("lint", "rules/home.rules", cwd=tmp_path)
    assert single.stderr == "rules/home.rules: 1 rule in 1 file, no problems\n"
    for output, printed in (("json", "[]\n"), ("github", "")):
        machine = tailor("lint", "--format", output, "rules", cwd=tmp_path)
        assert (machine.returncode, machine.stdout, machine.stderr) == (0, printed, "")


def test_lint_counts_the_problems_it_prints(tmp_path: Path) -> None:
    (tmp_path / "bad.rules").write_text("when x > then show a\nwhen y = 1 then show b\n")
    errors = tailor("lint", ".", cwd=tmp_path)
    assert errors.returncode == 1
    assert errors.stderr.splitlines()[-1] == "2 errors, 0 warnings"
    (tmp_path / "bad.rules").write_text('content g = {"id": "g"}\nrule a when views(60d) > 2 then show g in hero\n')
    warnings = tailor("lint", ".", cwd=tmp_path)
    assert warnings.returncode == 0
    # the note, on standard error: what users without consent see in slot hero
    assert warnings.stderr.splitlines()[-1] == "0 errors, 2 warnings, 1 note"
    assert warnings.stdout.count(": warning: ") == 2 and ": note: " not in warnings.stdout
    assert "no problems" not in warnings.stderr


def test_explain_reads_features_as_the_rules_write_them(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(
        'content fan = {"id": "fan"}\ncontent generic = {"id": "g"}\n'
        'rule electronics_fan when views("Electronics", 24h) > 2 then show fan in hero\n'
        "default show generic in hero\n"
    )
    for key in ('views("Electronics",24h)', 'views( "Electronics", 1d )', 'count("view", "Electronics", 1440m)'):
        result = tailor("explain", ".", "--feature", f"{key}=3", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "hero: fan  (by rule electronics_fan)" in result.stdout, key
        assert result.stderr == ""
    ignored = tailor("explain", ".", "--feature", "user.tier=gold", "--feature", "context.page=home", cwd=tmp_path)
    assert ignored.returncode == 0
    assert ignored.stderr.splitlines() == [
        "tailor: --feature user.tier: not used, the ruleset does not read it",
        "tailor: --feature context.page: not used, the ruleset does not read it (context attributes go in --context)",
    ]
    bad = tailor("explain", ".", "--feature", "views(24)=3", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == (
        "tailor: --feature views(24): the window of views() must be a duration, not 24 (did you mean 24h or 24d?)\n"
    )
