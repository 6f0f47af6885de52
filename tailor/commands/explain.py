"""``tailor explain``: show what a visitor would be shown, and why, from the rules or a running server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tailor.dsl.diagnostics import RulesError

from .assignments import assignments
from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser
from .paths import missing
from .remote import api_key, server_json
from .terminal import print_diagnostics


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "explain",
        help="show what a visitor would be shown, and why",
        description="Decide for one visitor and show, per slot, the candidate rules and the value that settled "
        'each. VALUE is read as JSON when it is JSON (3, true, "gold", [1, 2]), else as text. A feature is named '
        "as in the rules, spacing and window unit aside (views(1d) is views(24h)).",
        epilog="example:\n  tailor explain rulesets/retail --user u1 --context page=home \\\n"
        "      --feature 'views(\"Electronics\", 24h)=3' --feature p_click=0.8 --slot hero\n"
        "  tailor explain --url http://127.0.0.1:8080 --user u1 --context page=home",
    )
    parser.add_argument("path", type=Path, nargs="?", metavar="PATH", help="a .rules file or a directory of them")
    parser.add_argument("--user", default="anonymous", metavar="ID", help="the user id (default: anonymous)")
    parser.add_argument(
        "--context", action="append", default=[], metavar="KEY=VALUE", help="a request attribute (repeatable)"
    )
    parser.add_argument(
        "--feature", action="append", default=[], metavar="TEXT=VALUE", help="a feature value by its text (repeatable)"
    )
    parser.add_argument("--slot", action="append", metavar="SLOT", help="explain only this slot (repeatable)")
    parser.add_argument("--at", type=float, metavar="EPOCH", help="decide as of this time (epoch seconds)")
    parser.add_argument(
        "--no-consent",
        action="store_true",
        help="decide as for a user who declined personalization: rules reading personal data are skipped",
    )
    parser.add_argument("--url", help="ask a running server (its base URL) instead of reading PATH")
    parser.add_argument(
        "--api-key", metavar="KEY", help="the server's API key, if it has one (default: $TAILOR_API_KEY)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    context = assignments(args.context, "--context")
    features = assignments(args.feature, "--feature")
    if context is None or features is None:
        return EXIT_USAGE
    if args.url:
        return _explain_remote(args, context, features)
    if args.path is None:
        print("tailor: explain needs a PATH, or --url of a running server", file=sys.stderr)
        return EXIT_USAGE
    if missing([args.path]):
        return EXIT_USAGE
    from tailor.runtime.engine import Engine
    from tailor.runtime.ruleset_loader import load
    from tailor.runtime.supplied_features import InvalidFeatures, SuppliedFeatures

    try:
        ruleset = load(args.path)
    except RulesError as exc:
        print_diagnostics(exc.diagnostics, "text")
        return EXIT_PROBLEMS
    unknown = [slot for slot in args.slot or () if slot not in ruleset.slots]
    if unknown:
        print(f"tailor: no slot {unknown[0]!r}; the slots are {', '.join(ruleset.slots)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        supplied, ignored = SuppliedFeatures(ruleset.plan.features).apply(features)
    except InvalidFeatures as exc:
        for key, why in exc.problems:
            print(f"tailor: --feature {key}: {why}", file=sys.stderr)
        return EXIT_USAGE
    _say_ignored(ignored)
    consent = False if args.no_consent else None
    explanation = Engine(ruleset).explain(args.user, context, args.slot, supplied, args.at, consent)
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
    if args.no_consent:
        body["consent"] = False
    data = server_json(url, body, api_key(args))
    if data is None:
        return EXIT_PROBLEMS
    if not isinstance(data, dict) or not isinstance(data.get("explain"), dict):
        print(f"tailor: {url}: the answer is not an explanation", file=sys.stderr)
        return EXIT_PROBLEMS
    ignored = data.get("ignored_features")
    _say_ignored(ignored if isinstance(ignored, list) else ())
    ref = data.get("ruleset")
    name, version = (ref.get("name"), ref.get("version")) if isinstance(ref, dict) else (ref, "?")
    print(f"ruleset {name} (version {version}), user {args.user}")
    print(render_explain_json(data))
    return EXIT_OK


def _say_ignored(keys: Sequence[str]) -> None:
    """Features given that the ruleset does not read: a typo must not look like a value that changed nothing."""
    for key in keys:
        where = " (context attributes go in --context)" if key.lstrip().startswith("context") else ""
        print(f"tailor: --feature {key}: not used, the ruleset does not read it{where}", file=sys.stderr)
