"""``tailor ingest`` as it runs: real processes over a real Redis, killed and restarted.

The quick test runs one ingester to its graceful stop. The slow ones run two
beside a producer, kill one mid-stream and start another, and check that
every event and feedback item is counted exactly once; and kill one exactly
between its store write and its acknowledgement (pausing each Redis in turn),
and check that the restarted one counts the batch as duplicates.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bench.ports import free_port
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.runtime.feedback import Join
from tailor.runtime.redis_store import RedisStore
from tests.conftest import start_redis
from tests.server_process import eventually

STREAM = "site:events"
GROUP = "tailor"
DAY = 86400.0
VIEWS = FeatureRef(FeatureKind.COUNT, 'count("view", "Electronics", 86400s)', "view", "Electronics", DAY)
CLICKS = FeatureRef(FeatureKind.COUNT, 'count("click", "acc", 86400s)', "click", "acc", DAY)


class Ingest:
    """``tailor ingest`` in a subprocess, its output in a file."""

    def __init__(self, url: str, log: Path, *args: str):
        self.metrics_port = free_port()
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tailor.cli", "ingest", "--redis", url, "--stream", STREAM),
                    *("--group", GROUP, "--metrics-port", str(self.metrics_port), *args),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def metric(self, line_start: str) -> float | None:
        """The value of the first sample whose line starts with ``line_start``; None before the server is up."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
        return None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"tailor ingest ignored {sig.name}:\n{self.log.read_text()}") from None


@pytest.fixture
def ingesters() -> Iterator[list[Ingest]]:
    started: list[Ingest] = []
    yield started
    for ingest in started:
        if ingest.process.poll() is None:
            ingest.process.kill()
            ingest.process.wait()


def backlog(client: redis.Redis) -> tuple[int, int]:
    """The group's (lag, pending)."""
    group = next(g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP)
    return int(group["lag"] if group["lag"] is not None else -1), int(group["pending"])


def event(user: str, number: int) -> dict[str, str]:
    body = {"user_id": user, "type": "view", "key": "Electronics", "id": f"e{number}"}
    return {"event": json.dumps(body)}


def test_ingest_stores_what_is_added_shows_its_lag_and_stops_gracefully(
    empty_redis: str,
    ingesters: list[Ingest],
    tmp_path: Path,
):
    url = empty_redis
    client = redis.Redis.from_url(url, decode_responses=True)
    for number in range(50):
        client.xadd(STREAM, event(f"u{number % 5}", number))
    client.xadd(STREAM, {"event": "[]"})
    ingest = Ingest(url, tmp_path / "ingest.log", "--consumer", "one")
    ingesters.append(ingest)
    eventually(lambda: ingest.metric("tailor_ingest_acknowledged_total") == 51, "every entry acknowledged")
    assert ingest.metric('tailor_ingest_records_total{kind="event",outcome="accepted"}') == 50
    assert ingest.metric('tailor_ingest_records_total{kind="any",outcome="dead_letter"}') == 1
    eventually(lambda: ingest.metric("tailor_ingest_lag ") == 0, "the lag gauge to read 0")
    assert backlog(client) == (0, 0)
    assert client.xlen(f"{STREAM}:dead") == 1
    assert ingest.stop() == 0, ingest.log.read_text()
    counts = asyncio.run(_counts(url, [f"u{i}" for i in range(5)], [VIEWS]))
    assert counts == {VIEWS.text: 50}
    client.close()


async def _counts(url: str, users: list[str], refs: list[FeatureRef]) -> dict[str, int]:
    """Each feature summed over ``users``."""
    store = RedisStore(url)
    totals = dict.fromkeys((ref.text for ref in refs), 0)
    for user in users:
        for text, value in (await store.fetch(user, refs)).items():
            totals[text] += value
    await store.close()
    return totals


async def _keep(url: str, joins: list[Join]) -> None:
    store = RedisStore(url)
    await store.keep_decisions(joins, DAY)
    await store.close()


@pytest.mark.slow
def test_two_ingesters_count_everything_once_when_one_is_killed_mid_stream(
    empty_redis: str,
    ingesters: list[Ingest],
    tmp_path: Path,
):
    url = empty_redis
    users = [f"u{i}" for i in range(100)]
    events, decisions = 20_000, 500
    now = time.time()
    asyncio.run(
        _keep(url, [Join(f"d{i}", users[i % 100], "v1", now - 60, {"hero": ("r1", "acc")}) for i in range(decisions)])
    )
    client = redis.Redis.from_url(url, decode_responses=True)
    client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

    def produce() -> None:
        producer = redis.Redis.from_url(url)
        for start in range(0, events, 500):
            with producer.pipeline(transaction=False) as pipe:
                for number in range(start, start + 500):
                    pipe.xadd(STREAM, event(users[number % 100], number))
                    if number % (events // decisions) == 0:
                        click = {"decision_id": f"d{number // (events // decisions)}", "slot": "hero", "type": "click"}
                        pipe.xadd(STREAM, {"feedback": json.dumps({**click, "id": f"f{number}"})})
                pipe.execute()
            time.sleep(0.01)
        producer.close()

    log = tmp_path / "ingest.log"
    first = Ingest(url, log, "--consumer", "first", "--min-idle", "1s")
    second = Ingest(url, log, "--consumer", "second", "--min-idle", "1s")
    ingesters += [first, second]
    producing = threading.Thread(target=produce)
    producing.start()
    eventually(lambda: (first.metric("tailor_ingest_acknowledged_total") or 0) >= 2000, "the first to be busy")
    first.process.kill()  # mid-stream, with a batch likely read and not acknowledged
    first.process.wait()
    third = Ingest(url, log, "--min-idle", "1s")  # a new consumer: the default name, host and pid
    ingesters.append(third)
    producing.join()
    total = events + decisions
    eventually(lambda: backlog(client) == (0, 0) and client.xlen(STREAM) == total, "the whole stream acknowledged")
    assert client.xlen(f"{STREAM}:dead") == 0
    counts = asyncio.run(_counts(url, users, [VIEWS, CLICKS]))
    assert counts == {VIEWS.text: events, CLICKS.text: decisions}
    for ingest in (second, third):
        assert ingest.stop() == 0, log.read_text()
    client.close()


@pytest.mark.slow
def test_an_ingester_killed_after_the_store_write_and_before_the_acknowledgement_counts_once_when_restarted(
    empty_redis: str,
    ingesters: list[Ingest],
    tmp_path: Path,
):
    """The stream and the store in two Redis servers, so that each can be paused on its own: the store
    while the batch is read, the stream while the batch is written, so the kill falls between the two."""
    stream_url = empty_redis
    store_port = free_port()
    store_server = start_redis(store_port)
    store_url = f"redis://127.0.0.1:{store_port}/0"
    streams = redis.Redis.from_url(stream_url, decode_responses=True)
    store = redis.Redis(port=store_port)
    try:
        for number in range(100):
            streams.xadd(STREAM, event(f"u{number % 4}", number))
        store.client_pause(60_000, all=False)  # writes wait: the batch is read, not yet stored
        log = tmp_path / "ingest.log"
        first = Ingest(stream_url, log, "--consumer", "one", "--store", store_url)
        ingesters.append(first)
        eventually(lambda: _pending(streams) == 100, "the batch read")
        streams.client_pause(60_000, all=False)  # now the acknowledgement (a write) waits
        store.client_unpause()
        users = [f"u{i}" for i in range(4)]
        eventually(lambda: asyncio.run(_counts(store_url, users, [VIEWS])) == {VIEWS.text: 100}, "the batch stored")
        first.process.kill()
        first.process.wait()
        streams.client_unpause()
        assert _pending(streams) == 100  # stored, never acknowledged
        again = Ingest(stream_url, log, "--consumer", "one", "--store", store_url)
        ingesters.append(again)
        eventually(lambda: _pending(streams) == 0, "the batch acknowledged after the restart")
        assert again.metric('tailor_ingest_records_total{kind="event",outcome="duplicate"}') == 100
        assert asyncio.run(_counts(store_url, users, [VIEWS])) == {VIEWS.text: 100}
        assert again.stop() == 0, log.read_text()
    finally:
        streams.client_unpause()  # the module's server outlives this test
        streams.close()
        store.close()
        store_server.terminate()
        store_server.wait()


def _pending(client: redis.Redis) -> int:
    try:
        return int(client.xpending(STREAM, GROUP)["pending"])
    except redis.ResponseError:  # no group yet
        return -1


def test_a_window_of_no_batches_is_a_usage_error() -> None:
    command = [sys.executable, "-m", "tailor.cli", "ingest", "--redis", "redis://127.0.0.1:1/0", "--stream", "s"]
    result = subprocess.run([*command, "--group", "g", "--in-flight", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "tailor: --in-flight must be at least 1\n"
