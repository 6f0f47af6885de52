"""A simulated day through real server processes: decisions, then messy feedback, then the KPIs.

Thousands of decisions over the last day and a half (and a few from nine
days ago), then feedback on them in shuffled batches of 100: retried whole,
with exact duplicates, ids reused on other decisions, decisions never
served, slots that showed nothing, items past the attribution window, and
conversions with distinct ids. The KPIs every server reports must equal a
brute-force count over the decisions the test was served and the feedback
it sent. On the memory store with one server; on Redis with two servers
sharing it, decisions and feedback spread over both.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import no_redis
from redis_process import private_redis
from server_process import KEY, Server, eventually, servers

from tailor.runtime.feedback import utc_day

RULES = """\
ruleset day

content phone = {"id": 1}
content home = {"id": 2}
content generic = {"id": 3}
content deal = {"id": 4}
content side = {"id": 5}
content cart_help = {"id": 6}

rule mobile_hero
  when context.device == "mobile"
  then show phone in hero
  priority 20

rule home_hero
  when context.page == "home"
  then show home in hero
  priority 10

default show generic in hero

rule product_side
  when context.page == "product"
  then show deal in sidebar

default show side in sidebar

rule cart_footer
  when context.page == "cart"
  then show cart_help in footer
"""
DECISIONS = 2000
USERS = 300
HOUR = 3600.0
DAY = 24 * HOUR
MEASURE = {"impression": "impressions", "click": "clicks", "conversion": "conversions"}

Key = tuple[str, str, str, str]  # version, slot, rule, content


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "day"
    root.mkdir()
    (root / "day.rules").write_text(RULES)
    return root


@pytest.fixture(params=["memory", "redis"])
def started(request: pytest.FixtureRequest, rules: Path, tmp_path: Path) -> Iterator[list[Server]]:
    """One server on the memory store, or two on one (private) Redis."""
    with servers(tmp_path) as start:
        if request.param == "memory":
            yield [start(rules)]
            return
        if shutil.which("redis-server") is None:
            no_redis("no redis-server to start")
        with private_redis(tmp_path / "redis") as redis:
            yield [start(rules, "--redis", redis.url), start(rules, "--redis", redis.url)]


def post(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = server.http.post(path, json=body, headers=server.auth)
    assert response.status_code == 200, response.text
    return response.json()


def kept(server: Server) -> float:
    return server.metric('tailor_served_records_total{outcome="kept"}') or 0.0


class Day:
    """What the test was served, and the brute-force KPIs of what it sent back."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.decisions: list[dict[str, Any]] = []  # decision_id, at, slots: {slot: (rule, content)}
        self.expected: dict[tuple[Key, str | None], Counter[str]] = defaultdict(Counter)  # (key, day or None)
        self.counted: set[Any] = set()  # identities of the items counted

    def served(self, answer: dict[str, Any], at: float) -> None:
        version = answer["ruleset"]["version"]
        slots = {}
        for slot, shown in answer["slots"].items():
            if shown is not None:
                slots[slot] = (shown["rule"] or "default", shown["content"])
                self._add((version, slot, *slots[slot]), utc_day(at), "decisions", 1)
        self.decisions.append({"id": answer["decision_id"], "at": at, "version": version, "slots": slots})

    def _add(self, key: Key, day: str, measure: str, amount: float) -> None:
        self.expected[key, None][measure] += amount
        self.expected[key, day][measure] += amount

    def count(self, decision: dict[str, Any], item: dict[str, Any]) -> None:
        """An item that must be counted once, however often it is sent."""
        identity = item.get("id") or (item["decision_id"], item["slot"], item["type"])
        if identity in self.counted:
            return
        self.counted.add(identity)
        rule, content = decision["slots"][item["slot"]]
        key = (decision["version"], item["slot"], rule, content)
        day = utc_day(decision["at"])
        if item["type"] in MEASURE:
            self._add(key, day, MEASURE[item["type"]], 1)
        if item["type"] == "conversion":
            self._add(key, day, "value", item.get("value") or 0.0)

    def feedback(self, now: float) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Every item to send, shuffled, and the status expected of those that are not counted."""
        rng = self.rng
        items: list[dict[str, Any]] = []
        problems: dict[str, str] = {}  # an item's marker -> its status
        orders = 0
        for decision in self.decisions:
            expired = decision["at"] < now - 7 * DAY
            for slot in decision["slots"]:
                if rng.random() > 0.7:
                    continue
                base = {"decision_id": decision["id"], "slot": slot}
                ts = decision["at"] + rng.uniform(0, 60)
                shown = [{**base, "type": "impression", "ts": ts}]
                if rng.random() < 0.2:
                    click = {**base, "type": "click"}
                    if rng.random() < 0.5:
                        click["id"] = f"click-{decision['id']}-{slot}"
                    shown.append(click)
                    if rng.random() < 0.3:
                        for _ in range(rng.choice([1, 1, 2])):
                            orders += 1
                            value = round(rng.uniform(5, 120), 2)
                            shown.append({**base, "type": "conversion", "value": value, "id": f"order-{orders}"})
                if rng.random() < 0.1:
                    shown.append({**base, "type": "dwell", "value": rng.uniform(1, 300)})
                for item in shown:
                    if expired and "ts" not in item:
                        problems[self._mark(item)] = "expired"
                    else:
                        self.count(decision, item)
                items += shown
            if "footer" not in decision["slots"] and rng.random() < 0.02:
                item = {"decision_id": decision["id"], "slot": "footer", "type": "click"}
                problems[self._mark(item)] = "unknown_slot"
                items.append(item)
        for n in range(40):  # decisions never served
            item = {"decision_id": f"unknown-{n}", "slot": "hero", "type": "click"}
            problems[self._mark(item)] = "unknown_decision"
            items.append(item)
        items += rng.sample(items, len(items) // 10)  # exact duplicates, sent in other batches
        rng.shuffle(items)  # out of order: clicks before impressions, across decisions
        return items, problems

    def conflicts(self, now: float) -> list[dict[str, Any]]:
        """Order ids already counted, sent again on another (recent) decision: conflicts, never counted."""
        orders = sorted(identity for identity in self.counted if str(identity).startswith("order-"))
        recent = [decision for decision in self.decisions if decision["at"] > now - 7 * DAY]
        reused = []
        for order in orders[:20]:
            decision = self.rng.choice(recent)
            slot = next(iter(decision["slots"]))
            reused.append({"decision_id": decision["id"], "slot": slot, "type": "conversion", "id": order})
        return reused

    @staticmethod
    def _mark(item: dict[str, Any]) -> str:
        item["id"] = item.get("id") or f"marked-{id(item)}"  # so the answer can be matched to the item
        return item["id"]


def test_kpis_equal_a_brute_force_count_of_a_simulated_day(started: list[Server]) -> None:
    rng = random.Random(2024)
    day = Day(rng)
    now = time.time()
    pages, devices = ["home", "product", "cart", "search"], ["mobile", "desktop", "tablet"]
    requests = []
    for n in range(DECISIONS):
        at = now - 9 * DAY if n % 200 == 0 else now - 36 * HOUR + n * (36 * HOUR - 600) / DECISIONS
        body = {
            "user_id": f"user-{rng.randrange(USERS)}",
            "context": {"page": rng.choice(pages), "device": rng.choice(devices)},
            "at": at,
        }
        requests.append((started[n % len(started)], body))
    with ThreadPoolExecutor(4) as pool:  # a few clients at once, as a site has
        answers = list(pool.map(lambda request: post(request[0], "/v1/decide", request[1]), requests))
    for (_, body), answer in zip(requests, answers, strict=True):
        day.served(answer, body["at"])
    eventually(lambda: sum(kept(server) for server in started) >= DECISIONS, "the join records to be written")

    items, problems = day.feedback(now)
    assert len(items) > 1000
    seen_problems: dict[str, str] = {}
    accepted = 0
    for start in range(0, len(items), 100):
        batch = items[start : start + 100]
        server = started[(start // 100) % len(started)]
        answer = post(server, "/v1/feedback", {"items": batch})
        accepted += answer["accepted"]
        for result in answer["results"]:
            seen_problems[batch[result["index"]]["id"]] = result["status"]
        if rng.random() < 0.25:  # the client timed out and retries the whole batch, on the other server
            again = post(started[-1 - (start // 100) % len(started)], "/v1/feedback", {"items": batch})
            assert again["accepted"] == 0
            assert again["results"] == answer["results"]
    assert seen_problems == problems
    assert accepted == len(day.counted)

    conflicts = post(started[0], "/v1/feedback", {"items": day.conflicts(now)})
    assert conflicts["accepted"] == 0
    assert {result["status"] for result in conflicts["results"]} == {"conflict"}

    for server in started:
        assert_kpis(server, day.expected, None)
    for when in sorted({when for _, when in day.expected if when is not None}):
        assert_kpis(started[-1], day.expected, when)
    assert_cli(started[0])


def assert_cli(server: Server) -> None:
    """``tailor kpis`` shows what ``GET /v1/kpis`` answers."""
    command = [sys.executable, "-m", "tailor.cli", "kpis", "--url", server.url, "--api-key", KEY, "--slot", "hero"]
    shown = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, timeout=60, check=True)
    answer = server.http.get("/v1/kpis", params={"slot": "hero"}, headers=server.auth).json()
    assert json.loads(shown.stdout) == answer
    text = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert text[0].split()[:5] == ["version", "slot", "rule", "content", "decisions"]
    assert len(text) == 1 + len(answer["rows"])
    assert all(" hero " in line for line in text[1:])


def assert_kpis(server: Server, expected: dict[tuple[Key, str | None], Counter[str]], when: str | None) -> None:
    query = {"since": when, "until": when} if when is not None else {}
    response = server.http.get("/v1/kpis", params=query, headers=server.auth)
    assert response.status_code == 200, response.text
    rows = {(r["version"], r["slot"], r["rule"], r["content"]): r for r in response.json()["rows"]}
    wanted = {key: counts for (key, day), counts in expected.items() if day == when}
    assert set(rows) == set(wanted)
    for key, counts in wanted.items():
        row = rows[key]
        for measure in ("decisions", "impressions", "clicks", "conversions"):
            assert row[measure] == counts[measure], (key, when, measure)
        assert row["value"] == pytest.approx(counts["value"]), (key, when)
        if counts["impressions"]:
            assert row["ctr"] == pytest.approx(counts["clicks"] / counts["impressions"])
            assert row["ctr_low"] <= row["ctr"] or counts["clicks"] > counts["impressions"]
