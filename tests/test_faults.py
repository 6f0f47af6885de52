"""The fault suite: real ``tailor serve`` processes under client load while their files and their Redis fail.

Every scenario starts a server on real files (and, for the Redis store, a
``redis-server`` of its own, to shut down, restart and pause), runs a few
client threads posting decisions and event batches (``load_loop``) while
the fault happens, and then checks the same properties:

- no 5xx answer, ever, but the one that is documented: ``POST /v1/events``
  answers 503 while Redis is down (writes do not degrade; decisions do, and
  stay 200 with ``degraded: true``, until Redis is back);
- nothing acknowledged is lost, nothing is counted twice: a batch that was
  refused or got no answer is sent again, with the same event ids, until
  the server acknowledges it, and then the counts the server ends with (its
  ``/v1/explain`` values, and for Redis its keys too) equal the number of
  distinct event ids;
- the final files are served within 2 s of the last change
  (``SERVED_WITHIN``).

Every loop is bounded by a count and a time, and every wait is a polling
loop with a deadline. They are slow (a server process each): run them with
``pytest -m slow tests/test_faults.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from configmap_volume import configmap
from conftest import no_redis
from load_loop import EVENTS, Ledger, Load, LoadLoop, Tally, client
from redis_process import RedisProcess, private_redis
from server_process import WAIT, Server, eventually, servers

from tailor.runtime.redis_series import series_buckets
from tailor.runtime.reload import DEFAULT_SETTLE_MS

pytestmark = pytest.mark.slow

# The requirement: the final files are served within 2 s of the last change. It is the one
# time bound this suite asserts, because the bound is the requirement itself. The documented settle
# is added: a reload waits until the files have not changed for 200 ms, on purpose, so that a save
# still being written is not compiled half-way. Everything else waits by polling, with a deadline.
SERVED_WITHIN = 2.0 + DEFAULT_SETTLE_MS / 1000

USERS = tuple(f"u{n}" for n in range(8))
VIEWS = "views(24h)"  # what the hero rule reads for every decision, so /v1/explain shows the count
HOME = """\
ruleset faults

content hero_generic = {"id": "generic"}
content hero_fan = {"id": "fan"}

rule heavy_viewer
  when views(24h) > 1000000
  then show hero_fan in hero
  priority PRIORITY

default show hero_generic in hero
"""
SEARCH = """\
content tips = {"id": "tips"}

default show tips in sidebar
"""
GONE = "the ruleset directory is gone"
NOT_REGULAR = "is not a regular file"
OUTAGE_ANSWER = (EVENTS, 503)  # the documented answer to a write while the store is down


def home(priority: int, extra: str = "") -> str:
    return HOME.replace("PRIORITY", str(priority)) + extra


def write_ruleset(root: Path, priority: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "home.rules").write_text(home(priority))
    (root / "search.rules").write_text(SEARCH)
    return root


def priority_of(ruleset: dict[str, Any]) -> int:
    (rule,) = ruleset["rules"]
    return rule["priority"]


@dataclass(frozen=True, slots=True)
class Store:
    """The store a server is started with: its ``tailor serve`` options, and the Redis behind it, if any."""

    args: tuple[str, ...]
    redis: RedisProcess | None


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    with servers(tmp_path) as start:
        yield start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own: shut down, restarted and paused at will, killed at teardown."""
    if shutil.which("redis-server") is None:
        no_redis("no redis-server to start, stop and pause")
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The store named by the test's ``store`` parameter; for Redis, a private one (``redis_server``)."""
    if request.param == "memory":
        yield Store((), None)
        return
    server = request.getfixturevalue("redis_server")
    yield Store(("--redis", server.url), server)


# --- what every scenario checks ------------------------------------------------------


def decide(http: httpx.Client, user: str = USERS[0]) -> dict[str, Any]:
    response = http.post("/v1/decide", json={"user_id": user})
    assert response.status_code == 200, response.text
    return response.json()


def ruleset(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/v1/ruleset")
    assert response.status_code == 200, response.text
    return response.json()


def served_after(http: httpx.Client, priority: int, written_at: float) -> float:
    """Seconds from ``written_at``, the end of the last write, to the first answer of
    ``GET /v1/ruleset`` that shows the version with ``priority``, without an error."""
    deadline = written_at + WAIT
    while True:
        shown = ruleset(http)
        seen_at = time.monotonic()
        if priority_of(shown) == priority and shown["last_error"] is None:
            return seen_at - written_at
        if seen_at > deadline:
            raise AssertionError(f"gave up waiting for priority {priority} to be served: {shown}")
        time.sleep(0.01)


def assert_served_in_time(http: httpx.Client, priority: int, written_at: float) -> None:
    delay = served_after(http, priority, written_at)
    assert delay <= SERVED_WITHIN, f"the final files were served {delay:.2f} s after the last change"


def recovered(http: httpx.Client) -> None:
    """Decisions are whole again, and the server says it is ready, once the store answers."""
    eventually(lambda: not decide(http)["degraded"], "decisions to stop being degraded")
    eventually(lambda: http.get("/readyz").status_code == 200, "/readyz to answer 200")


def assert_counts(http: httpx.Client, ledger: Ledger, redis: RedisProcess | None) -> None:
    """Every batch acknowledged once, and each user's count equal to its distinct event ids:
    nothing acknowledged lost, no retried event counted twice."""
    ledger.check()
    expected = ledger.expected_counts()
    assert sum(expected.values()) > 0
    for user, count in expected.items():
        response = http.post("/v1/explain", json={"user_id": user})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] is False
        assert body["explain"]["values"][VIEWS] == count, f"{user}: {body['explain']['values']} != {count}"
    if redis is not None:  # and in the keys themselves (docs/runtime.md: the Redis key layout)
        for user, count in expected.items():
            assert redis.client.zcard(f"tailor:{{{user}}}:ids") == count, user
            hours = redis.client.hget(f"tailor:{{{user}}}", "c:view:any:h")
            assert sum(n for _, n, _ in series_buckets(hours or b"")) == count, user


def assert_clean(server: Server, tally: Tally, *, allowed: tuple[tuple[str, int], ...] = ()) -> None:
    """No 5xx answer (but the ``allowed`` ones), no other answer but 200, and nothing crashed."""
    assert tally.server_errors(allowed=allowed) == {}
    assert tally.not_ok(allowed=allowed) == {}
    assert tally.decisions > 0
    output = server.output()
    assert "unexpected error" not in output and "Traceback" not in output, output
    assert "hot reload stopped" not in output and "ended unexpectedly" not in output, output


def going(ledger: Ledger, more: int) -> None:
    """Wait until ``more`` batches have been acknowledged beyond those already: the load is running."""
    start = ledger.acknowledged_count
    eventually(lambda: ledger.acknowledged_count >= start + more, f"{more} more batches to be acknowledged")


# --- 1. the store goes away under load ------------------------------------------------


def test_redis_shut_down_restarted_and_paused_under_load(
    tmp_path: Path, start_server: Callable[..., Server], redis_server: RedisProcess
) -> None:
    """Redis is shut down and restarted, paused (CLIENT PAUSE) and frozen (SIGSTOP) under load.

    Decisions stay 200 and degrade while Redis does not answer, then recover
    without a restart; event batches answer 503 meanwhile and are sent
    again, with their ids. A batch that Redis ran after the server had given
    up on its reply (a paused Redis runs the commands it held once it
    resumes) comes back as duplicates then, and is counted once. The restart
    keeps Redis' data (see ``redis_process``): what is checked is what
    tailor loses. An edit made while Redis is frozen is served in time: hot
    reload does not wait on the store.
    """
    root = write_ruleset(tmp_path / "rules", 10)
    server = start_server(root, "--redis", redis_server.url)
    tally, ledger = Tally(), Ledger(USERS)
    with client(server.url, tally) as http:
        with LoadLoop(server.url, tally, ledger, Load(max_seconds=150)) as load:
            going(ledger, 20)

            redis_server.shutdown()
            eventually(lambda: decide(http)["degraded"], "decisions to degrade with Redis down")
            failed = ledger.failed_attempts
            eventually(lambda: ledger.failed_attempts > failed, "a batch to be refused with Redis down")
            assert http.get("/healthz").status_code == 200
            redis_server.start()
            recovered(http)
            going(ledger, 10)

            redis_server.pause(1.5)
            eventually(lambda: decide(http)["degraded"], "decisions to degrade with Redis paused")
            recovered(http)
            going(ledger, 10)

            redis_server.freeze()
            try:
                eventually(lambda: decide(http)["degraded"], "decisions to degrade with Redis frozen")
                (root / "home.rules").write_text(home(20))
                assert_served_in_time(http, 20, time.monotonic())
            finally:
                redis_server.thaw()
            recovered(http)
            going(ledger, 10)
        load.drain(WAIT)
        assert tally.degraded > 0 and ledger.failed_attempts > 0  # the load did meet the outages
        assert_counts(http, ledger, redis_server)
    assert_clean(server, tally, allowed=(OUTAGE_ANSWER,))


def test_a_server_process_paused_under_load_memory(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    """The memory store's outage: the server process itself stopped (SIGSTOP, a paused VM) under load.

    The memory store has no Redis to lose; what it can meet is the process
    not answering. Clients time out, send their batches again with the same
    ids, and the batches the process ran once it resumed (their replies
    lost) come back as duplicates, counted once.
    """
    root = write_ruleset(tmp_path / "rules", 10)
    server = start_server(root)
    tally, ledger = Tally(), Ledger(USERS)
    with client(server.url, tally) as http:
        with LoadLoop(server.url, tally, ledger, Load(max_seconds=120, timeout=1.0)) as load:
            going(ledger, 20)
            server.process.send_signal(signal.SIGSTOP)
            try:
                failed = ledger.failed_attempts
                eventually(lambda: ledger.failed_attempts > failed, "a batch to go unanswered")
            finally:
                server.process.send_signal(signal.SIGCONT)
            going(ledger, 20)
            (root / "home.rules").write_text(home(20))
            assert_served_in_time(http, 20, time.monotonic())
            going(ledger, 10)
        load.drain(WAIT)
        assert sum(tally.unanswered.values()) > 0
        assert_counts(http, ledger, None)
    assert_clean(server, tally)


# --- 2. the directory is replaced, deleted and restored -------------------------------


def test_directory_replaced_deleted_and_restored_under_load(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    """A deploy that renames a new directory into place, then a re-clone (rm -rf, copy back), under load.

    On the memory store only: the store plays no part in watching files.
    While the directory is gone the version loaded before serves, and
    ``last_error`` says so; each new state is served within the bound, the
    restored directory too (its watch is armed anew: an edit in it is served
    as well).
    """
    root = write_ruleset(tmp_path / "rules", 10)
    staged = write_ruleset(tmp_path / "rules.new", 20)
    backup = write_ruleset(tmp_path / "backup", 30)
    server = start_server(root)
    tally, ledger = Tally(), Ledger(USERS)
    with client(server.url, tally) as http:
        with LoadLoop(server.url, tally, ledger) as load:
            going(ledger, 20)

            os.rename(root, tmp_path / "rules.old")  # mv rules rules.old && mv rules.new rules
            os.rename(staged, root)
            assert_served_in_time(http, 20, time.monotonic())
            going(ledger, 10)

            served = ruleset(http)["version"]
            shutil.rmtree(root)
            gone = eventually(lambda: (r := ruleset(http))["last_error"] and r, "the deletion to be reported")
            assert gone["last_error"][0]["message"].startswith(GONE)
            assert gone["version"] == served
            assert decide(http)["ruleset"]["version"] == served  # the old version serves on
            going(ledger, 10)

            shutil.copytree(backup, root)
            assert_served_in_time(http, 30, time.monotonic())
            (root / "home.rules").write_text(home(40))
            assert_served_in_time(http, 40, time.monotonic())
            going(ledger, 10)
        load.drain(WAIT)
        assert_counts(http, ledger, None)
    assert_clean(server, tally)
    assert tally.unanswered == {}


# --- 3. save bursts, half-written files and a FIFO -------------------------------------


def test_save_bursts_truncated_writes_and_a_fifo_model_under_load(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    """Twenty quick saves, a save that truncates then writes, and a model line naming a FIFO, under load.

    On the memory store only: the store plays no part in reading files.
    Nothing half-written is served (every decision has its hero slot), the
    FIFO is refused without hanging the reload while the old version serves,
    and each final state is served within the bound.
    """
    root = write_ruleset(tmp_path / "rules", 10)
    rules = root / "home.rules"
    server = start_server(root)
    tally, ledger = Tally(), Ledger(USERS)
    with client(server.url, tally) as http:
        with LoadLoop(server.url, tally, ledger) as load:
            going(ledger, 20)

            for priority in range(101, 121):  # an editor saving on every keystroke
                rules.write_text(home(priority))
                time.sleep(0.03)
            assert_served_in_time(http, 120, time.monotonic())
            going(ledger, 10)

            with rules.open("w") as file:  # a save that truncates, pauses, then writes
                file.flush()
                time.sleep(0.1)
                file.write(home(130))
            assert_served_in_time(http, 130, time.monotonic())
            going(ledger, 10)

            served = ruleset(http)["version"]
            os.mkfifo(root / "p.onnx")
            rules.write_text(home(140, '\nmodel p = "p.onnx"\n'))
            refused = eventually(lambda: (r := ruleset(http))["last_error"] and r, "the FIFO to be refused")
            assert NOT_REGULAR in refused["last_error"][0]["message"]
            assert refused["version"] == served
            rules.write_text(home(150))
            assert_served_in_time(http, 150, time.monotonic())
            going(ledger, 10)
        load.drain(WAIT)
        assert_counts(http, ledger, None)
    assert_clean(server, tally)
    assert tally.unanswered == {}
    assert tally.slot_missing == 0
    assert "no longer serves slot" not in server.output()


# --- 4. the largest batches beside decisions -------------------------------------------

BIG_BATCH = 1000  # the documented maximum per POST /v1/events
BIG_BATCHES = 10


@pytest.mark.parametrize("store", ["memory", "redis"], indirect=True)
def test_thousand_event_batches_beside_decisions(
    tmp_path: Path, start_server: Callable[..., Server], store: Store
) -> None:
    """Batches of 1,000 events, the most one POST /v1/events takes, posted while decisions are made.

    On both stores. No store is failing here, so no decision may degrade and
    no request may fail: a batch must not hold up the decisions beside it
    past their deadline. An edit made meanwhile is served in time.
    """
    root = write_ruleset(tmp_path / "rules", 10)
    server = start_server(root, *store.args)
    tally, ledger = Tally(), Ledger(USERS)
    deciding = Load(clients=2, batch_size=0, max_seconds=150)
    batching = Load(clients=1, batch_size=BIG_BATCH, decisions=False, max_requests=BIG_BATCHES, max_seconds=120)
    with client(server.url, tally) as http:
        with (
            LoadLoop(server.url, tally, ledger, deciding, seed=1),
            LoadLoop(server.url, tally, ledger, batching, seed=2) as batches,
        ):
            going(ledger, 3)
            (root / "home.rules").write_text(home(20))
            assert_served_in_time(http, 20, time.monotonic())
            batches.wait(WAIT * 2)
        batches.drain(WAIT)
        assert_counts(http, ledger, store.redis)
    assert_clean(server, tally)
    assert tally.unanswered == {}
    assert tally.degraded == 0, f"{tally.degraded} of {tally.decisions} decisions degraded beside the batches"


# --- 5. a Kubernetes ConfigMap volume ---------------------------------------------------


def test_configmap_updates_under_load(tmp_path: Path, start_server: Callable[..., Server]) -> None:
    """A ConfigMap volume (timestamped directory, ``..data`` link, per-key links) updated twice under load.

    On the memory store only: the store plays no part in reading files. Each
    update (a new timestamped directory, ``..data`` swapped to it, the old one
    deleted) is served within the bound, with each file read once.
    """
    mount = configmap(tmp_path / "config", {"home.rules": home(10), "search.rules": SEARCH})
    server = start_server(mount)
    tally, ledger = Tally(), Ledger(USERS)
    with client(server.url, tally) as http:
        with LoadLoop(server.url, tally, ledger) as load:
            going(ledger, 20)
            for priority, stamp in ((20, "..2026_11_29_12_05_00.456"), (30, "..2026_11_29_12_10_00.789")):
                configmap(mount, {"home.rules": home(priority), "search.rules": SEARCH}, stamp)
                assert_served_in_time(http, priority, time.monotonic())
                going(ledger, 10)
        load.drain(WAIT)
        assert_counts(http, ledger, None)
        assert len(ruleset(http)["rules"]) == 1  # each key read once, not again through ..data
    assert_clean(server, tally)
    assert tally.unanswered == {}
