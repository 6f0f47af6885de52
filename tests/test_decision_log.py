"""The decision log, end to end: real ``tailor serve`` processes writing to files and to a Redis Stream.

Each test starts a server (and, for Redis, a ``redis-server`` of its own, to
stop and freeze), makes decisions over HTTP, and reads the log back through
``decision_log_reader`` and ``tailor log``: one record per served decision,
with the fields a replay needs; explanations never logged; a failing or
stuck sink never touching a decision.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import no_redis
from redis_process import RedisProcess, private_redis
from server_process import Server, eventually, servers

from tailor.cli import main
from tailor.runtime.decision_log import sampled
from tailor.runtime.decision_log_reader import find_record, log_files, read_records, tail
from tailor.runtime.decision_log_stream import stream_key
from tailor.runtime.decision_record import DecisionRecord, SlotServed

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
AT = 1_795_000_000.0  # a fixed decision time, so the records' times are known
FAN = {'views("Electronics", 24h)': 5}  # makes electronics_fan hold, so p_click runs


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    with servers(tmp_path) as start:
        yield start


@pytest.fixture
def private(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        no_redis("no redis-server to start, stop and freeze")
    with private_redis(tmp_path / "redis") as server:
        yield server


def log_count(server: Server, outcome: str) -> float:
    """``tailor_decision_log_records_total`` for one outcome."""
    return server.metric(f'tailor_decision_log_records_total{{outcome="{outcome}"}}') or 0.0


def settled(server: Server, expected: int) -> None:
    """Wait until the log has accounted for ``expected`` records and its queue is empty."""

    def done() -> bool:
        counted = sum(log_count(server, o) for o in ("written", "dropped", "sampled_out", "failed"))
        return counted == expected and server.metric("tailor_decision_log_queued") == 0

    eventually(done, f"the log to account for {expected} records")


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tailor(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """``tailor ARGS`` in this process (as the command line would run it): its exit code and output."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


# --- files ---


def test_files_hold_one_record_per_served_decision_rotated_and_compressed(
    start_server, tailor: Callable[..., Ran], tmp_path: Path
) -> None:
    logs = tmp_path / "log"
    server = start_server(RETAIL, "--decision-log", str(logs), "--log-max-bytes", "1")  # a file per batch
    requests: list[dict[str, Any]] = [
        {"user_id": "gold", "context": {"page": "home"}, "features": {"user.tier": "gold"}},
        {"user_id": "fan", "context": {"page": "home", "device": "mobile"}, "features": FAN},
        {"user_id": "plain", "context": {"page": "home"}},
        {"user_id": "nothing", "slots": ["no_such_slot"]},
    ]
    answers = [server.decide(**requests[n % len(requests)], at=AT + n) for n in range(12)]
    settled(server, 12)  # written: the next decisions go to another batch, so another file
    answers += [server.decide(**requests[n % len(requests)], at=AT + n) for n in range(12, 24)]
    explained = server.http.post("/v1/explain", json={"user_id": "x", "at": AT}, headers=server.auth)
    assert explained.status_code == 200
    assert server.stop() == 0  # a clean stop writes what is queued, and waits for the compression

    files = log_files(logs)
    assert len(files) >= 2 and all(f.name.endswith(".ndjson.gz") for f in files)
    assert sorted(p.name for p in logs.iterdir()) == [f.name for f in files]  # no plain copy, nothing partial
    records = list(read_records(logs))
    assert [r.decision_id for r in records] == [a["decision_id"] for a in answers]  # in order, explain absent
    gold, fan, plain, nothing = records[:4]
    assert gold.at == AT and gold.user_id == "gold" and gold.ruleset == "retail"
    assert gold.version == answers[0]["ruleset"]["version"]
    assert gold.slots["hero"].to_dict() == {"content": "hero_vip", "rule": "vip_early_access", "priority": 30}
    assert gold.features["user.tier"] == "gold" and gold.context == {"page": "home"}
    assert plain.slots["hero"].to_dict() == {"content": "hero_generic", "rule": "default", "priority": None}
    assert plain.features['views("Electronics", 24h)'] == 0  # read from the (empty) store, by canonical text
    assert nothing.slots == {"no_such_slot": nothing.slots["no_such_slot"]}
    assert nothing.slots["no_such_slot"].to_dict() == {"content": None, "rule": None, "priority": None}
    assert set(fan.models) == {"p_click"} and 0.0 <= fan.models["p_click"] <= 1.0
    assert fan.features['views("Electronics", 24h)'] == 5
    assert not any(r.degraded for r in records) and all(r.reason is None for r in records)
    assert list(read_records(logs, since=AT + 10, until=AT + 12)) == records[10:12]

    # tailor log, on the same files
    shown = tailor("log", "tail", "--dir", str(logs), "-n", "2")
    assert shown.returncode == 0, shown.stderr
    ids = [a["decision_id"] for a in answers]
    version = answers[0]["ruleset"]["version"]
    assert shown.stdout.replace(ids[22], "ID22").replace(ids[23], "ID23").replace(version, "V") == (
        "2026-11-18 11:07:02.000Z  ID22  user plain  retail V  cart_upsell=upsell_bestsellers (default)  "
        "hero=hero_generic (default)  sidebar=sidebar_reviews (default)\n"
        "2026-11-18 11:07:03.000Z  ID23  user nothing  retail V  no_such_slot=-\n"
    )
    one = tailor("log", "show", ids[1], "--dir", str(logs))
    assert one.returncode == 0 and '"p_click":' in one.stdout and one.stdout.startswith("{\n")
    assert find_record(logs, ids[1]) == fan
    missing = tailor("log", "show", "0" * 32, "--dir", str(logs))
    assert missing.returncode == 1 and "is not in the log" in missing.stderr
    exported = tailor("log", "export", "--since", "2026-11-18T11:07:00Z", "--dir", str(logs))
    assert exported.returncode == 0 and exported.stdout.count("\n") == 4


def test_the_store_failing_is_logged_as_the_reason_a_decision_degraded(
    start_server, private: RedisProcess, tmp_path: Path
) -> None:
    logs = tmp_path / "log"
    server = start_server(RETAIL, "--redis", private.url, "--decision-log", str(logs), "--deadline-ms", "300")
    assert server.decide()["degraded"] is False
    private.freeze()
    try:
        assert server.decide()["degraded"] is True  # the read times out
    finally:
        private.thaw()
    private.kill()
    assert server.decide()["degraded"] is True  # the store refuses the connection
    settled(server, 3)
    assert [(r.degraded, r.reason) for r in read_records(logs)] == [
        (False, None),
        (True, "timeout"),
        (True, "store_error"),
    ]


def test_a_file_being_compressed_is_read_once_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    record = DecisionRecord(
        "d1",
        AT,
        "u1",
        "retail",
        "v1",
        {"hero": SlotServed("hero_vip", "vip", 30)},
        {},
        {"user.tier": "gold"},
        {},
        False,
        None,
    )
    line = (json.dumps(record.to_dict()) + "\n").encode()
    first = tmp_path / "decisions-20261129T000000.000000Z-1.ndjson"
    second = tmp_path / "decisions-20261129T000001.000000Z-1.ndjson"
    first.write_bytes(line)
    (tmp_path / (first.name + ".gz")).write_bytes(gzip.compress(line))  # compressed, the plain not yet removed
    (tmp_path / (first.name + ".gz.tmp")).write_bytes(b"partial")
    second.write_bytes(line + line[:40])  # the last line still being written
    assert [p.name for p in log_files(tmp_path)] == [first.name, second.name]
    assert list(read_records(tmp_path)) == [record, record]


# --- the Redis Stream ---


def test_the_stream_holds_every_decision_and_a_failing_redis_never_fails_one(
    start_server, private: RedisProcess, tailor: Callable[..., Ran]
) -> None:
    server = start_server(RETAIL, "--redis", private.url, "--deadline-ms", "300")  # the Stream: --redis's default
    answers = [server.decide(user_id=f"u{n}", at=AT + n) for n in range(12)]
    server.http.post("/v1/explain", json={"user_id": "x"}, headers=server.auth)
    settled(server, 12)
    assert private.client.xlen(stream_key()) == 12
    assert [r.decision_id for r in read_records(private.url)] == [a["decision_id"] for a in answers]
    assert [r.user_id for r in tail(private.url, 3)] == ["u9", "u10", "u11"]
    shown = tailor("log", "show", answers[4]["decision_id"], "--redis", private.url)
    assert shown.returncode == 0 and '"user_id": "u4"' in shown.stdout

    private.kill()  # the store and the log's sink fail together
    down = [server.decide(user_id="u") for _ in range(3)]
    assert all(answer["degraded"] for answer in down)  # served, degraded: never failed for the log
    settled(server, 15)
    assert log_count(server, "failed") == 3 and server.metric("tailor_decision_log_sink_errors_total") >= 1
    private.start()
    eventually(lambda: not server.decide()["degraded"], "Redis to answer again")
    eventually(lambda: log_count(server, "written") > 12, "the log to write again")
    output = server.output()
    assert output.count("decision log: cannot write to") == 1  # said once, not per record
    assert "decision log: writing to the Redis Stream tailor:decisions" in output


def test_sampling_and_a_full_queue_drop_records_not_decisions(start_server, private: RedisProcess) -> None:
    server = start_server(RETAIL, "--decision-log", private.url, "--log-sample", "0.5", "--log-queue", "4")
    total = 200
    answers = [server.decide(user_id=f"u{n}") for n in range(total)]
    settled(server, total)
    logged = {r.decision_id for r in read_records(private.url)}
    chosen = {a["decision_id"] for a in answers if sampled(a["decision_id"], 0.5)}  # the id decides
    assert logged <= chosen and len(chosen) - len(logged) == log_count(server, "dropped")
    assert log_count(server, "sampled_out") == total - len(chosen)
    bound = 5 * math.sqrt(total * 0.25)  # five standard deviations of Binomial(200, 0.5)
    assert abs(len(chosen) - total / 2) < bound

    private.freeze()  # the writer waits on a Redis that does not answer; the queue fills up
    try:
        more = [server.decide(user_id="v") for _ in range(60)]
        assert all(not answer["degraded"] for answer in more)  # the memory store: decisions never wait on the log
        eventually(lambda: log_count(server, "dropped") > 0, "records to be dropped")
    finally:
        private.thaw()
    settled(server, total + 60)
    assert server.metric("tailor_decision_log_queued") == 0


# --- the command line ---


def test_tailor_log_refuses_a_directory_that_is_not_there(tailor: Callable[..., Ran], tmp_path: Path) -> None:
    result = tailor("log", "tail", "--dir", str(tmp_path / "nope"))
    assert result.returncode == 2 and "no such directory" in result.stderr
    both = tailor("log", "tail", "--dir", str(tmp_path), "--redis", "redis://127.0.0.1:1/0")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_serve_refuses_bad_log_options(tailor: Callable[..., Ran], tmp_path: Path) -> None:
    (tmp_path / "home.rules").write_text("content a = {}\ndefault show a in hero\n")
    for args, problem in (
        (["--log-sample", "1.5"], "--log-sample must be a fraction from 0 to 1"),
        (["--log-queue", "0"], "--log-queue must be at least 1"),
        (["--decision-log", "http://x"], "is not a Redis URL"),
        (["--decision-log", str(tmp_path / "home.rules")], "not a directory"),
    ):
        result = tailor("serve", str(tmp_path), *args)
        assert result.returncode == 2 and problem in result.stderr, result.stderr
