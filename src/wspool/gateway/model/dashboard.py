"""What the dashboard shows: one snapshot of the pool, and the point it adds to each chart.

:func:`pool_snapshot` turns the gateway's picture of the farm (a :class:`NodeView` per node,
the replica's own figures, the pool config) into the JSON document every open dashboard
receives once per interval. Its ``point`` is one sample of every time series the page charts,
as a flat list in the order of :data:`SERIES`, so that a page's history (``history``: the
points so far) costs a few numbers per second.

Rates and the error rate come from the nodes' own counters over the last health-check
interval (``model.poolstats``); latency percentiles are those of this replica's last health
checks of every healthy node (10 per node), the round trip a client's connect pays first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wspool.gateway.model.poolstats import NodeSample, node_rates, pool_metrics

__all__ = ["SERIES", "NodeView", "ReplicaView", "percentile", "pool_snapshot"]

SERIES = (
    "at",
    "connections",
    "messagesInPerSecond",
    "messagesOutPerSecond",
    "latencyP50",
    "latencyP95",
    "latencyP99",
    "errorRate",
)
"""The members of a ``point``, in order: seconds since the epoch, then one figure per chart."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as the dashboard shows it."""

    id: str
    url: str
    healthy: bool
    circuit: str
    weight: int
    ramp: float
    """Its slow-start factor now, 0 to 1 (1: no ramp, or the ramp is over)."""
    draining: bool
    connections: int
    samples: tuple[NodeSample, ...]
    """Its two latest health reports (fewer before its second check)."""
    latencies_ms: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """The gateway replica that sends the snapshot."""

    id: str
    replicas: int
    store_up: bool
    relayed_connections: int
    writes_open: bool
    """Whether changes need no credential (an ``--insecure`` gateway, as ``wspool dev``)."""


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` from 0 to 1) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def pool_snapshot(
    at: float, replica: ReplicaView, config: Mapping[str, Any], nodes: Sequence[NodeView]
) -> dict[str, Any]:
    """The document every dashboard receives: the replica, the config, the nodes, the pool."""
    rates = [
        node_rates(*n.samples) if len(n.samples) == 2 else node_rates(None, None) for n in nodes
    ]
    healthy = [n for n in nodes if n.healthy and n.samples]
    metrics = pool_metrics(
        [n.connections for n in nodes],
        len(healthy),
        rates,
        [sum(n.latencies_ms) / len(n.latencies_ms) for n in healthy if n.latencies_ms],
    )
    latencies = [ms for n in healthy for ms in n.latencies_ms]
    point = [
        round(at, 3),
        metrics.total_connections,
        metrics.messages_per_second,
        round(sum(r.messages_out_per_second for r in rates), 3),
        *(round(percentile(latencies, share), 3) for share in (0.5, 0.95, 0.99)),
        metrics.error_rate,
    ]
    return {
        "type": "snapshot",
        "gateway": {
            "id": replica.id,
            "replicas": replica.replicas,
            "store": "up" if replica.store_up else "down",
            "relayedConnections": replica.relayed_connections,
            "writesOpen": replica.writes_open,
        },
        "config": dict(config),
        "pool": {
            "totalConnections": metrics.total_connections,
            "maxConnections": config.get("maxConnections"),
            "activeServers": metrics.active_servers,
            "totalServers": len(nodes),
        },
        "nodes": [
            {
                "id": node.id,
                "url": node.url,
                "healthy": node.healthy and bool(node.samples),
                "circuit": node.circuit,
                "weight": node.weight,
                "ramp": round(node.ramp, 3),
                "draining": node.draining,
                "connections": node.connections,
                "messagesInPerSecond": round(rate.messages_in_per_second, 3),
                "messagesOutPerSecond": round(rate.messages_out_per_second, 3),
                "latencyMs": round(node.latencies_ms[-1], 3) if node.latencies_ms else None,
            }
            for node, rate in zip(nodes, rates, strict=True)
        ],
        "point": point,
    }
