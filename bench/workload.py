"""Synthetic rulesets and requests shared by the benchmarks.

The shape follows the compiler issue's workload: rules over a handful of
categorical context and profile attributes and a few dozen counters, three
slots, two to four predicates per rule (``==``, ``in``, ``>`` thresholds).

Requests supply every feature. Their counters come from a simulated event
history, so the windows of one counter are consistent (``views("Books", 1h)``
never exceeds ``views("Books", 24h)``) and most counts are small.

Rules are rare, as in a real ruleset: each tests different attributes (at
most one counter), and is drawn again until the share of sample requests (not
the benchmarks' own) it is true for lies within ``RULE_SHARE``: 0.15% to
0.6%, about 0.35% on average. So with 1,000 rules (333 per slot) over 40% of
the slots fall through to their default and a first-match chain evaluates
about two thirds of the rules per decision; with 10,000 rules about 2% do, and
the chain stops after about 500 rules per slot (about 2.2 times as many rules
evaluated as at 1,000).
"""

from __future__ import annotations

import functools
import random

PAGES = ["home", "product", "cart", "search", "category", "checkout"]
DEVICES = ["mobile", "desktop", "tablet"]
TIERS = ["bronze", "silver", "gold", "platinum"]
COUNTRIES = ["US", "GB", "DE", "FR", "JP", "BR"]
CATEGORIES = ["Electronics", "Books", "Toys", "Garden", "Fashion", "Sports", "Beauty", "Grocery"]
EVENTS = ["views", "clicks", "add_to_carts", "purchases"]
WINDOWS = ["1h", "24h", "7d"]
SLOTS = ["hero", "sidebar", "footer"]

WINDOW_SECONDS = {"1h": 3600, "24h": 86400, "7d": 604800}
# The thresholds a rule may use per counter event: ``> t``.
THRESHOLDS = {"views": range(0, 7), "clicks": range(0, 4), "add_to_carts": range(0, 2), "purchases": range(0, 1)}
# How many events of each kind a visitor had in one category in the last two
# weeks (drawn for each event and category on its own); each event's age is
# drawn from the last hour, day or two weeks alike.
EVENT_COUNTS = {
    "views": [0, 0, 1, 2, 3, 5, 8, 12],
    "clicks": [0, 0, 0, 1, 1, 2, 3, 5],
    "add_to_carts": [0, 0, 0, 0, 1, 1, 2, 3],
    "purchases": [0, 0, 0, 0, 0, 1, 1, 2],
}
# At most this many counter tests in one rule. With more, the few visitors with
# high counts match far more rules than the rest, and slots fall through to
# the default even at 10,000 rules.
MAX_COUNTERS = 1
# The share of sample requests one rule may be true for (see the module's docstring).
RULE_SHARE = (0.0015, 0.006)
# How often each kind of predicate is drawn.
KINDS = [("page", 0.25), ("device", 0.1), ("tier", 0.1), ("country", 0.15), ("counter", 0.4)]


def counters() -> list[str]:
    """The few dozen behavioural counters the workload draws from."""
    return [f'{event}("{category}", {window})' for event in EVENTS for category in CATEGORIES[:4] for window in WINDOWS]


def _event_ages(rng: random.Random) -> dict[tuple[str, str], list[float]]:
    """A visitor's events of the last two weeks: ages in seconds per (event, category)."""
    ages: dict[tuple[str, str], list[float]] = {}
    for event in EVENTS:
        for category in CATEGORIES[:4]:
            ages[event, category] = [
                rng.choice([rng.uniform(0, 3600), rng.uniform(0, 86400), rng.uniform(0, 1_209_600)])
                for _ in range(rng.choice(EVENT_COUNTS[event]))
            ]
    return ages


def request(rng: random.Random) -> dict:
    """One request with every feature supplied: ``{"context": ..., "features": ...}``."""
    context = {"page": rng.choice(PAGES), "device": rng.choice(DEVICES)}
    features: dict[str, object] = {"user.tier": rng.choice(TIERS), "user.country": rng.choice(COUNTRIES)}
    ages = _event_ages(rng)
    for event in EVENTS:
        for category in CATEGORIES[:4]:
            seen = ages.get((event, category), [])
            for window in WINDOWS:
                limit = WINDOW_SECONDS[window]
                features[f'{event}("{category}", {window})'] = sum(1 for age in seen if age <= limit)
    return {"context": context, "features": features}


def requests(n: int, seed: int = 11) -> list[dict]:
    """Requests with every feature supplied: ``{"context": ..., "features": ...}`` each."""
    rng = random.Random(seed)
    return [request(rng) for _ in range(n)]


SAMPLE_SIZE = 4000


@functools.lru_cache(maxsize=1)
def _sample() -> list[dict]:
    """Requests (not those the benchmarks time) on which rules are sized."""
    return requests(SAMPLE_SIZE, seed=1)


@functools.cache
def _truth(kind: str, key: str, value: object) -> int:
    """A bit set over the sample: bit i is set when the predicate holds for request i."""
    bits = 0
    for index, sample in enumerate(_sample()):
        if kind == "context":
            holds = sample["context"][key] in value  # type: ignore[operator]
        elif kind == "profile":
            holds = sample["features"][key] in value  # type: ignore[operator]
        else:
            holds = sample["features"][key] > value  # type: ignore[operator]
        if holds:
            bits |= 1 << index
    return bits


def _one_of(values: list[str]) -> str:
    if len(values) == 1:
        return f'== "{values[0]}"'
    return "in [" + ", ".join(f'"{value}"' for value in values) + "]"


def _draw_predicate(rng: random.Random, kind: str, names: list[str]) -> tuple[str, str, int]:
    """(what it tests, its text, the sample requests it holds for)."""
    if kind == "page":
        page = rng.choice(PAGES)
        return "page", f'context.page == "{page}"', _truth("context", "page", (page,))
    if kind == "device":
        device = rng.choice(DEVICES)
        return "device", f'context.device == "{device}"', _truth("context", "device", (device,))
    if kind == "tier":
        tiers = tuple(rng.sample(TIERS, 2))
        return "tier", f"user.tier {_one_of(list(tiers))}", _truth("profile", "user.tier", tiers)
    if kind == "country":
        countries = tuple(rng.sample(COUNTRIES, rng.choice([1, 2])))
        return "country", f"user.country {_one_of(list(countries))}", _truth("profile", "user.country", countries)
    name = rng.choice(names)
    threshold = rng.choice(THRESHOLDS[name.split("(")[0]])
    category = name.split('"')[1]
    return f"counter:{category}", f"{name} > {threshold}", _truth("counter", name, threshold)


def _kind(rng: random.Random, kinds: list[tuple[str, float]]) -> str:
    pick = rng.random() * sum(weight for _, weight in kinds)
    for kind, weight in kinds:
        pick -= weight
        if pick < 0:
            return kind
    return kinds[-1][0]


def _draw_condition(rng: random.Random, n: int, names: list[str]) -> tuple[list[str], float]:
    """``n`` predicates on different attributes, and the share of the sample all of them hold for.

    The last predicate is drawn a few times, to land in ``RULE_SHARE`` if it can.
    """
    if n > len(KINDS) - 1 + MAX_COUNTERS:
        raise ValueError(f"a rule can test at most {len(KINDS) - 1 + MAX_COUNTERS} different attributes")
    low, high = RULE_SHARE
    kinds = list(KINDS)
    tested: set[str] = set()
    texts: list[str] = []
    holds = (1 << SAMPLE_SIZE) - 1
    n_counters = tries = 0
    while len(texts) < n:
        kind = _kind(rng, kinds)
        feature, text, truth = _draw_predicate(rng, kind, names)
        if feature in tested:  # one test per attribute (and counters of different categories)
            continue
        if len(texts) == n - 1:
            tries += 1
            if tries < 20 and not low <= (holds & truth).bit_count() / SAMPLE_SIZE <= high:
                continue
        tested.add(feature)
        texts.append(text)
        holds &= truth
        if kind == "counter":
            n_counters += 1
        if kind != "counter" or n_counters == MAX_COUNTERS:
            kinds = [entry for entry in kinds if entry[0] != kind]
    return texts, holds.bit_count() / SAMPLE_SIZE


def _rule_condition(rng: random.Random, n: int, names: list[str]) -> str:
    """A condition whose share of the sample is within ``RULE_SHARE`` (or the closest of many tries)."""
    low, high = RULE_SHARE
    best: tuple[float, list[str]] | None = None
    for _ in range(1000):
        texts, share = _draw_condition(rng, n, names)
        if low <= share <= high:
            return " and ".join(texts)
        distance = low - share if share < low else share - high
        if best is None or distance < best[0]:
            best = (distance, texts)
    assert best is not None
    return " and ".join(best[1])


# The example's click model, for rulesets that use one: ``model_share`` of the
# rules also require ``p_click`` above one of these thresholds.
MODEL_NAME = "p_click"
MODEL_FILE = "models/p_click.onnx"
MODEL_THRESHOLDS = (0.2, 0.4, 0.6)


@functools.lru_cache(maxsize=8)
def ruleset_text(
    n_rules: int,
    seed: int = 7,
    conditions: tuple[int, int] = (2, 4),
    model_share: float = 0.0,
    slots: tuple[str, ...] = tuple(SLOTS),
) -> str:
    """A ruleset of ``n_rules`` rules (plus contents and defaults) as source text.

    With ``model_share``, that share of the rules (drawn apart, so the rest of
    the ruleset is the same as without) end in ``and p_click > T``, and the
    ruleset declares the model at ``MODEL_FILE``, relative to its file. Rules
    go to ``slots``, drawn alike.
    """
    rng = random.Random(seed)
    model_rng = random.Random(seed + 1)
    names = counters()
    n_contents = max(10, n_rules // 20)
    lines = [f"ruleset bench_{n_rules}", ""]
    for i in range(n_contents):
        lines.append(f'content c{i} = {{"kind": "banner", "id": "c-{i}"}}')
    lines.append("")
    if model_share:
        lines += [f'model {MODEL_NAME} = "{MODEL_FILE}"', ""]
    for slot in slots:
        lines.append(f"default show c0 in {slot}")
    lines.append("")
    for i in range(n_rules):
        predicates = _rule_condition(rng, rng.randint(*conditions), names)
        if model_share and model_rng.random() < model_share:
            predicates += f" and {MODEL_NAME} > {model_rng.choice(MODEL_THRESHOLDS)}"
        lines.append(f"rule r{i}")
        lines.append(f"  when {predicates}")
        lines.append(f"  then show c{rng.randrange(1, n_contents)} in {rng.choice(slots)}")
        lines.append(f"  priority {rng.randint(0, 100)}")
        lines.append("")
    return "\n".join(lines)


# --- the shapes of the scaling issue: many rules, one per product ---

# Slots of the wide shape: the workload's predicates spread thinly over many placements.
WIDE_SLOTS = 20
# Every this many rules of the SKU shape is a bundle: ``context.sku in [...]`` over a few SKUs.
BUNDLE_EVERY = 10
BUNDLE_SIZE = 3


def wide_ruleset_text(n_rules: int, slots: int = WIDE_SLOTS, seed: int = 7) -> str:
    """The workload's low-cardinality rules (``ruleset_text``) over ``slots`` slots."""
    return ruleset_text(n_rules, seed=seed, slots=tuple(f"slot{i}" for i in range(slots)))


@functools.lru_cache(maxsize=4)
def sku_ruleset_text(n_rules: int, seed: int = 7) -> str:
    """One rule per product: ``context.sku == "sku-N"``, a common personalization pattern.

    The attribute has as many values as there are rules, which is what makes
    this shape costly for anything that compares every constant with every
    rule. Most rules pick a hero banner for one SKU; every ``BUNDLE_EVERY``-th
    names a bundle of ``BUNDLE_SIZE`` SKUs (``in [...]``) for the sidebar, some
    of them on the product page only, so bundles overlap one another and the
    single-SKU rules of the footer, as real campaigns do.
    """
    rng = random.Random(seed)
    n_contents = max(10, n_rules // 20)
    lines = [f"ruleset sku_{n_rules}", ""]
    for i in range(n_contents):
        lines.append(f'content c{i} = {{"kind": "banner", "id": "c-{i}"}}')
    lines.append("")
    for slot in SLOTS:
        lines.append(f"default show c0 in {slot}")
    lines.append("")
    for i in range(n_rules):
        if i % BUNDLE_EVERY == BUNDLE_EVERY - 1:
            skus = ", ".join(f'"sku-{rng.randrange(n_rules)}"' for _ in range(BUNDLE_SIZE))
            page = ' and context.page == "product"' if rng.random() < 0.5 else ""
            condition, slot = f"context.sku in [{skus}]{page}", "sidebar"
        elif i % BUNDLE_EVERY == 0:
            condition, slot = f'context.sku == "sku-{rng.randrange(n_rules)}" and user.tier == "gold"', "footer"
        else:
            condition, slot = f'context.sku == "sku-{i}"', "hero"
        lines.append(f"rule p{i} when {condition} then show c{rng.randrange(1, n_contents)} in {slot}")
        lines.append(f"  priority {rng.randint(0, 100)}")
    lines.append("")
    return "\n".join(lines)


# The shapes by name, as the benchmarks' rows call them, and the rule counts they are measured at.
SHAPES = {"sku": sku_ruleset_text, "wide": wide_ruleset_text}
SHAPE_LABELS = {"sku": "one rule per SKU", "wide": "the workload over 20 slots"}
SHAPE_RULES = (1_000, 10_000, 100_000)
QUICK_SHAPE_RULES = (1_000,)


def shape_text(shape: str, n_rules: int) -> str:
    return SHAPES[shape](n_rules)
