"""Drive a running server with a simulated shop: events, decisions, and the feedback users give.

For each user: set the persona's profile, post its past events, ask for each
page of the world, and answer every slot shown with an impression, then a
click with the world's true rate for that (persona, content), then perhaps a
conversion with its value. What was sent is tallied per (slot, rule,
content), so a caller can check the server's KPIs, or a report, against it.

Requests go over one keep-alive connection, events and feedback in batches of
up to a thousand: a simulation of 20,000 users is some 40,000 decisions.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler import bucketing

from .feedback_world import Persona, World

BATCH = 1000  # the events and feedback APIs' largest batch
USERS_PER_ROUND = 250  # users whose events are posted, then decided, then answered together


class SimulationFailed(RuntimeError):
    """The server refused a request the simulation sent: its reason."""


@dataclass(slots=True)
class Tally:
    """What the simulation sent for one (slot, rule, content)."""

    decisions: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    value: float = 0.0
    true_ctr: float = 0.0  # the world's rate averaged over the impressions sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "value": round(self.value, 2),
            "true_ctr": self.true_ctr,
        }


@dataclass(slots=True)
class ArmTally:
    """What the simulation sent for one arm of an experiment, on the slots its rules are in: the truth its
    report is checked against. ``dropped`` users never reached the server (``drop_users``)."""

    users: int = 0
    dropped: int = 0
    impressions: int = 0
    clicks: int = 0
    true_ctr: float = 0.0  # the world's click rate averaged over the impressions sent, lifts applied

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "dropped": self.dropped,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "true_ctr": self.true_ctr,
        }


@dataclass(slots=True)
class Simulation:
    """The outcome: counts sent, per (slot, rule, content) and per experiment arm, and the world they were drawn
    from. ``held_out`` users were in the server's holdout (as the simulation draws it)."""

    world: World
    users: int = 0
    decisions: int = 0
    feedback_items: int = 0
    held_out: int = 0
    tallies: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    arms: dict[tuple[str, str], ArmTally] = field(default_factory=dict)

    def true_lift(self, experiment: str, arm: str, control: str) -> float:
        """The true relative CTR lift of ``arm`` over ``control``, from the rates of what was shown."""
        return self.arms[experiment, arm].true_ctr / self.arms[experiment, control].true_ctr - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "decisions": self.decisions,
            "feedback_items": self.feedback_items,
            "held_out": self.held_out,
            "world": self.world.to_dict(),
            "rows": [
                {"slot": slot, "rule": rule, "content": content, **tally.to_dict()}
                for (slot, rule, content), tally in sorted(self.tallies.items())
            ],
            "arms": [
                {"experiment": experiment, "arm": arm, **tally.to_dict()}
                for (experiment, arm), tally in sorted(self.arms.items())
            ],
        }


class Draws:
    """Each user's holdout and arms as the server draws them, from its ``GET /v1/experiments``."""

    def __init__(self, listed: Mapping[str, Any]):
        from .experiment_report import ExperimentList

        self.listed = ExperimentList.from_dict(listed)

    def held_out(self, user: str) -> bool:
        holdout = self.listed.holdout
        return holdout is not None and bucketing.hash(holdout.seed, user) < holdout.share  # type: ignore[operator]

    def arms(self, user: str) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Experiment -> (the user's arm, the experiment's slots), for the experiments the user is in."""
        found = {}
        if self.held_out(user):
            return found
        for info in self.listed.experiments:
            ranges = bucketing.bucket_ranges(len(info.arms), info.coverage, info.weights)
            index = bucketing.choose_arm(bucketing.hash(info.seed, user), ranges)  # type: ignore[arg-type]
            if index >= 0:
                found[info.name] = (info.arms[index], info.slots)
        return found


class Client:
    """JSON over one keep-alive HTTP connection to a tailor server."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connection = connection(parts.hostname, parts.port, timeout=timeout)
        self._base = parts.path.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def send(self, method: str, path: str, body: object) -> Any:
        data = None if body is None else json.dumps(body).encode()
        try:
            self._connection.request(method, self._base + path, data, self._headers)
            response = self._connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the kept-alive connection while it was idle (a long pause on a busy machine):
            # the request never arrived, so it is sent again, once, on a new connection.
            self._connection.close()
            self._connection.request(method, self._base + path, data, self._headers)
            response = self._connection.getresponse()
        answer = response.read()
        if response.status >= 400:
            raise SimulationFailed(f"{method} {path}: {response.status} {answer.decode('utf-8', 'replace')[:300]}")
        return json.loads(answer)

    def close(self) -> None:
        self._connection.close()


def simulate_feedback(
    url: str,
    world: World,
    users: int,
    *,
    seed: int = 0,
    api_key: str | None = None,
    lifts: Mapping[str, float] | None = None,
    drop_clicks: Mapping[str, float] | None = None,
    drop_users: Mapping[str, float] | None = None,
    prefix: str = "sim",
    progress: Callable[[int], None] | None = None,
) -> Simulation:
    """Run ``users`` simulated users through the server at ``url``.

    ``lifts`` raises the true click rate of a rule's decisions (``0.2``: 20% more
    clicks), as a model arm that beats the rules would. ``drop_clicks`` loses
    that share of a rule's clicks before they reach the server, as a broken
    tracking tag would. ``drop_users`` (``"experiment:arm"`` -> share) loses that
    share of an arm's users altogether, as a page that fails to load for one arm
    would: the server never sees them, so its users per arm no longer match the
    weights (a sample ratio mismatch).
    """
    lifts = lifts or {}
    drop_clicks = drop_clicks or {}
    drop_users = drop_users or {}
    draw = random.Random(seed)
    client = Client(url, api_key)
    result = Simulation(world)
    by_name = {persona.name: persona for persona in world.personas}
    try:
        draws = Draws(client.send("GET", "/v1/experiments", None))
        unknown = [key for key in drop_users if key not in _arm_keys(draws)]
        if unknown:
            raise ValueError(f"drop_users: no experiment arm {unknown[0]!r} (known: {', '.join(_arm_keys(draws))})")
        for first in range(0, users, USERS_PER_ROUND):
            ids = [f"{prefix}-{index}" for index in range(first, min(users, first + USERS_PER_ROUND))]
            personas = {user: _persona(world, draw) for user in ids}
            arms = {user: draws.arms(user) for user in ids}
            result.held_out += sum(draws.held_out(user) for user in ids)
            arriving = []
            for user in ids:
                lost = False
                for experiment, (arm, _) in arms[user].items():
                    tally = result.arms.setdefault((experiment, arm), ArmTally())
                    tally.users += 1
                    if draw.random() < drop_users.get(f"{experiment}:{arm}", 0.0):
                        tally.dropped += 1
                        lost = True
                if not lost:
                    arriving.append(user)
            now = time.time()
            _arrive(client, world, {user: personas[user] for user in arriving}, now)
            items = [
                item
                for user in arriving
                for page in world.pages
                for item in _visit(
                    client, world, user, by_name[personas[user]], page, draw, lifts, drop_clicks, result, arms[user]
                )
            ]
            for start in range(0, len(items), BATCH):
                client.send("POST", "/v1/feedback", {"items": items[start : start + BATCH]})
            result.feedback_items += len(items)
            result.users += len(ids)
            if progress is not None:
                progress(result.users)
    finally:
        client.close()
    return result


def _arm_keys(draws: Draws) -> list[str]:
    return [f"{info.name}:{arm}" for info in draws.listed.experiments for arm in info.arms]


def _persona(world: World, draw: random.Random) -> str:
    return draw.choices([p.name for p in world.personas], [p.share for p in world.personas])[0]


def _arrive(client: Client, world: World, personas: Mapping[str, str], now: float) -> None:
    """Profiles and past events of a round of users, before any of them asks for a page."""
    by_name = {p.name: p for p in world.personas}
    events = []
    for user, name in personas.items():
        persona = by_name[name]
        if persona.profile:
            client.send("PUT", f"/v1/users/{urllib.parse.quote(user)}", {"attributes": persona.profile})
        for index, past in enumerate(persona.history):
            event = {"user_id": user, "type": past.type, "ts": now - past.ago, "id": f"{user}-h{index}"}
            if past.key is not None:
                event["key"] = past.key
            if past.value is not None:
                event["value"] = past.value
            events.append(event)
    for start in range(0, len(events), BATCH):
        client.send("POST", "/v1/events", {"events": events[start : start + BATCH]})


def _visit(
    client: Client,
    world: World,
    user: str,
    persona: Persona,
    page: Mapping[str, Any],
    draw: random.Random,
    lifts: Mapping[str, float],
    drop_clicks: Mapping[str, float],
    result: Simulation,
    arms: Mapping[str, tuple[str, tuple[str, ...]]],
) -> Iterator[dict[str, Any]]:
    """One page view: the decision, and the feedback items it earns."""
    answer = client.send("POST", "/v1/decide", {"user_id": user, "context": {**page, **persona.context}})
    result.decisions += 1
    decision_id = answer["decision_id"]
    for slot, shown in sorted(answer["slots"].items()):
        if shown is None:
            continue
        content, rule = shown["content"], shown["rule"] or "default"
        tally = result.tallies.setdefault((slot, rule, content), Tally())
        rate = world.click_rate(persona.name, content, rule, lifts)
        tally.decisions += 1
        tally.impressions += 1
        tally.true_ctr += (rate - tally.true_ctr) / tally.impressions
        in_arms = [result.arms[experiment, arm] for experiment, (arm, slots) in arms.items() if slot in slots]
        for arm_tally in in_arms:
            arm_tally.impressions += 1
            arm_tally.true_ctr += (rate - arm_tally.true_ctr) / arm_tally.impressions
        base = {"decision_id": decision_id, "slot": slot}
        yield {**base, "type": "impression", "id": f"{decision_id}/{slot}/impression"}
        if draw.random() >= rate:
            continue
        if draw.random() < drop_clicks.get(rule, 0.0):
            continue  # lost on the way: the server never hears of it
        tally.clicks += 1
        for arm_tally in in_arms:
            arm_tally.clicks += 1
        yield {**base, "type": "click", "id": f"{decision_id}/{slot}/click"}
        dwell = round(draw.expovariate(1.0 / world.dwell_seconds), 1)
        yield {**base, "type": "dwell", "value": dwell, "id": f"{decision_id}/{slot}/dwell"}
        if draw.random() < world.conversion_rate:
            value = round(draw.uniform(0.5, 1.5) * world.order_value, 2)
            tally.conversions += 1
            tally.value += value
            yield {**base, "type": "conversion", "value": value, "id": f"{decision_id}/{slot}/conversion"}
