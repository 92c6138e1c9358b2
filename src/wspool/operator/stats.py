"""What the operator reads from and writes to a pool's Redis, through the state engine.

Live connections come from the node registry (each node's ``server:{id}:info`` hash,
``activeConnections``, refreshed by its heartbeat), the same source the gateways balance on:
it is per node, current within a heartbeat, and a dead node drops out when its registration
lapses. A node counts as healthy when it is registered, not draining, reaches Redis, and no
gateway's health monitor has marked it down (``server:{id}:health``).

The pool config that the resource declares (strategy, maxConnections, healthThreshold,
healthCheck) is merged into the shared ``PoolConfig`` document, which every gateway replica
follows; fields the resource does not declare (weights, circuit breaker, slow start) keep
what the REST API set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wspool.core.keys import Keys
from wspool.core.poolconfig import PoolConfig
from wspool.core.records import NodeHealth, NodeInfo
from wspool.state.redis_engine import RedisEngine

__all__ = ["PoolStats", "count_healthy", "read_stats", "write_pool_config"]


@dataclass(frozen=True, slots=True)
class PoolStats:
    nodes: tuple[NodeInfo, ...]
    healthy: int

    @property
    def connections(self) -> int:
        return sum(node.active_connections for node in self.nodes)


def count_healthy(nodes: Sequence[NodeInfo], health: Mapping[str, NodeHealth | None]) -> int:
    def healthy(node: NodeInfo) -> bool:
        verdict = health.get(node.id)
        return not node.draining and node.redis_ok and (verdict is None or verdict.healthy)

    return sum(1 for node in nodes if healthy(node))


async def read_stats(redis_url: str, key_prefix: str) -> PoolStats:
    """The pool's registered nodes and how many are healthy; EngineUnavailableError if not."""
    engine = RedisEngine(redis_url, Keys(key_prefix))
    try:
        nodes = await engine.list_nodes()
        health = {node.id: await engine.get_node_health(node.id) for node in nodes}
    finally:
        await engine.close()
    return PoolStats(tuple(nodes), count_healthy(nodes, health))


async def write_pool_config(redis_url: str, key_prefix: str, declared: dict[str, Any]) -> bool:
    """Merge the declared fields into the shared pool config; True when it changed."""
    engine = RedisEngine(redis_url, Keys(key_prefix))
    try:
        stored = await engine.get_pool_config()
        current = PoolConfig.from_json(stored or {})
        merged = current.merged(declared).to_json()
        if stored is not None and merged == current.to_json():
            return False
        await engine.set_pool_config(merged)
        return True
    finally:
        await engine.close()
