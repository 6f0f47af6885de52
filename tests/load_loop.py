"""Client load for the fault tests: decisions and event batches from a few threads, every answer counted.

A ``LoadLoop`` runs client threads that post decisions, explanations and
event batches until told to stop, or until their request count or time runs
out, whichever comes first: it always stops by itself. A batch whose request
failed (no answer, or any status but 200) is sent again, with the same event
ids, until the server acknowledges it; ``drain`` does the same for what is
left once the load stops. The ``Ledger`` knows every event sent, so the
counts the server ends with can be checked against the distinct ids, and the
``Tally`` holds every status the test saw, from every client.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from server_process import KEY

EVENTS = "POST /v1/events"
DECIDE = "POST /v1/decide"
EXPLAIN = "POST /v1/explain"
RULESET = "GET /v1/ruleset"
RETRY_PAUSE = 0.05  # seconds before a client sends a failed batch again: an outage is not a busy loop


class Tally:
    """Every answer by route and status, the requests that got none, and what decisions said."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.unanswered: Counter[str] = Counter()
        self.decisions = 0
        self.degraded = 0
        self.slot_missing = 0  # decisions with no content for the hero slot: a half-written file served

    def answered(self, response: httpx.Response) -> None:
        """An httpx response hook: one count per response, whoever sent the request."""
        route = f"{response.request.method} {response.request.url.path}"
        with self._lock:
            self.statuses[route, response.status_code] += 1

    def failed(self, route: str) -> None:
        with self._lock:
            self.unanswered[route] += 1

    def decided(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.decisions += 1
            self.degraded += bool(body["degraded"])
            self.slot_missing += (body["slots"].get("hero") or {}).get("content") is None

    def server_errors(self, *, allowed: Sequence[tuple[str, int]] = ()) -> dict[tuple[str, int], int]:
        """The 5xx answers by route and status, but for the ``allowed`` ones."""
        with self._lock:
            return {key: n for key, n in self.statuses.items() if key[1] >= 500 and key not in allowed}

    def not_ok(self, *, allowed: Sequence[tuple[str, int]] = ()) -> dict[tuple[str, int], int]:
        """Every answer but 200, by route and status, but for the ``allowed`` ones."""
        with self._lock:
            return {key: n for key, n in self.statuses.items() if key[1] != 200 and key not in allowed}


def client(url: str, tally: Tally, timeout: float = 10.0) -> httpx.Client:
    """An HTTP client that sends the API key on every request and counts every answer in ``tally``."""
    return httpx.Client(
        base_url=url,
        timeout=timeout,
        headers={"Authorization": f"Bearer {KEY}"},
        event_hooks={"response": [tally.answered]},
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """One POST /v1/events body: every attempt sends these same events, ids included."""

    number: int
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer that acknowledged a batch, and how many attempts at it failed before."""

    accepted: int
    duplicates: int
    conflicts: int
    expired: int
    failed_attempts: int


class Ledger:
    """Every batch sent, and which ones the server acknowledged (once each: then they are not sent again)."""

    def __init__(self, users: Sequence[str], run: str = "e"):
        self.users = tuple(users)
        self.run = run
        self._lock = threading.Lock()
        self._batches: list[Batch] = []
        self._failures: Counter[int] = Counter()
        self.acks: dict[int, Ack] = {}

    def new_batch(self, rng: random.Random, size: int) -> Batch:
        """``size`` view events of users from the pool, each with an id used nowhere else."""
        with self._lock:
            number = len(self._batches)
            events = tuple(
                {"user_id": rng.choice(self.users), "type": "view", "key": f"c{rng.randrange(5)}", "id": event_id}
                for event_id in (f"{self.run}-{number}-{i}" for i in range(size))
            )
            batch = Batch(number, events)
            self._batches.append(batch)
            return batch

    def attempt_failed(self, batch: Batch) -> None:
        with self._lock:
            self._failures[batch.number] += 1

    def acknowledged(self, batch: Batch, body: dict[str, Any]) -> None:
        with self._lock:
            if batch.number in self.acks:
                raise AssertionError(f"batch {batch.number} was acknowledged twice")
            self.acks[batch.number] = Ack(
                body["accepted"],
                body["duplicates"],
                body.get("conflicts", 0),  # reported by stores that tell a retry from a reused id
                body["expired"],
                self._failures[batch.number],
            )

    @property
    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acks)

    @property
    def failed_attempts(self) -> int:
        with self._lock:
            return sum(self._failures.values())

    def pending(self) -> list[Batch]:
        with self._lock:
            return [batch for batch in self._batches if batch.number not in self.acks]

    def expected_counts(self) -> dict[str, int]:
        """Per user, the number of distinct event ids sent: what the store must count, no more, no less."""
        with self._lock:
            ids: dict[str, set[str]] = {user: set() for user in self.users}
            for batch in self._batches:
                for event in batch.events:
                    ids[event["user_id"]].add(event["id"])
            return {user: len(seen) for user, seen in ids.items()}

    def check(self) -> None:
        """Every batch acknowledged, each event in it as accepted or as a duplicate of a lost reply."""
        with self._lock:
            batches, acks = list(self._batches), dict(self.acks)
        unacknowledged = [batch.number for batch in batches if batch.number not in acks]
        assert not unacknowledged, f"batches never acknowledged: {unacknowledged}"
        for batch in batches:
            ack = acks[batch.number]
            assert (ack.conflicts, ack.expired) == (0, 0), f"batch {batch.number}: {ack}"
            assert ack.accepted + ack.duplicates == len(batch.events), f"batch {batch.number}: {ack}"


def send(http: httpx.Client, tally: Tally, ledger: Ledger, batch: Batch) -> bool:
    """One attempt at ``batch``; True when the server acknowledged it."""
    try:
        response = http.post("/v1/events", json={"events": list(batch.events)})
    except httpx.TransportError:
        tally.failed(EVENTS)
        ledger.attempt_failed(batch)
        return False
    if response.status_code != 200:
        ledger.attempt_failed(batch)
        return False
    ledger.acknowledged(batch, response.json())
    return True


@dataclass(frozen=True, slots=True)
class Load:
    """How much a ``LoadLoop`` sends: per client thread, until the first bound is reached."""

    clients: int = 3
    batch_size: int = 8  # events per batch; 0: decisions only
    decisions: bool = True  # a decision before each batch
    max_requests: int = 4000  # per client
    max_seconds: float = 90.0
    timeout: float = 10.0  # seconds a request may take before it counts as unanswered


class LoadLoop:
    """Client threads sending ``load`` to a server until stopped, or until their bounds run out."""

    def __init__(self, url: str, tally: Tally, ledger: Ledger, load: Load = Load(), *, seed: int = 0):
        self.url = url
        self.tally = tally
        self.ledger = ledger
        self.load = load
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(random.Random(seed * 1000 + n),), daemon=True)
            for n in range(load.clients)
        ]
        self.errors: list[BaseException] = []

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._stop.set()
        self.wait(self.load.timeout + 30)
        if exc_type is None:
            self._raise()

    def stop(self) -> None:
        """Stop the clients and wait for them; raise what one of them raised."""
        self._stop.set()
        self.wait(self.load.timeout + 30)
        self._raise()

    def wait(self, timeout: float) -> None:
        """Wait for the clients to end (by ``stop``, or by their bounds)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"a load client did not end within {timeout:g} s"

    def _raise(self) -> None:
        errors, self.errors = self.errors, []
        if errors:
            raise errors[0]

    def drain(self, timeout: float) -> None:
        """Send every batch not yet acknowledged again, with its ids, until each is (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with client(self.url, self.tally, self.load.timeout) as http:
            while pending := self.ledger.pending():
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(pending)} batches still not acknowledged after {timeout:g} s")
                if not all(send(http, self.tally, self.ledger, batch) for batch in pending):
                    time.sleep(RETRY_PAUSE)

    def _client(self, rng: random.Random) -> None:
        load = self.load
        deadline = time.monotonic() + load.max_seconds
        requests = rounds = 0
        unsent: Batch | None = None
        try:
            with client(self.url, self.tally, load.timeout) as http:
                while requests < load.max_requests and time.monotonic() < deadline and not self._stop.is_set():
                    rounds += 1
                    user = rng.choice(self.ledger.users)
                    if load.decisions:
                        requests += 1
                        self._decide(http, EXPLAIN if rounds % 10 == 0 else DECIDE, user)
                    if load.batch_size:
                        requests += 1
                        batch = unsent or self.ledger.new_batch(rng, load.batch_size)
                        unsent = None if send(http, self.tally, self.ledger, batch) else batch
                        if unsent is not None:
                            time.sleep(RETRY_PAUSE)
        except BaseException as exc:  # handed to stop(), so the test fails with it
            self.errors.append(exc)

    def _decide(self, http: httpx.Client, route: str, user: str) -> None:
        try:
            response = http.post(route.split()[1], json={"user_id": user})
        except httpx.TransportError:
            self.tally.failed(route)
            return
        if response.status_code == 200:
            self.tally.decided(response.json())
