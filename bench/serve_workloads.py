"""The two workloads ``bench.serve`` measures the server on: its own, and one shaped like a real site.

- ``BENCH``: the benchmark's own (``bench.workload``'s 1,000 rules, a few
  thousand users with a few events of each kind per category); beside the
  server with the decision log off, a second server runs with it on, so the
  log's cost is measured too.
- ``SITE``: shaped like a real site: the same 1,000 rules with one
  experiment (two arms, one of them read by a rule) and a holdout, 1,000
  users whose histories are drawn from sessions (most visitors come a few
  times, a few come often; each session browses one or two favourite
  categories, and views lead to clicks, carts and purchases), every slot
  requested, and the server as ``tailor serve --redis`` runs by default:
  every decision written to the decision log's Redis Stream.

Both are measured against the same two floors (``bench.floor_app``), each
in its own run of the workload, with the floors seeded from the same events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tailor.compiler.features import COUNTER_EVENTS
from tailor.runtime.events import Event

from .workload import CATEGORIES, EVENT_COUNTS, EVENTS, ruleset_text

RULES = 1000
TWO_WEEKS = 1_209_600.0

# The experiment of the real-site workload: its treatment arm shows another hero on product pages.
SITE_EXPERIMENT = """
experiment site_hero
  arms control 50%, treatment 50%
  seed "site-hero-2026"

holdout 5%

rule site_hero_treatment
  when site_hero == "treatment" and context.page == "product" and views("Electronics", 7d) > 2
  then show c1 in hero
  priority 50
"""


def bench_events(rng: random.Random, user: str, now: float) -> list[Event]:
    """A visitor's last two weeks: per event kind and category, a few events of varied age."""
    events: list[Event] = []
    for event in EVENTS:
        kind = COUNTER_EVENTS[event]
        for category in CATEGORIES:
            for _ in range(rng.choice(EVENT_COUNTS[event])):
                age = rng.choice([rng.uniform(0, 3600), rng.uniform(0, 86400), rng.uniform(0, TWO_WEEKS)])
                value = round(rng.uniform(5, 200), 2) if kind == "purchase" else None
                events.append(Event(user, kind, category, value, now - age, f"{user}-{len(events)}"))
    return events


def site_events(rng: random.Random, user: str, now: float) -> list[Event]:
    """A visitor's last two weeks as sessions: a heavy-tailed number of them, recent ones likelier.

    In each session the visitor browses one or two of their favourite categories: views, of which some
    are clicked, some clicks put in the cart, and some carts bought.
    """
    view, click, cart, purchase = (COUNTER_EVENTS[name] for name in EVENTS)
    favourites = rng.sample(CATEGORIES, 3)
    sessions = min(40, max(1, round(rng.lognormvariate(1.0, 0.9))))
    events: list[Event] = []

    def add(kind: str, category: str, ts: float, value: float | None = None) -> None:
        events.append(Event(user, kind, category, value, ts, f"{user}-{len(events)}"))

    for _ in range(sessions):
        start = now - min(rng.expovariate(1 / 259_200), TWO_WEEKS - 3600)  # three days on average
        for category in rng.sample(favourites, rng.choice([1, 1, 2])):
            ts = start
            for _ in range(rng.randint(1, 8)):
                ts += rng.uniform(5, 90)
                add(view, category, ts)
                if rng.random() < 0.25:
                    add(click, category, ts + 1)
                    if rng.random() < 0.3:
                        add(cart, category, ts + 2)
                        if rng.random() < 0.35:
                            add(purchase, category, ts + 3, round(rng.uniform(5, 200), 2))
    return [event for event in events if event.ts is not None and event.ts <= now]


@dataclass(frozen=True, slots=True)
class ServeWorkload:
    """What one run of ``bench.serve`` serves, to whom, and with which server flags."""

    name: str
    title: str
    ruleset: str  # the source text
    users: int | None  # None: the settings' number
    events: Callable[[random.Random, str, float], list[Event]]
    server_flags: tuple[str, ...]  # tailor serve's flags for the server the targets compare with the floor
    logged: bool  # also run the server with the decision log on, for the log's own targets


# The plain server runs with the decision log off; the logged one (BENCH) with what serving "with the log on"
# means: by default with --redis, the log is the Redis Stream beside the features, every decision sampled;
# and the closed loop's costliest setting: every served slot an impression.
SERVER_FLAGS: tuple[str, ...] = ("--decision-log", "off")
LOGGED_FLAGS: tuple[str, ...] = ("--impressions", "served")

BENCH = ServeWorkload(
    "bench",
    "bench.serve's workload",
    ruleset_text(RULES),
    None,
    bench_events,
    SERVER_FLAGS,
    logged=True,
)
SITE = ServeWorkload(
    "site",
    "the real-site workload",
    ruleset_text(RULES) + SITE_EXPERIMENT,
    1000,
    site_events,
    (),  # tailor serve --redis as it starts by default: the decision log on, to the Redis Stream
    logged=False,
)
WORKLOADS = (BENCH, SITE)
