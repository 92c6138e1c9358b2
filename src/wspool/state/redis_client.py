"""What every part of the Redis engine shares: its clients, and how a command's failure reads.

No part retries inside redis-py: a failure surfaces at once as ``EngineUnavailableError``
through :func:`run`, and the caller's own loop (state writer, publisher, pub/sub reader)
decides when to try again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from wspool.state.engine import EngineUnavailableError

__all__ = ["connect", "dedicated", "fields", "ms", "run"]


MAX_LINKS = 64
"""Connections a client opens to Redis at most; requests beyond them queue for a free one."""

POOL_WAIT = 5.0
"""Seconds a request waits for a free connection before it counts as the store unreachable."""


def connect(url: str, socket_timeout: float | None) -> aioredis.Redis:
    """A client of ``url`` that fails fast (it connects on first use).

    Its pool holds at most :data:`MAX_LINKS` connections and makes a burst of requests (a
    node's clients all subscribing again after a failover) wait their turn instead of failing
    with "Too many connections"; one that waits :data:`POOL_WAIT` seconds fails as unreachable.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_LINKS,
        timeout=POOL_WAIT,
        socket_timeout=socket_timeout,
        **_options(),
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closes the pool with it
    return client


def dedicated(url: str) -> Callable[[], AbstractConnection]:
    """Makes connections to ``url`` that belong to no pool, with the options of
    :func:`connect` and no read timeout: their user keeps its own deadlines
    (:mod:`wspool.state.redis_links`). They speak RESP2, in which pub/sub messages are
    plain replies rather than RESP3 pushes, which redis-py routes through a handler each."""
    pool = ConnectionPool.from_url(url, socket_timeout=None, protocol=2, **_options())

    def make() -> AbstractConnection:
        connection: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
        return connection

    return make


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
    except (RedisError, OSError) as error:
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
