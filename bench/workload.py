"""Synthetic rulesets and requests shared by the benchmarks.

The shape follows the compiler issue's workload: rules over a handful of
categorical context and profile attributes and a few dozen counters, three
slots, two to four predicates per rule (``==``, ``in``, ``>`` thresholds).
"""

from __future__ import annotations

import random

PAGES = ["home", "product", "cart", "search", "category", "checkout"]
DEVICES = ["mobile", "desktop", "tablet"]
TIERS = ["bronze", "silver", "gold", "platinum"]
COUNTRIES = ["US", "GB", "DE", "FR", "JP", "BR"]
CATEGORIES = ["Electronics", "Books", "Toys", "Garden", "Fashion", "Sports", "Beauty", "Grocery"]
EVENTS = ["views", "clicks", "add_to_carts", "purchases"]
WINDOWS = ["1h", "24h", "7d"]
SLOTS = ["hero", "sidebar", "footer"]


def counters() -> list[str]:
    """The few dozen behavioural counters the workload draws from."""
    return [f'{event}("{category}", {window})' for event in EVENTS for category in CATEGORIES[:4] for window in WINDOWS]


def _predicate(rng: random.Random, names: list[str]) -> str:
    kind = rng.random()
    if kind < 0.25:
        return f'context.page == "{rng.choice(PAGES)}"'
    if kind < 0.4:
        return f'context.device == "{rng.choice(DEVICES)}"'
    if kind < 0.55:
        tiers = rng.sample(TIERS, 2)
        return f'user.tier in ["{tiers[0]}", "{tiers[1]}"]'
    if kind < 0.65:
        return f'user.country == "{rng.choice(COUNTRIES)}"'
    return f"{rng.choice(names)} > {rng.randint(0, 5)}"


def ruleset_text(n_rules: int, seed: int = 7, conditions: tuple[int, int] = (2, 4)) -> str:
    """A ruleset of ``n_rules`` rules (plus contents and defaults) as source text."""
    rng = random.Random(seed)
    names = counters()
    n_contents = max(10, n_rules // 20)
    lines = [f"ruleset bench_{n_rules}", ""]
    for i in range(n_contents):
        lines.append(f'content c{i} = {{"kind": "banner", "id": "c-{i}"}}')
    lines.append("")
    for slot in SLOTS:
        lines.append(f"default show c0 in {slot}")
    lines.append("")
    for i in range(n_rules):
        predicates = " and ".join(_predicate(rng, names) for _ in range(rng.randint(*conditions)))
        lines.append(f"rule r{i}")
        lines.append(f"  when {predicates}")
        lines.append(f"  then show c{rng.randrange(n_contents)} in {rng.choice(SLOTS)}")
        lines.append(f"  priority {rng.randint(0, 100)}")
        lines.append("")
    return "\n".join(lines)


def requests(n: int, seed: int = 11) -> list[dict]:
    """Requests with every feature supplied: (context, features) pairs."""
    rng = random.Random(seed)
    names = counters()
    result = []
    for _ in range(n):
        context = {"page": rng.choice(PAGES), "device": rng.choice(DEVICES)}
        features = {"user.tier": rng.choice(TIERS), "user.country": rng.choice(COUNTRIES)}
        for name in names:
            features[name] = rng.choice([0, 0, 0, 1, 2, 3, 5, 8])
        result.append({"context": context, "features": features})
    return result
