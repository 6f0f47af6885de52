"""``tailor kpis``: a running server's KPIs per version, slot, rule and content, with their intervals."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import urlencode

from .exit_codes import EXIT_OK, EXIT_PROBLEMS
from .parser import Parser
from .remote import api_key, server_json

DEFAULT_URL = "http://127.0.0.1:8080"  # tailor serve's own address
FILTERS = ("slot", "rule", "since", "until", "version")


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "kpis",
        help="show a server's KPIs: decisions, impressions, clicks, conversions and their rates",
        description="Show the KPIs a running server keeps, per ruleset version, slot, rule and content: "
        "decisions served, impressions, clicks, conversions and their value, CTR (clicks / impressions) "
        "and conversion rate (conversions / impressions) with 95%% Wilson intervals. Days are UTC.",
        epilog="example:\n  tailor kpis --url http://127.0.0.1:8080 --slot hero --since 2024-05-01\n"
        "  tailor kpis --format json",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="the server's base URL (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")
    parser.add_argument("--slot", help="only this slot")
    parser.add_argument("--rule", help='only this rule ("default" for slots\' defaults)')
    parser.add_argument("--since", metavar="DAY", help="from this UTC day on (YYYY-MM-DD)")
    parser.add_argument("--until", metavar="DAY", help="up to this UTC day, included (YYYY-MM-DD)")
    parser.add_argument("--version", help="only this ruleset version")
    parser.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $TAILOR_API_KEY)")
    return parser


def run(args: argparse.Namespace) -> int:
    query = {name: getattr(args, name) for name in FILTERS if getattr(args, name) is not None}
    url = args.url.rstrip("/") + "/v1/kpis" + (f"?{urlencode(query)}" if query else "")
    data = server_json(url, None, api_key(args))
    if data is None:
        return EXIT_PROBLEMS
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        print(f"tailor: {url}: the answer is not a KPI report", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(table(data["rows"]))
    return EXIT_OK


def _rate(row: dict[str, Any], name: str) -> str:
    """A rate as a percentage with its interval: 4.20% [3.10-5.60]; - without impressions."""
    rate = row[name]
    if rate is None:
        return "-"
    return f"{rate * 100:.2f}% [{row[name + '_low'] * 100:.2f}-{row[name + '_high'] * 100:.2f}]"


COLUMNS = ("version", "slot", "rule", "content", "decisions", "impressions", "clicks", "ctr [95%]")
MORE = ("conversions", "conv. rate [95%]", "value", "value/impr.")


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table; numbers right-aligned."""
    if not rows:
        return "no KPIs yet: serve decisions and send feedback to POST /v1/feedback\n"
    lines = [
        (
            row["version"],
            row["slot"],
            row["rule"],
            row["content"],
            f"{row['decisions']:,}",
            f"{row['impressions']:,}",
            f"{row['clicks']:,}",
            _rate(row, "ctr"),
            f"{row['conversions']:,}",
            _rate(row, "conversion_rate"),
            f"{row['value']:,.2f}",
            "-" if row["value_per_impression"] is None else f"{row['value_per_impression']:,.4f}",
        )
        for row in rows
    ]
    header = (*COLUMNS, *MORE)
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header))]
    text = [header, *lines]
    out = []
    for line in text:
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.ljust(width) if i < 4 else cell.rjust(width) for i, (cell, width) in pairs]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"
