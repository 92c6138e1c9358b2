"""What the operator reads from and writes to a pool's Redis, through the state engine.

:func:`pool_store` opens the pool's engine; :func:`read_stats` reads the node registry and
the gateways' health verdicts through it, :func:`write_pool_config` the shared pool config.

Live connections come from the node registry (each node's ``server:{id}:info`` hash,
``activeConnections``, refreshed by its heartbeat), the same source the gateways balance on:
it is per node, current within a heartbeat, and a dead node drops out when its registration
lapses. A node counts as healthy when it is registered, not draining, reaches Redis, and no
gateway's health monitor has marked it down (``server:{id}:health``).

The pool config that the resource declares (strategy, maxConnections, healthThreshold,
healthCheck) is merged into the shared ``PoolConfig`` document, which every gateway replica
follows live (no pod restarts); fields the resource does not declare (weights, circuit
breaker, slow start) keep what the REST API set. The write reports what it changed, for the
pool's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from wspool.core.keys import Keys
from wspool.core.poolconfig import PoolConfig
from wspool.core.records import NodeHealth, NodeInfo
from wspool.state.engine import GatewayState, NodeRegistry
from wspool.state.redis_engine import RedisEngine

__all__ = [
    "PoolStats",
    "config_changes",
    "count_healthy",
    "pool_store",
    "read_stats",
    "write_pool_config",
]


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


@asynccontextmanager
async def pool_store(redis_url: str, key_prefix: str) -> AsyncIterator[RedisEngine]:
    """The engine of the pool whose keys start with ``key_prefix``, closed on exit."""
    engine = RedisEngine(redis_url, Keys(key_prefix))
    try:
        yield engine
    finally:
        await engine.close()


async def read_stats(registry: NodeRegistry, shared: GatewayState) -> PoolStats:
    """The pool's registered nodes and how many are healthy; EngineUnavailableError if not."""
    nodes = await registry.list_nodes()
    health = {node.id: await shared.get_node_health(node.id) for node in nodes}
    return PoolStats(tuple(nodes), count_healthy(nodes, health))


def _flat(document: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{path}{key}."))
        else:
            flat[f"{path}{key}"] = value
    return flat


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], declared: Mapping[str, Any]
) -> list[str]:
    """The declared fields that differ, as ``healthCheck.interval 5 -> 2``; every declared
    field as ``strategy round-robin`` when there was no config before."""
    old, new = _flat(before or {}), _flat(after)
    fields = [path for path in _flat(declared) if path in new]
    if before is None:
        return [f"{path} {_show(new[path])}" for path in fields]
    return [
        f"{path} {_show(old.get(path))} -> {_show(new[path])}"
        for path in fields
        if old.get(path) != new[path]
    ]


async def write_pool_config(shared: GatewayState, declared: dict[str, Any]) -> list[str]:
    """Merge the declared fields into the shared pool config; what changed (see
    :func:`config_changes`), empty when the stored config already said so."""
    stored = await shared.get_pool_config()
    current = PoolConfig.from_json(stored or {})
    merged = current.merged(declared).to_json()
    if stored is not None and merged == current.to_json():
        return []
    await shared.set_pool_config(merged)
    return config_changes(current.to_json() if stored is not None else None, merged, declared)
