"""``tailor stats``: download the predicate statistics a running server has sampled."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_PROBLEMS
from .parser import Parser
from .remote import api_key, server_json
from .terminal import plural


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "stats",
        help="download the predicate statistics a server has sampled",
        description="Download the predicate pass rates a running server has sampled, "
        "for tailor compile --stats and tailor serve --stats.",
        epilog="example:\n  tailor stats --url http://127.0.0.1:8080 --out stats.json\n"
        "  tailor compile rulesets/retail --stats stats.json",
    )
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--api-key", metavar="KEY", help="for a server that protects reads (default: $TAILOR_API_KEY)")
    return parser


def run(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/v1/stats"
    data = server_json(url, None, api_key(args))
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
        print(f"wrote statistics for {plural(len(data['predicates']), 'predicate')} to {args.out}", file=sys.stderr)
    return EXIT_OK
