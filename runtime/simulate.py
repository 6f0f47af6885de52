"""A synthetic clickstream of the retail example shop, for training and trying models.

Each simulated user has latent interests over the shop's categories, an activity
level, a preferred device and a profile (tier, country). Users come in sessions;
a session opens on the home page, whose hero banner is an *impression* of one
of the retail ruleset's hero contents, then browses categories: views (value:
dwell seconds), clicks, add-to-carts, and at the end a purchase (value: revenue)
or a ``cart_abandoned`` event.

Whether a user clicks the accessories banner (``acc-42``) depends on what they
did before it was shown: recent Electronics views, carts and purchases, earlier
clicks on the banner, how often they have already seen it, and the device. So a
model trained on the events can learn it. The click rates are exaggerated, so
that the example rule ``p_click > 0.7`` fires for the keenest users.

The output is one JSON object per line in time order: the events of the
``/v1/events`` API (user_id, type, key, value, ts, id), impressions with the
request ``context``, and ``profile`` events whose ``attributes`` are what
``PUT /v1/users/{user_id}`` would set (one at each user's start, and another
when a user is upgraded to gold). The same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

START = 1767225600.0  # 2026-01-01T00:00:00Z: the first day simulated
DAY = 86400.0

# The categories the retail ruleset talks about, and what an item costs in each (log-normal mu, sigma).
CATEGORIES = ("Electronics", "Books", "Shoes", "Toys", "Home", "Beauty")
PRICES = {
    "Electronics": (4.6, 0.8),
    "Books": (2.6, 0.4),
    "Shoes": (4.1, 0.4),
    "Toys": (3.3, 0.5),
    "Home": (3.8, 0.6),
    "Beauty": (3.1, 0.4),
}
ACCESSORIES = "acc-42"  # the hero_accessories content of rulesets/retail
HERO_CONTENTS = (
    ACCESSORIES,
    "hero-seasonal",
    "hero-first-order",
    "hero-welcome-back",
    "hero-vip-early-access",
)
HERO_WEIGHTS = (0.4, 0.2, 0.15, 0.15, 0.1)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_WEIGHTS = (0.55, 0.35, 0.1)
TIERS = (None, "bronze", "silver", "gold", "platinum")
TIER_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)
COUNTRIES = ("FR", "DE", "GB", "US", "ES", "IT")
GOLD_SPEND = 600.0  # a user without gold or platinum is upgraded to gold past this revenue


@dataclass(slots=True)
class _User:
    """One user's hidden traits and what they have done so far."""

    user_id: str
    rng: random.Random
    interests: tuple[float, ...]
    sessions_per_day: float
    device: str
    tier: str | None
    country: str
    affinity: float  # an unobserved liking for the accessories banner
    spent: float = 0.0
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[float, str, str]] = field(default_factory=list)  # (ts, type, key), in time order

    def emit(self, ts: float, type_: str, key: str | None = None, value: float | None = None, **extra: Any) -> None:
        event: dict[str, Any] = {"user_id": self.user_id, "type": type_}
        if key is not None:
            event["key"] = key
        if value is not None:
            event["value"] = value
        event["ts"] = round(ts, 3)
        event["id"] = f"{self.user_id}-{self.seq:05d}"
        event.update(extra)
        self.seq += 1
        self.events.append(event)
        if key is not None:
            self.history.append((ts, type_, key))

    def count(self, type_: str, key: str, window: float, now: float) -> int:
        """How many events of the type and key the user had in the window before ``now``."""
        found = 0
        for ts, seen_type, seen_key in reversed(self.history):
            if ts <= now - window:
                break
            if ts < now and seen_type == type_ and seen_key == key:
                found += 1
        return found


def simulate(users: int, days: int, seed: int = 0, start: float = START) -> list[dict[str, Any]]:
    """Every event of ``users`` users over ``days`` days, in time order."""
    if users < 1 or days < 1:
        raise ValueError("simulate needs at least one user and one day")
    events: list[dict[str, Any]] = []
    end = start + days * DAY
    for index in range(users):
        user = _new_user(index, seed)
        _live(user, start, end)
        events.extend(user.events)
    events.sort(key=lambda e: (e["ts"], e["user_id"], e["id"]))
    return events


def write_events(events: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write events as JSON lines; return how many."""
    written = 0
    for event in events:
        out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        written += 1
    return written


def simulate_to(path: Path, users: int, days: int, seed: int = 0) -> int:
    """Simulate into a JSON-lines file; return how many events it holds."""
    events = simulate(users, days, seed)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        return write_events(events, out)


# --- one user's life -------------------------------------------------------------------


def _new_user(index: int, seed: int) -> _User:
    rng = random.Random(f"tailor-simulate:{seed}:{index}")  # one stream per user: users are independent
    raw = [rng.gammavariate(0.6, 1.0) for _ in CATEGORIES]
    total = sum(raw) or 1.0
    return _User(
        user_id=f"u{index:06d}",
        rng=rng,
        interests=tuple(x / total for x in raw),
        sessions_per_day=rng.gammavariate(1.5, 0.4),
        device=rng.choices(DEVICES, DEVICE_WEIGHTS)[0],
        tier=rng.choices(TIERS, TIER_WEIGHTS)[0],
        country=rng.choice(COUNTRIES),
        affinity=rng.gauss(0.0, 0.6),
    )


def _live(user: _User, start: float, end: float) -> None:
    rng = user.rng
    attributes: dict[str, Any] = {"country": user.country}
    if user.tier is not None:
        attributes["tier"] = user.tier
    now = start + rng.uniform(0, 3600)
    user.emit(now, "profile", attributes=attributes)
    rate = max(user.sessions_per_day, 0.02) / DAY
    while True:
        now += rng.expovariate(rate)
        if now >= end:
            return
        now = _session(user, now)


def _session(user: _User, now: float) -> float:
    """One visit starting at ``now``; returns when it ended."""
    rng = user.rng
    device = user.device if rng.random() < 0.75 else rng.choice(DEVICES)
    focus = _category(user)
    cart: dict[str, float] = {}
    if rng.random() < 0.85:
        now, clicked = _home(user, now, device)
        if clicked:
            focus = "Electronics"  # the banner leads to the accessories
    for _ in range(1 + int(rng.expovariate(1 / 4))):
        category = focus if rng.random() < 0.7 else _category(user)
        dwell = min(rng.lognormvariate(3.3, 0.8), 900.0)
        user.emit(now, "view", category, round(dwell, 1))
        if rng.random() < 0.25:
            user.emit(now + dwell * rng.uniform(0.3, 0.9), "click", category)
        if rng.random() < 0.03 + 0.15 * user.interests[CATEGORIES.index(category)]:
            mu, sigma = PRICES[category]
            cart[category] = cart.get(category, 0.0) + rng.lognormvariate(mu, sigma)
            user.emit(now + dwell, "add_to_cart", category)
        now += dwell + rng.uniform(2, 20)
        if rng.random() < 0.08:
            now, clicked = _home(user, now, device)
            if clicked:
                focus = "Electronics"
    if cart:
        if rng.random() < 0.5:
            for category, revenue in cart.items():
                user.emit(now, "purchase", category, round(revenue, 2))
                user.spent += revenue
            now += rng.uniform(5, 60)
            if user.spent > GOLD_SPEND and user.tier not in ("gold", "platinum"):
                user.tier = "gold"
                user.emit(now, "profile", attributes={"tier": "gold"})
        else:
            user.emit(now + rng.uniform(60, 600), "cart_abandoned", next(iter(cart)))
    return now + 600.0


def _home(user: _User, now: float, device: str) -> tuple[float, bool]:
    """The home page: an impression of a hero banner, maybe a click on it."""
    rng = user.rng
    content = rng.choices(HERO_CONTENTS, HERO_WEIGHTS)[0]
    chance = _accessories_chance(user, now, device) if content == ACCESSORIES else 0.03
    user.emit(now, "impression", content, context={"page": "home", "device": device})
    now += rng.uniform(2, 30)
    clicked = rng.random() < chance
    if clicked:
        user.emit(now, "click", content)
        now += rng.uniform(1, 5)
    return now, clicked


def _accessories_chance(user: _User, now: float, device: str) -> float:
    """How likely the user is to click the accessories banner now: what a model should learn."""
    electronics_views = user.count("view", "Electronics", DAY, now)
    carted = user.count("add_to_cart", "Electronics", 7 * DAY, now) > 0
    bought = user.count("purchase", "Electronics", 30 * DAY, now) > 0
    clicked_before = user.count("click", ACCESSORIES, 30 * DAY, now) > 0
    seen = user.count("impression", ACCESSORIES, 7 * DAY, now)
    logit = (
        -3.6
        + 2.0 * user.interests[0]
        + 0.35 * min(electronics_views, 8)
        + 1.0 * carted
        + 1.8 * bought
        + 0.8 * clicked_before
        - 0.3 * min(seen, 6)
        + {"desktop": 0.5, "mobile": -0.3, "tablet": 0.0}[device]
        + user.affinity
    )
    return 1.0 / (1.0 + math.exp(-logit))


def _category(user: _User) -> str:
    return user.rng.choices(CATEGORIES, user.interests)[0]
