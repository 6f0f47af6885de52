"""A simulated shop whose answer is known: who its users are, and how often they click what they are shown.

``tailor simulate --url`` drives a server with it: each user arrives as one
of a few personas, whose events and profile make the retail example's rules
fire, asks for the home, product and cart pages, and answers every slot shown with
feedback. Each (persona, content) pair has a true click-through rate, so the
KPIs, the rule-health report and an experiment's results can be checked
against the truth the simulation was built on.

One content is ignored on purpose: ``sidebar_bundle`` (the ``electronics_bundle``
rule) is almost never clicked, so the report must name that rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class PastEvent:
    """An event a persona had before arriving: ``ago`` seconds before the visit."""

    type: str
    key: str | None
    ago: float
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Persona:
    """A kind of user: how common, what they did before, and what they are like."""

    name: str
    share: float
    profile: dict[str, Any] = field(default_factory=dict)
    history: tuple[PastEvent, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)  # laid over every page's context (a cart's total)


@dataclass(frozen=True, slots=True)
class World:
    """The truth a simulation is drawn from."""

    personas: tuple[Persona, ...]
    pages: tuple[dict[str, Any], ...]  # the contexts every user asks for, in order
    ctr: dict[str, float]  # true click-through rate by content
    persona_ctr: dict[tuple[str, str], float] = field(default_factory=dict)  # (persona, content) overrides
    conversion_rate: float = 0.1  # of clicks
    order_value: float = 60.0
    dwell_seconds: float = 40.0  # the mean time on page after a click
    ignored_rule: str | None = None  # the rule whose content users ignore: the report must name it

    def click_rate(self, persona: str, content: str, rule: str | None, lifts: Mapping[str, float]) -> float:
        """The true chance that ``persona`` clicks ``content`` shown by ``rule``, with its lift applied."""
        base = self.persona_ctr.get((persona, content), self.ctr.get(content, 0.0))
        return min(1.0, base * (1.0 + lifts.get(rule or "", 0.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "personas": {p.name: p.share for p in self.personas},
            "ctr": dict(self.ctr),
            "persona_ctr": {f"{persona}/{content}": rate for (persona, content), rate in self.persona_ctr.items()},
            "conversion_rate": self.conversion_rate,
            "order_value": self.order_value,
            "ignored_rule": self.ignored_rule,
        }


RETAIL = World(
    personas=(
        Persona("vip", 0.10, {"tier": "gold"}, (PastEvent("purchase", "Books", 3 * DAY, 80.0),)),
        Persona(
            "electronics_fan",
            0.25,
            {"tier": "bronze"},
            (
                *(PastEvent("view", "Electronics", hours * 3600.0) for hours in (1, 3, 5, 9)),
                PastEvent("add_to_cart", "Electronics", 1200.0),
                PastEvent("purchase", "Electronics", 2 * DAY, 120.0),
            ),
            {"cart_total": 129.0},
        ),
        Persona(
            "lapsed",
            0.15,
            {"tier": "silver"},
            (PastEvent("purchase", "Shoes", 25 * DAY, 70.0), PastEvent("cart_abandoned", None, 2 * DAY)),
        ),
        Persona("newcomer", 0.20, {}, tuple(PastEvent("view", "Toys", days * DAY) for days in (1, 2, 4, 5))),
        Persona("visitor", 0.30),
    ),
    pages=({"page": "home"}, {"page": "product", "category": "Electronics"}, {"page": "cart", "cart_total": 42.0}),
    ctr={
        "hero_vip": 0.08,
        "hero_welcome_back": 0.06,
        "hero_accessories": 0.09,
        "hero_first_order": 0.05,
        "hero_generic": 0.03,
        "sidebar_bundle": 0.002,
        "sidebar_free_shipping": 0.05,
        "sidebar_reviews": 0.04,
        "upsell_warranty": 0.07,
        "upsell_comeback": 0.06,
        "upsell_shipping_gap": 0.05,
        "upsell_bestsellers": 0.03,
    },
    ignored_rule="electronics_bundle",
)

WORLDS = {"retail": RETAIL}
