"""``tailor simulate``: a synthetic clickstream of the retail example shop, or a simulated shop driving a server."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from .parser import Parser, typed
from .remote import api_key
from .terminal import plural


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "simulate",
        help="write a synthetic clickstream, or drive a server with simulated users and their feedback",
        description="Without --url: write a synthetic clickstream (JSON lines, in time order): users with latent "
        "interests, sessions of views, clicks, add-to-carts and purchases, profile events, and impressions of the "
        "retail hero banners whose clicks depend on what the user did before. The same seed gives the same file.\n\n"
        "With --url: drive a running server with simulated users of the retail example. Each user is a persona "
        "(VIP, electronics fan, lapsed buyer, newcomer, visitor) whose profile and past events make rules fire; "
        "it asks for the home, product and cart pages and answers every slot with feedback: an impression, a click "
        "at the true click-through rate of its (persona, content), dwell time, and sometimes a conversion. One "
        "content is ignored by everyone, so the KPIs and `tailor report` have a known answer. The summary "
        "(what was sent, per slot, rule and content, and the true rates) goes to --out, or stdout.",
        epilog="examples:\n  tailor simulate --users 3000 --days 28 --seed 7 --out events.jsonl\n"
        "  tailor simulate --url http://localhost:8080 --users 2000 --out sent.json",
    )
    parser.add_argument("--users", type=int, required=True, metavar="N", help="how many users")
    parser.add_argument("--days", type=int, metavar="D", help="how many days, from 2026-01-01 (clickstream)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="the file to write (clickstream: required)")
    parser.add_argument("--seed", type=int, metavar="S", help="the random seed (default: %(default)s)")
    parser.add_argument("--url", metavar="URL", help="drive the server at URL instead of writing a clickstream")
    parser.add_argument("--world", default="retail", help="the simulated shop (default: %(default)s)")
    parser.add_argument(
        "--lift",
        action="append",
        default=[],
        metavar="RULE=FRACTION",
        help="raise the true click rate of RULE's decisions (0.2: by 20%%); repeatable",
    )
    parser.add_argument(
        "--drop-clicks",
        action="append",
        default=[],
        metavar="RULE=FRACTION",
        help="lose that share of RULE's clicks before they reach the server, as a broken tag would; repeatable",
    )
    parser.add_argument(
        "--drop-users",
        action="append",
        default=[],
        metavar="EXPERIMENT:ARM=FRACTION",
        help="lose that share of an arm's users before they reach the server, as a page broken for one arm "
        "would: a sample ratio mismatch to detect; repeatable",
    )
    parser.add_argument("--api-key", metavar="KEY", help="for a server with a key (default: $TAILOR_API_KEY)")
    parser.defaults_from(_simulation_defaults)
    return parser


def _simulation_defaults() -> dict[str, str]:
    """The simulation's own default seed, read once simulate is used, as the runtime is."""
    from tailor.runtime.simulate import simulate_to

    return {"seed": typed(inspect.signature(simulate_to).parameters["seed"].default)}


def run(args: argparse.Namespace) -> int:
    if args.users < 1:
        print("tailor: --users must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.url is not None:
        return _drive(args)
    if args.days is None or args.out is None:
        print("tailor: a clickstream needs --days and --out (or give --url to drive a server)", file=sys.stderr)
        return EXIT_USAGE
    if args.days < 1:
        print("tailor: --days must be at least 1", file=sys.stderr)
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


def _drive(args: argparse.Namespace) -> int:
    from tailor.runtime.feedback_simulation import SimulationFailed, simulate_feedback
    from tailor.runtime.feedback_world import WORLDS

    world = WORLDS.get(args.world)
    if world is None:
        print(f"tailor: no simulated world {args.world!r} (known: {', '.join(sorted(WORLDS))})", file=sys.stderr)
        return EXIT_USAGE
    try:
        lifts = _fractions(args.lift, "--lift")
        drops = _fractions(args.drop_clicks, "--drop-clicks")
        lost = _fractions(args.drop_users, "--drop-users")
        simulation = simulate_feedback(
            args.url,
            world,
            args.users,
            seed=args.seed,
            api_key=api_key(args),
            lifts=lifts,
            drop_clicks=drops,
            drop_users=lost,
        )
    except ValueError as exc:
        print(f"tailor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SimulationFailed, OSError) as exc:
        print(f"tailor: the simulation stopped: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    text = json.dumps(simulation.to_dict(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    print(
        f"simulated {plural(simulation.users, 'user')}: {simulation.decisions:,} decisions, "
        f"{simulation.feedback_items:,} feedback items",
        file=sys.stderr,
    )
    return EXIT_OK


def _fractions(pairs: list[str], flag: str) -> dict[str, float]:
    """``RULE=FRACTION`` pairs, each fraction at least 0 (a lift may pass 1)."""
    fractions = {}
    for pair in pairs:
        rule, sep, raw = pair.partition("=")
        try:
            fraction = float(raw)
        except ValueError:
            fraction = -1.0
        if not sep or not rule or not fraction >= 0:
            raise ValueError(f"{flag} takes RULE=FRACTION with a fraction of at least 0, not {pair!r}")
        fractions[rule] = fraction
    return fractions
