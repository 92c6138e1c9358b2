"""What every part of the Redis engine shares: its clients, and how a command's failure reads.

The engine's Redis is one server, a Redis Cluster or a primary watched by Sentinel, as the
URL says (:mod:`wspool.core.redisurl`); :func:`connect` makes the command client of each,
:func:`dedicated` and :func:`node_connections` the connections of the bus's own links.

No part retries inside redis-py: a failure surfaces at once as ``EngineUnavailableError``
through :func:`run`, and the caller's own loop (state writer, publisher, pub/sub reader)
decides when to try again. (A cluster client follows the cluster's redirections and
refreshes its slot map, a few times with short pauses, before it gives up.)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import hiredis  # noqa: F401 (the parser of the bus's own links; a missing one fails here, named)
import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.maint_notifications import MaintNotificationsConfig
from redis.typing import EncodableT, FieldT

from wspool.core.redisurl import RedisKind, RedisTarget
from wspool.state.engine import EngineUnavailableError

__all__ = [
    "FAILURES",
    "Client",
    "close",
    "connect",
    "dedicated",
    "fields",
    "ms",
    "node_connections",
    "run",
]

Client = aioredis.Redis | RedisCluster
"""The command client: of one server (or Sentinel's primary), or of a cluster."""


FAILURES = (RedisError, RedisClusterException, OSError)
"""What a command raises when Redis cannot answer it (a cluster client's own errors, such as
slots not covered while a shard fails over, are no ``RedisError``)."""

MAX_LINKS = 64
"""Connections a client opens to Redis at most; requests beyond them queue for a free one."""

POOL_WAIT = 5.0
"""Seconds a request waits for a free connection before it counts as the store unreachable."""


def connect(target: RedisTarget, socket_timeout: float | None) -> Client:
    """A client of ``target`` that fails fast (it connects on first use).

    Its pool holds at most :data:`MAX_LINKS` connections (per node, on a cluster). On one
    server or Sentinel's primary, it makes a burst of requests (a node's clients all
    subscribing again after a failover) wait their turn instead of failing with "Too many
    connections"; one that waits :data:`POOL_WAIT` seconds fails as unreachable.
    """
    if target.kind is RedisKind.CLUSTER:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            max_connections=MAX_LINKS,
            socket_timeout=socket_timeout,
            **_credentials(target),
            # Redirections and a refreshed slot map (a failover, a resharding) within ~1 s.
            **{**_options(), "retry": Retry(ExponentialBackoff(cap=0.5, base=0.1), 3)},
        )
    pool: ConnectionPool
    if target.kind is RedisKind.SENTINEL:
        pool = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
            target.primary,
            _sentinel(target),
            max_connections=MAX_LINKS,
            timeout=POOL_WAIT,
            socket_timeout=socket_timeout,
            **_credentials(target),
            **_options(),
        )
    else:
        pool = BlockingConnectionPool.from_url(
            target.url,
            max_connections=MAX_LINKS,
            timeout=POOL_WAIT,
            socket_timeout=socket_timeout,
            **_options(),
        )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closes the pool with it
    return client


def dedicated(target: RedisTarget, client: aioredis.Redis) -> Callable[[], AbstractConnection]:
    """Makes connections to ``target`` (one server, or Sentinel's current primary, asking the
    Sentinels of ``client``, its command client) that belong to no pool, with the options
    of :func:`connect` and no read timeout: their user keeps its own deadlines
    (:class:`wspool.state.redis_links.SingleLink`). They speak RESP3, in which a subscribed
    connection still takes commands, read by hiredis through redis-py's parser class for it
    (in C: 6-9 % less of a node's CPU per delivery with many channels than redis-py's own
    RESP3 parser, docs/benchmarks.md), whose push handler tells pub/sub messages from
    replies (hiredis 3.2 and later), without redis-py's maintenance notifications."""
    options = {
        "socket_timeout": None,
        "protocol": 3,
        "parser_class": _AsyncHiredisParser,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        **_options(),
    }
    pool: ConnectionPool
    if isinstance(client.connection_pool, SentinelConnectionPool):
        pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.primary,
            client.connection_pool.sentinel_manager,
            **options,
            **_credentials(target),
        )
    else:
        pool = ConnectionPool.from_url(target.url, **options)

    def make() -> AbstractConnection:
        connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
        return connection

    return make


async def close(client: Client) -> None:
    """Close ``client``'s connections, and those to its Sentinels if it has any."""
    await client.aclose()
    pool = client.connection_pool if isinstance(client, aioredis.Redis) else None
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def node_connections(node: ClusterNode) -> Callable[[], AbstractConnection]:
    """What :func:`dedicated` makes, to one node of a cluster (with the cluster client's
    options: credentials, TLS)."""
    options = {**node.connection_kwargs, "socket_timeout": None, "protocol": 2}
    options["retry"] = Retry(NoBackoff(), 0)
    for resp3_only in ("maint_notifications_config", "oss_cluster_maint_notifications_handler"):
        options.pop(resp3_only, None)

    def make() -> AbstractConnection:
        connection: AbstractConnection = node.connection_class(**options)
        return connection

    return make


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Connections to Sentinel's current primary, with a blocking pool's queue."""


def _sentinel(target: RedisTarget) -> Sentinel:
    """The Sentinels of ``target``; they are asked without the data nodes' credentials."""
    return Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs={"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "ssl": target.tls},
    )


def _credentials(target: RedisTarget) -> dict[str, Any]:
    return {"username": target.username, "password": target.password, "ssl": target.tls}


def _options() -> dict[str, Any]:
    """What every connection of the engine shares: decoded replies, a short connect
    timeout, keepalive, and no retry inside redis-py."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": 2.0,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }


async def run(awaitable: Any) -> Any:
    """Await a Redis command; ``EngineUnavailableError`` when Redis cannot answer it."""
    # redis-py can swallow a cancellation while it drops a connection (returning, or
    # raising a connection error); a cancelled caller must see CancelledError, or its
    # loop goes on and whoever awaits the cancellation waits forever.
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    try:
        result = await awaitable
    except FAILURES as error:
        if task is not None and task.cancelling() > cancelling:
            raise asyncio.CancelledError from error
        raise EngineUnavailableError(str(error)) from error
    if task is not None and task.cancelling() > cancelling:
        raise asyncio.CancelledError
    return result


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds of PX/PEXPIRE, at least one."""
    return max(1, math.ceil(seconds * 1000))


def fields(mapping: dict[str, str]) -> dict[FieldT, EncodableT]:
    """A record's hash, typed as HSET takes it."""
    return dict(mapping.items())
