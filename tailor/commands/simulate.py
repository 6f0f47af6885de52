"""``tailor simulate``: write a synthetic clickstream of the retail example shop."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_USAGE
from .parser import Parser, typed
from .terminal import plural


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "simulate",
        help="write a synthetic clickstream of the retail example shop",
        description="Write a synthetic clickstream (JSON lines, in time order): users with latent interests, "
        "sessions of views, clicks, add-to-carts and purchases, profile events, and impressions of the retail "
        "hero banners whose clicks depend on what the user did before. The same seed gives the same file.",
        epilog="example:\n  tailor simulate --users 3000 --days 28 --seed 7 --out events.jsonl",
    )
    parser.add_argument("--users", type=int, required=True, metavar="N", help="how many users")
    parser.add_argument("--days", type=int, required=True, metavar="D", help="how many days, from 2026-01-01")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="the JSON-lines file to write")
    parser.add_argument("--seed", type=int, metavar="S", help="the random seed (default: %(default)s)")
    parser.defaults_from(_simulation_defaults)
    return parser


def _simulation_defaults() -> dict[str, str]:
    """The simulation's own default seed, read once simulate is used, as the runtime is."""
    from tailor.runtime.simulate import simulate_to

    return {"seed": typed(inspect.signature(simulate_to).parameters["seed"].default)}


def run(args: argparse.Namespace) -> int:
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
        f"wrote {count:,} events of {plural(args.users, 'user')} over {plural(args.days, 'day')} to {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK
