"""Server nodes started inside the test's event loop, on loopback ports."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from wspool.core.config import ServerSettings
from wspool.core.keys import Keys
from wspool.core.security import SecuritySettings
from wspool.server.node import NodeEngine, ServerNode
from wspool.state.memory import MemoryBroker
from wspool.state.redis_engine import RedisEngine

__all__ = ["running_node", "running_nodes", "ws_url"]

FAST = ServerSettings(
    host="127.0.0.1",
    port=0,
    heartbeat_interval=0.2,
    node_ttl=1.0,
    drain_window=0.5,
    activity_flush_interval=0.3,
    # Tests of other rules run open and unthrottled; the security tests pass their own.
    security=SecuritySettings(
        insecure=True, messages_per_second=0, connection_attempts_per_ip=0, max_connections_per_ip=0
    ),
)


@asynccontextmanager
async def running_node(
    redis_url: str, node_id: str = "n1", **settings: Any
) -> AsyncIterator[ServerNode]:
    """A node on the Redis engine; stopped (and its engine closed) on exit."""
    node_settings = dataclasses.replace(FAST, id=node_id, **settings)
    engine = RedisEngine(redis_url, Keys(), node_settings.history, node_settings.session_ttl)
    node = ServerNode(node_settings, engine)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        await node.engine.close()


def ws_url(node: ServerNode, query: str = "") -> str:
    return f"ws://127.0.0.1:{node.port}/ws{query}"


@asynccontextmanager
async def running_nodes(
    kind: str, redis_url: str, count: int = 2, **settings: Any
) -> AsyncIterator[list[ServerNode]]:
    """``count`` nodes sharing one store: Redis (``kind="redis"``) or one in-memory broker."""
    broker = MemoryBroker()
    nodes: list[ServerNode] = []
    try:
        for index in range(count):
            node_settings = dataclasses.replace(FAST, id=f"n{index + 1}", **settings)
            broker.history_policy = node_settings.history
            engine: NodeEngine = (
                RedisEngine(redis_url, Keys(), node_settings.history, node_settings.session_ttl)
                if kind == "redis"
                else broker.engine()
            )
            node = ServerNode(node_settings, engine)
            await node.start()
            nodes.append(node)
        yield nodes
    finally:
        for node in nodes:
            await node.stop()
            await node.engine.close()
