"""A node's counters, and their Prometheus exposition.

The hot paths bump plain integers (an attribute add costs far less than a locked
prometheus-client counter); a custom collector reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["NodeStats", "metrics_registry"]


@dataclass
class NodeStats:
    """Counters since the node started."""

    connections_opened: int = 0
    messages_received: int = 0
    messages_published: int = 0
    deliveries: int = 0
    slow_consumers: int = 0
    interrupted: int = 0
    """Subscribers closed because their channel lost messages that history could not fill."""
    errors: Counter[str] = field(default_factory=Counter)
    recoveries: Counter[bool] = field(default_factory=Counter)
    """Subscriptions with ``since``, by whether the history still held every message."""


class _NodeCollector(Collector):
    def __init__(
        self, stats: NodeStats, gauges: dict[str, tuple[str, Callable[[], float]]]
    ) -> None:
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        for name, doc, value in (
            ("wspool_connections_opened", "WebSocket connections accepted", s.connections_opened),
            ("wspool_messages_received", "Frames received from clients", s.messages_received),
            ("wspool_messages_published", "data messages published", s.messages_published),
            ("wspool_deliveries", "data frames delivered to local subscribers", s.deliveries),
            ("wspool_slow_consumers", "clients closed for not keeping up", s.slow_consumers),
            (
                "wspool_interrupted_subscribers",
                "clients closed because their channel lost messages history could not fill",
                s.interrupted,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        errors = CounterMetricFamily("wspool_errors", "error replies by code", labels=["code"])
        for code, count in sorted(s.errors.items()):
            errors.add_metric([code], count)
        yield errors
        recoveries = CounterMetricFamily(
            "wspool_recoveries", "subscriptions with since, by outcome", labels=["recovered"]
        )
        for outcome in (True, False):
            recoveries.add_metric([str(outcome).lower()], s.recoveries[outcome])
        yield recoveries
        for name, (doc, read) in self.gauges.items():
            yield GaugeMetricFamily(name, doc, value=read())


def metrics_registry(
    stats: NodeStats, gauges: dict[str, tuple[str, Callable[[], float]]]
) -> CollectorRegistry:
    """A registry of the node's own (several nodes may share a process in ``wspool dev``).

    It includes the standard ``process_*`` metrics (CPU seconds, resident memory, open
    files), read from /proc at scrape time: ``wspool bench`` divides them by the node's
    counters to report CPU per message and memory per connection. In ``wspool dev`` these
    describe the one process all nodes share.
    """
    registry = CollectorRegistry()
    registry.register(_NodeCollector(stats, gauges))
    ProcessCollector(registry=registry)
    return registry
