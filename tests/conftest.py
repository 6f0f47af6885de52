"""A real Redis for the tests: ``TAILOR_TEST_REDIS_URL``, else a throwaway ``redis-server``.

Without either the Redis tests are skipped, unless ``TAILOR_REQUIRE_REDIS=1``
(as in CI), which makes a missing Redis a failure. The console's browser tests
treat a missing Chromium the same way, under ``TAILOR_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from bench.local_cluster import LocalCluster, local_cluster
from bench.ports import free_port


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A redis-server on ``port`` without persistence, answering PING; the caller stops it."""
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            if client.ping():
                return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port}")


def no_redis(reason: str) -> None:
    if os.environ.get("TAILOR_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (TAILOR_REQUIRE_REDIS=1)")
    pytest.skip(reason)


def no_browser(reason: str) -> None:
    """Chromium (or Playwright) is missing: a failure in CI (``TAILOR_REQUIRE_BROWSER=1``), else a skip."""
    if os.environ.get("TAILOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (TAILOR_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("TAILOR_TEST_REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except redis.RedisError as exc:
            no_redis(f"TAILOR_TEST_REDIS_URL does not answer: {exc}")
        yield url
        return
    if shutil.which("redis-server") is None:
        no_redis("no Redis: set TAILOR_TEST_REDIS_URL or install redis-server")
    port = free_port()
    process = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of the session's own (three masters, three replicas), started when first asked for."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        no_redis("no Redis Cluster: install redis-server and redis-cli")
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[str]:
    """A redis-server of the test module's own, for tests that use whole keyspaces (streams, groups, the
    store's default prefix) and processes that cannot be given a key prefix."""
    if shutil.which("redis-server") is None:
        no_redis("this test needs a redis-server of its own")
    port = free_port()
    process = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def empty_redis(module_redis: str) -> str:
    """The URL of ``module_redis``, emptied before the test."""
    client = redis.Redis.from_url(module_redis)
    client.flushdb()
    client.close()
    return module_redis
