"""The ``tailor`` command line.

Exit codes follow the usual convention of linters and formatters: 0 when all
is well, 1 when the input has problems (errors, or files ``fmt --check``
would change), 2 for a usage error such as a path that does not exist.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tailor.compiler.frontend import has_errors, lint_path
from tailor.dsl.ast import DURATION_UNITS
from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity, render, render_github
from tailor.dsl.formatter import format_text
from tailor.dsl.loader import display_name, rules_files
from tailor.runtime.loading import check_models

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class _Parser(argparse.ArgumentParser):
    """Shows examples under each command's help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tailor", description="Personalization rules: lint, format, compile and serve them.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    lint = commands.add_parser(
        "lint",
        help="check rules for errors and likely mistakes",
        description="Check .rules files for errors and likely mistakes.",
        epilog="example:\n  tailor lint rulesets/retail\n  tailor lint --format github rulesets/",
    )
    lint.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    lint.add_argument("--strict", action="store_true", help="fail on warnings too")
    lint.add_argument(
        "--retention",
        type=_duration,
        default="30d",
        metavar="DURATION",
        help="how long the server keeps events; longer windows are flagged (default: 30d)",
    )
    lint.set_defaults(run=_lint)

    fmt = commands.add_parser(
        "fmt",
        help="rewrite rules files in the canonical style",
        description="Rewrite .rules files in the canonical style (use - to format standard input).",
        epilog="example:\n  tailor fmt rulesets/\n  tailor fmt --check rulesets/   # in CI",
    )
    fmt.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (- for standard input)")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 and list files that would change")
    mode.add_argument("--diff", action="store_true", help="change nothing; print what would change as a diff")
    fmt.set_defaults(run=_fmt)

    compile_ = commands.add_parser(
        "compile",
        help="compile a ruleset and show its decision plan",
        description="Compile a ruleset and show the decision plan, its DAG, or the generated Python.",
        epilog="example:\n  tailor compile rulesets/retail --emit plan\n"
        "  tailor compile rulesets/retail --emit dot | dot -Tsvg > plan.svg",
    )
    compile_.add_argument("path", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    compile_.add_argument("--emit", choices=("plan", "dot", "python"), default="plan", help="what to print")
    compile_.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    compile_.set_defaults(run=_compile)

    serve = commands.add_parser(
        "serve",
        help="serve decisions over HTTP, reloading the rules as they change",
        description="Serve decisions over HTTP. Edits to the rules are picked up without a restart; "
        "without --redis, events and profiles live in memory.",
        epilog="example:\n  tailor serve rulesets/retail\n"
        "  tailor serve rulesets/retail --redis redis://localhost:6379/0 --host 0.0.0.0 --api-key $KEY",
    )
    serve.add_argument("path", type=Path, metavar="PATH", help="a .rules file or a directory of them")
    serve.add_argument("--redis", metavar="URL", help="keep events and profiles in Redis (redis://host:port/db)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="the port to listen on (default: 8080)")
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="processes (more than 1 needs --redis)")
    serve.add_argument(
        "--deadline-ms", type=float, default=50.0, metavar="MS", help="time for a decision's store read (default: 50)"
    )
    serve.add_argument(
        "--retention", type=_duration, default="30d", metavar="DURATION", help="how long events count (default: 30d)"
    )
    serve.add_argument("--stats", type=Path, metavar="FILE", help="predicate statistics for ordering (JSON)")
    serve.add_argument(
        "--stats-sample", type=int, default=16, metavar="N", help="sample 1 decision in N for statistics (0: none)"
    )
    serve.add_argument("--api-key", metavar="KEY", help="require it for writes (default: $TAILOR_API_KEY)")
    serve.add_argument("--protect-reads", action="store_true", help="require the API key for reads too")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)

    stats = commands.add_parser(
        "stats",
        help="download the predicate statistics a server has sampled",
        description="Download the predicate pass rates a running server has sampled, "
        "for tailor compile --stats and tailor serve --stats.",
        epilog="example:\n  tailor stats --url http://127.0.0.1:8080 --out stats.json\n"
        "  tailor compile rulesets/retail --stats stats.json",
    )
    stats.add_argument("--url", required=True, help="the server's base URL")
    stats.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    stats.add_argument("--api-key", metavar="KEY", help="for a server that protects reads (default: $TAILOR_API_KEY)")
    stats.set_defaults(run=_stats)

    test = commands.add_parser(
        "test",
        help="run the rule tests (*_test.rules) of a ruleset",
        description="Run the tests in the *_test.rules files of a ruleset against the compiled rules. "
        "Models do not run: a test gives the scores it needs. A failure shows why the slot was decided "
        "as it was.",
        epilog="example:\n  tailor test rulesets/retail\n  tailor test rulesets/retail -k vip\n"
        "  tailor test rulesets/retail --coverage --threshold 100\n"
        "  tailor test rulesets/retail --format junit > report.xml",
    )
    test.add_argument(
        "path", type=Path, metavar="PATH", help="a ruleset directory, a .rules file or a _test.rules file"
    )
    test.add_argument("-k", dest="pattern", metavar="PATTERN", help="run only tests whose title contains PATTERN")
    test.add_argument("--coverage", action="store_true", help="report which rules and predicates the tests exercise")
    test.add_argument(
        "--threshold", type=float, metavar="PCT", help="fail when under PCT percent of the rules win in some test"
    )
    test.add_argument("--format", choices=("text", "json", "junit"), default="text", help="output format")
    test.set_defaults(run=_test)

    explain_ = commands.add_parser(
        "explain",
        help="show what a visitor would be shown, and why",
        description="Decide for one visitor and show, per slot, the candidate rules and the value that settled "
        'each. VALUE is read as JSON when it is JSON (3, true, "gold", [1, 2]), else as text.',
        epilog="example:\n  tailor explain rulesets/retail --user u1 --context page=home \\\n"
        "      --feature 'views(\"Electronics\", 24h)=3' --feature p_click=0.8 --slot hero\n"
        "  tailor explain --url http://127.0.0.1:8080 --user u1 --context page=home",
    )
    explain_.add_argument("path", type=Path, nargs="?", metavar="PATH", help="a .rules file or a directory of them")
    explain_.add_argument("--user", default="anonymous", metavar="ID", help="the user id (default: anonymous)")
    explain_.add_argument(
        "--context", action="append", default=[], metavar="KEY=VALUE", help="a request attribute (repeatable)"
    )
    explain_.add_argument(
        "--feature", action="append", default=[], metavar="TEXT=VALUE", help="a feature value by its text (repeatable)"
    )
    explain_.add_argument("--slot", action="append", metavar="SLOT", help="explain only this slot (repeatable)")
    explain_.add_argument("--at", type=float, metavar="EPOCH", help="decide as of this time (epoch seconds)")
    explain_.add_argument("--url", help="ask a running server (its base URL) instead of reading PATH")
    explain_.add_argument(
        "--api-key", metavar="KEY", help="for a server that protects reads (default: $TAILOR_API_KEY)"
    )
    explain_.set_defaults(run=_explain)

    simulate = commands.add_parser(
        "simulate",
        help="write a synthetic clickstream of the retail example shop",
        description="Write a synthetic clickstream (JSON lines, in time order): users with latent interests, "
        "sessions of views, clicks, add-to-carts and purchases, profile events, and impressions of the retail "
        "hero banners whose clicks depend on what the user did before. The same seed gives the same file.",
        epilog="example:\n  tailor simulate --users 3000 --days 28 --seed 7 --out events.jsonl",
    )
    simulate.add_argument("--users", type=int, required=True, metavar="N", help="how many users")
    simulate.add_argument("--days", type=int, required=True, metavar="D", help="how many days, from 2026-01-01")
    simulate.add_argument("--out", type=Path, required=True, metavar="FILE", help="the JSON-lines file to write")
    simulate.add_argument("--seed", type=int, default=0, metavar="S", help="the random seed (default: 0)")
    simulate.set_defaults(run=_simulate)

    train = commands.add_parser(
        "train",
        help="train a click model from an event log and write it as a model file",
        description="Replay an event log into the feature store and train a LightGBM click model on the "
        "features as they were just before each impression of the target contents; write it as an ONNX "
        "model file with its features and holdout metrics in its metadata (see docs/models.md).",
        epilog="example:\n  tailor train --events events.jsonl --label click --target acc-42 \\\n"
        "      --features rulesets/retail/models/p_click.features --out rulesets/retail/models/p_click.onnx\n"
        "  tailor train --events events.jsonl --label click --target acc-42 --out p.onnx \\\n"
        '      --features \'views("Electronics", 24h), since("purchase"), context.device == "mobile"\'',
    )
    train.add_argument("--events", type=Path, required=True, metavar="FILE", help="the event log (JSON lines)")
    train.add_argument(
        "--label", required=True, metavar="TYPE", help="the event type that makes an impression positive (click)"
    )
    train.add_argument(
        "--target",
        required=True,
        nargs="+",
        action="extend",
        metavar="KEY",
        help="the content ids whose impressions are learned from",
    )
    train.add_argument(
        "--features",
        required=True,
        metavar="FILE_OR_LIST",
        help="the model's features: a file with one per line, or a comma-separated list",
    )
    train.add_argument("--out", type=Path, required=True, metavar="FILE", help="the model file to write (.onnx)")
    train.add_argument(
        "--holdout", type=float, default=0.2, metavar="FRACTION", help="the latest rows kept for scoring (default: 0.2)"
    )
    train.add_argument("--seed", type=int, default=0, metavar="N", help="LightGBM's random seed (default: 0)")
    train.add_argument(
        "--label-window",
        type=_duration,
        default="30m",
        metavar="DURATION",
        help="how long after an impression a click counts (default: 30m)",
    )
    train.add_argument(
        "--retention", type=_duration, default="30d", metavar="DURATION", help="as for tailor serve (default: 30d)"
    )
    train.add_argument("--trees", type=int, default=100, metavar="N", help="boosting rounds (default: 100)")
    train.add_argument("--leaves", type=int, default=15, metavar="N", help="leaves per tree (default: 15)")
    train.set_defaults(run=_train)
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh (commands, options, file names).",
        epilog='example:\n  eval "$(tailor completion bash)"   # in ~/.bashrc\n'
        '  eval "$(tailor completion zsh)"    # in ~/.zshrc',
    )
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(run=_completion)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _missing(paths: Sequence[Path]) -> list[Path]:
    missing = [p for p in paths if str(p) != "-" and not Path(p).exists()]
    for path in missing:
        print(f"tailor: {path}: no such file or directory", file=sys.stderr)
    return missing


# --- lint ---


def _lint(args: argparse.Namespace) -> int:
    if _missing(args.paths):
        return EXIT_USAGE
    diagnostics: list[Diagnostic] = []
    for path in args.paths:
        diagnostics.extend(lint_path(path, retention=args.retention))
        diagnostics.extend(check_models(path))
    _print_diagnostics(diagnostics, args.format)
    failing = has_errors(diagnostics) or (args.strict and diagnostics)
    return EXIT_PROBLEMS if failing else EXIT_OK


def _print_diagnostics(diagnostics: list[Diagnostic], output: str) -> None:
    if output == "json":
        print(json.dumps([d.to_dict() for d in diagnostics], indent=2))
        return
    if output == "github":
        for diag in diagnostics:
            print(render_github(diag))
        return
    color = _color(sys.stdout)
    for diag in diagnostics:
        print(render(diag, color=color))
        print()
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        print(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}", file=sys.stderr)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


# --- completion ---


def _completion(args: argparse.Namespace) -> int:
    """Generated from the parser itself, so it never lists a command or option that is gone."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for name, sub in commands.choices.items():
        options = sorted(o for action in sub._actions for o in action.option_strings)
        cases.append(f'    {name}) opts="{" ".join(options)}" ;;')
    script = "\n".join(
        [
            "_tailor() {",
            '  local cur="${COMP_WORDS[COMP_CWORD]}" opts=""',
            '  if [ "$COMP_CWORD" -eq 1 ]; then',
            f'    COMPREPLY=($(compgen -W "{" ".join(commands.choices)} --help" -- "$cur"))',
            "    return",
            "  fi",
            '  case "${COMP_WORDS[1]}" in',
            *cases,
            "  esac",
            '  if [[ "$cur" == -* ]]; then',
            '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
            "  else",
            '    COMPREPLY=($(compgen -f -- "$cur"))',
            "  fi",
            "}",
            "complete -o filenames -F _tailor tailor",
        ]
    )
    if args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    print(script)
    return EXIT_OK


# --- compile ---


def _compile(args: argparse.Namespace) -> int:
    from tailor.compiler.display import plan_dot, plan_text
    from tailor.runtime.loading import load

    if _missing([args.path]) or (args.stats is not None and _missing([args.stats])):
        return EXIT_USAGE
    try:
        ruleset = load(args.path, stats=args.stats)
    except RulesError as exc:
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    except (ValueError, KeyError) as exc:
        print(f"tailor: {args.stats}: not a statistics file ({exc})", file=sys.stderr)
        return EXIT_USAGE
    if args.emit == "python":
        sys.stdout.write(ruleset.compiled.source)
    elif args.emit == "dot":
        sys.stdout.write(plan_dot(ruleset.plan))
    else:
        sys.stdout.write(plan_text(ruleset.plan, ruleset.version))
    return EXIT_OK


# --- serve and stats ---

MIN_RETENTION = 86400.0


def _duration(text: str) -> float:
    """Seconds from a duration written as in rules: 90s, 30m, 24h, 7d, 2w."""
    number, unit = text[:-1], text[-1:]
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h or 2w") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero, and finite")
    return seconds


def _api_key(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get("TAILOR_API_KEY") or None


def _serve(args: argparse.Namespace) -> int:
    if _missing([args.path]) or (args.stats is not None and _missing([args.stats])):
        return EXIT_USAGE
    api_key = _api_key(args)
    problem = None
    if args.workers < 1:
        problem = "--workers must be at least 1"
    elif args.workers > 1 and not args.redis:
        problem = "--workers above 1 needs --redis: each worker would have its own memory store"
    elif args.protect_reads and not api_key:
        problem = "--protect-reads needs an API key (--api-key or TAILOR_API_KEY)"
    elif not 0 < args.deadline_ms < float("inf"):
        problem = "--deadline-ms must be a positive number"
    elif args.retention < MIN_RETENTION:
        problem = "--retention must be at least 1d"
    elif args.stats_sample < 0:
        problem = "--stats-sample must be 0 or more"
    if problem:
        print(f"tailor: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.launch import ServeOptions, serve

    options = ServeOptions(
        path=str(args.path),
        redis=args.redis,
        host=args.host,
        port=args.port,
        workers=args.workers,
        deadline_ms=args.deadline_ms,
        retention=args.retention,
        stats=str(args.stats) if args.stats is not None else None,
        sample_every=args.stats_sample,
        api_key=api_key,
        protect_reads=args.protect_reads,
        access_log=args.access_log,
    )
    try:
        serve(options)
    except RulesError as exc:
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    except (ValueError, KeyError) as exc:
        print(f"tailor: {args.stats}: not a statistics file ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _server_json(url: str, body: object | None, api_key: str | None) -> object | None:
    """GET (or, with a body, POST) JSON from a running server; None after printing why it failed."""
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        print(f"tailor: {url}: the server answered {exc.code} {exc.reason}: {detail}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"tailor: {url}: cannot reach the server ({reason})", file=sys.stderr)
    except ValueError:
        print(f"tailor: {url}: the answer is not JSON", file=sys.stderr)
    return None


def _stats(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/v1/stats"
    data = _server_json(url, None, _api_key(args))
    if data is None:
        return EXIT_PROBLEMS
    if not isinstance(data, dict) or not isinstance(data.get("predicates"), dict):
        print(f"tailor: {url}: the answer is not a statistics file", file=sys.stderr)
        return EXIT_PROBLEMS
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote statistics for {_plural(len(data['predicates']), 'predicate')} to {args.out}", file=sys.stderr)
    return EXIT_OK


# --- test and explain ---


def _test(args: argparse.Namespace) -> int:
    from tailor.runtime.ruletest import dumps, prepare, render_junit, render_text, report_json, run

    if _missing([args.path]):
        return EXIT_USAGE
    if args.threshold is not None and not 0 <= args.threshold <= 100:
        print("tailor: --threshold must be a percentage between 0 and 100", file=sys.stderr)
        return EXIT_USAGE
    suite, diagnostics = prepare(args.path)
    if suite is None:
        _print_diagnostics(diagnostics, "text")
        return EXIT_PROBLEMS
    report = run(suite, args.pattern)
    if args.format == "json":
        print(dumps(report_json(report)))
    elif args.format == "junit":
        sys.stdout.write(render_junit(report))
    else:
        print(render_text(report, coverage=args.coverage or args.threshold is not None, color=_color(sys.stdout)))
    if not report.results:
        print("tailor: no tests " + ("match -k " + repr(args.pattern) if args.pattern else "found"), file=sys.stderr)
    below = args.threshold is not None and report.coverage.rule_percent < args.threshold
    if below:
        print(
            f"tailor: rule coverage {report.coverage.rule_percent:.1f}% is below the threshold {args.threshold:g}%",
            file=sys.stderr,
        )
    return EXIT_PROBLEMS if report.failed or below else EXIT_OK


def _assignments(items: Sequence[str], option: str) -> dict[str, object] | None:
    """KEY=VALUE pairs; a VALUE that is JSON is read as JSON, anything else is text."""
    result: dict[str, object] = {}
    for item in items:
        key, equal, text = item.rpartition("=") if option == "--feature" else item.partition("=")
        if not equal or not key.strip():
            print(f"tailor: {option} {item!r} is not KEY=VALUE", file=sys.stderr)
            return None
        try:
            value: object = json.loads(text)
        except ValueError:
            value = text
        result[key.strip()] = value
    return result


def _explain(args: argparse.Namespace) -> int:
    context = _assignments(args.context, "--context")
    features = _assignments(args.feature, "--feature")
    if context is None or features is None:
        return EXIT_USAGE
    if args.url:
        return _explain_remote(args, context, features)
    if args.path is None:
        print("tailor: explain needs a PATH, or --url of a running server", file=sys.stderr)
        return EXIT_USAGE
    if _missing([args.path]):
        return EXIT_USAGE
    from tailor.runtime.engine import Engine
    from tailor.runtime.loading import load

    try:
        ruleset = load(args.path)
    except RulesError as exc:
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    unknown = [slot for slot in args.slot or () if slot not in ruleset.slots]
    if unknown:
        print(f"tailor: no slot {unknown[0]!r}; the slots are {', '.join(ruleset.slots)}", file=sys.stderr)
        return EXIT_USAGE
    explanation = Engine(ruleset).explain(args.user, context, args.slot, features, args.at)
    print(f"ruleset {ruleset.name} (version {ruleset.version}), user {args.user}")
    print(explanation.render())
    return EXIT_OK


def _explain_remote(args: argparse.Namespace, context: dict[str, object], features: dict[str, object]) -> int:
    from tailor.runtime.ruletest import render_explain_json

    url = args.url.rstrip("/") + "/v1/explain"
    body: dict[str, object] = {"user_id": args.user, "context": context, "features": features}
    if args.slot:
        body["slots"] = args.slot
    if args.at is not None:
        body["at"] = args.at
    data = _server_json(url, body, _api_key(args))
    if data is None:
        return EXIT_PROBLEMS
    if not isinstance(data, dict) or not isinstance(data.get("explain"), dict):
        print(f"tailor: {url}: the answer is not an explanation", file=sys.stderr)
        return EXIT_PROBLEMS
    ref = data.get("ruleset")
    name, version = (ref.get("name"), ref.get("version")) if isinstance(ref, dict) else (ref, "?")
    print(f"ruleset {name} (version {version}), user {args.user}")
    print(render_explain_json(data))
    return EXIT_OK


# --- simulate and train ---


def _simulate(args: argparse.Namespace) -> int:
    if args.users < 1 or args.days < 1:
        print("tailor: --users and --days must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.simulate import simulate_to

    try:
        count = simulate_to(args.out, args.users, args.days, args.seed)
    except OSError as exc:
        print(f"tailor: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {count:,} events of {_plural(args.users, 'user')} over {_plural(args.days, 'day')} to {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    if _missing([args.events]):
        return EXIT_USAGE
    if _looks_like_a_file(args.features) and _missing([Path(args.features)]):
        return EXIT_USAGE
    problem = None
    if not 0 < args.holdout < 1:
        problem = "--holdout must be between 0 and 1 (0.2 scores on the latest fifth of the rows)"
    elif args.retention < MIN_RETENTION:
        problem = "--retention must be at least 1d"
    elif args.trees < 1 or args.leaves < 2:
        problem = "--trees must be at least 1 and --leaves at least 2"
    if problem:
        print(f"tailor: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from tailor.runtime.train import TrainError, TrainOptions, read_feature_list, terminal_progress, train

    options = TrainOptions(
        events=args.events,
        label=args.label,
        targets=tuple(dict.fromkeys(args.target)),
        features=tuple(read_feature_list(args.features)),
        out=args.out,
        holdout=args.holdout,
        seed=args.seed,
        label_window=args.label_window,
        retention=args.retention,
        trees=args.trees,
        leaves=args.leaves,
    )
    try:
        report = train(options, progress=terminal_progress(sys.stderr))
    except TrainError as exc:
        print(f"tailor: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_PROBLEMS
    except OSError as exc:
        print(f"tailor: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {report.out} ({report.size / 1024:.0f} KiB, version {report.version}): "
        f"{_plural(len(options.features), 'feature')}, {report.rows:,} rows "
        f"({report.train_rows:,} to train, {report.holdout_rows:,} to score; {report.positive_rate:.1%} clicked)\n"
        f"holdout AUC {report.auc:.4f}, log-loss {report.logloss:.4f}; "
        f"ONNX Runtime matches LightGBM within {report.agreement:.1g}",
        file=sys.stderr,
    )
    return EXIT_OK


def _looks_like_a_file(spec: str) -> bool:
    """A --features value meant as a file name rather than a list of features."""
    return "(" not in spec and " " not in spec and ("/" in spec or spec.endswith((".txt", ".features")))


# --- fmt ---


def _fmt(args: argparse.Namespace) -> int:
    if _missing(args.paths):
        return EXIT_USAGE
    if args.paths == ["-"]:
        return _fmt_stdin()
    files = [f for p in args.paths for f in _all_rules_files(Path(p))]
    changed: list[Path] = []
    failed = False
    for path in files:
        original = path.read_text(encoding="utf-8")
        try:
            formatted = format_text(original, display_name(path))
        except RulesError as exc:
            _print_diagnostics(exc.diagnostics, "text")
            failed = True
            continue
        if formatted == original:
            continue
        changed.append(path)
        if args.diff:
            name = display_name(path)
            sys.stdout.writelines(
                difflib.unified_diff(
                    original.splitlines(keepends=True), formatted.splitlines(keepends=True), name, name
                )
            )
        elif args.check:
            print(f"would reformat {display_name(path)}")
        else:
            path.write_text(formatted, encoding="utf-8")
            print(f"reformatted {display_name(path)}")
    if args.check or args.diff:
        print(
            f"{_plural(len(changed), 'file')} would be reformatted, {len(files) - len(changed)} already formatted",
            file=sys.stderr,
        )
    if failed or ((args.check or args.diff) and changed):
        return EXIT_PROBLEMS
    return EXIT_OK


def _all_rules_files(root: Path) -> list[Path]:
    """Rules and rule-test files alike: both are formatted."""
    if root.is_file():
        return [root]
    return sorted({*rules_files(root), *rules_files(root, tests=True)})


def _fmt_stdin() -> int:
    try:
        sys.stdout.write(format_text(sys.stdin.read(), "<stdin>"))
    except RulesError as exc:
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
