"""``PoolMetrics`` arithmetic: pool-wide figures from what each node reports.

Every node's ``/health`` carries monotonically growing counters (messages in, messages
out, error replies). The gateway's health monitor keeps the two latest samples of each node;
rates are the counter differences over the time between them, so each figure covers the
last health-check interval (5 s by default). A counter that went backwards means the node
restarted, and its new value is taken as the increase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NodeRates", "NodeSample", "PoolMetrics", "node_rates", "pool_metrics"]


@dataclass(frozen=True, slots=True)
class NodeSample:
    at: float
    connections: int = 0
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class NodeRates:
    messages_in_per_second: float = 0.0
    messages_out_per_second: float = 0.0
    errors_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    total_connections: int
    active_servers: int
    messages_per_second: float
    """Client messages received per second by all nodes (inbound, before fan-out)."""
    average_latency: float
    """Mean round trip of the gateway's health checks to healthy nodes, in milliseconds."""
    error_rate: float
    """Share of client messages answered with an error, 0 to 1."""


def _increase(before: int, after: int) -> int:
    return after if after < before else after - before


def node_rates(previous: NodeSample | None, latest: NodeSample | None) -> NodeRates:
    if previous is None or latest is None or latest.at <= previous.at:
        return NodeRates()
    elapsed = latest.at - previous.at
    return NodeRates(
        messages_in_per_second=_increase(previous.messages_in, latest.messages_in) / elapsed,
        messages_out_per_second=_increase(previous.messages_out, latest.messages_out) / elapsed,
        errors_per_second=_increase(previous.errors, latest.errors) / elapsed,
    )


def pool_metrics(
    connections: Sequence[int],
    healthy: int,
    rates: Sequence[NodeRates],
    latencies_ms: Sequence[float],
) -> PoolMetrics:
    inbound = sum(r.messages_in_per_second for r in rates)
    errors = sum(r.errors_per_second for r in rates)
    return PoolMetrics(
        total_connections=sum(connections),
        active_servers=healthy,
        messages_per_second=round(inbound, 3),
        average_latency=round(sum(latencies_ms) / len(latencies_ms), 3) if latencies_ms else 0.0,
        error_rate=round(min(1.0, errors / inbound), 6) if inbound else 0.0,
    )
