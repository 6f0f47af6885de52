"""Redis clients for one URL, whether it names a single Redis or a node of a Redis Cluster.

A cluster is found by asking the node (``INFO cluster``'s ``cluster_enabled``),
or forced (``--redis-cluster``). On a cluster, redis-py's ``RedisCluster``
finds the other nodes from the one named, routes each command to the node
that holds its keys, follows MOVED and ASK redirections while slots move,
and, when a node stops answering, refreshes its map of the cluster and tries
again. Its retries back off briefly and give up within about a second; the
callers bound every call anyway (a decision by its deadline), so a decision
caught in a fail-over degrades instead of failing.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis as BlockingRedis
from redis import RedisCluster as BlockingRedisCluster
from redis import exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry as BlockingRetry

from .redis_packing import packed_connections
from .redis_urls import without_password

log = logging.getLogger("tailor.runtime")

HEALTH_CHECK_SECONDS = 30
DETECT_TIMEOUT = 2.0  # seconds to ask a node whether it is part of a cluster
# On a cluster: tries after a connection error or a moved slot, each after a short pause while the
# cluster elects a new master (0.05, 0.1, 0.2, 0.2 s ...), refreshing the map of slots before each.
CLUSTER_RETRIES = 6
CLUSTER_BACKOFF = ExponentialBackoff(cap=0.2, base=0.05)

AsyncClient = Redis | RedisCluster
BlockingClient = BlockingRedis | BlockingRedisCluster


def cluster_enabled(url: str, timeout: float = DETECT_TIMEOUT) -> bool:
    """Whether the Redis at ``url`` is a node of a Redis Cluster; False when it does not answer (logged)."""
    client = BlockingRedis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return int(client.info("cluster").get("cluster_enabled", 0)) == 1
    except exceptions.RedisError as exc:
        log.warning("could not ask %s whether it is a cluster (%s); assuming one Redis", without_password(url), exc)
        return False
    finally:
        client.close()


def _single_options(timeout: float, blocking: bool) -> dict[str, Any]:
    retry = BlockingRetry if blocking else Retry
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        # One immediate retry on a dropped connection: after a restart of
        # Redis the first command meets a dead pooled socket. Timeouts are
        # not retried, so a hung Redis costs one timeout, not several.
        "retry": retry(NoBackoff(), 1, (exceptions.ConnectionError,)),
    }


def _cluster_options(timeout: float, blocking: bool) -> dict[str, Any]:
    retry = BlockingRetry if blocking else Retry
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": retry(CLUSTER_BACKOFF, CLUSTER_RETRIES),
    }


def cluster_url(url: str) -> str:
    """A cluster has database 0 alone: a URL's ``/0`` is dropped, which ``RedisCluster`` would refuse."""
    head, _, path = url.partition("://")
    host, slash, db = path.partition("/")
    if slash and db.split("?")[0] not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 alone, not {db.split('?')[0]}")
    query = db.partition("?")[2]
    return f"{head}://{host}" + (f"?{query}" if query else "")


def async_client(
    url: str, *, cluster: bool, name: str, timeout: float, max_connections: int | None = None
) -> AsyncClient:
    """An asyncio client named ``name`` in ``CLIENT LIST``; with ``max_connections`` on one Redis,
    a pool where callers beyond it wait their turn (on a cluster, each node has its own pool)."""
    if cluster:
        return RedisCluster.from_url(cluster_url(url), client_name=name, **_cluster_options(timeout, False))
    if max_connections is None:
        return Redis.from_url(url, client_name=name, **_single_options(timeout, False), **packed_connections(url))
    pool = BlockingConnectionPool.from_url(
        url,
        client_name=name,
        max_connections=max_connections,
        timeout=None,  # a write waits its turn; the caller bounds how long
        **_single_options(timeout, False),
        **packed_connections(url),
    )
    return Redis.from_pool(pool)


def blocking_client(url: str, *, cluster: bool, name: str, timeout: float) -> BlockingClient:
    """A blocking client, for code without an event loop, with the same timeouts and retries."""
    if cluster:
        return BlockingRedisCluster.from_url(cluster_url(url), client_name=name, **_cluster_options(timeout, True))
    return BlockingRedis.from_url(url, client_name=name, **_single_options(timeout, True))
