"""One gateway replica: the pool manager, the health monitor and the relay, with their life.

:class:`Gateway` is what the aiohttp app keeps under :data:`GATEWAY`; it starts the refresh
loop (registry, shared config, replica count) and the health checks, and stops them in
reverse order, closing its :class:`GatewayEngine` last. A gateway subscribes to nothing: it
only publishes (commands to nodes over their control channel, and what backends publish
through the REST API) and reads channel histories. Nothing about it is global, so
tests run several replicas in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import aiohttp
from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from wspool.core.config import GatewaySettings
from wspool.gateway.admission import Admission, file_limit
from wspool.gateway.monitor import HealthMonitor
from wspool.gateway.pool import PoolManager, refresh_safely
from wspool.gateway.relay import RelayStats
from wspool.state.engine import (
    ConnectionStore,
    EngineUnavailableError,
    GatewayState,
    HistoryReader,
    NodeRegistry,
    Publisher,
)
from wspool.tasks import cancel_and_wait

if TYPE_CHECKING:
    from wspool.gateway.front import FrontDoor

__all__ = ["GATEWAY", "Gateway", "GatewayEngine"]

log = logging.getLogger(__name__)


class GatewayEngine(
    Publisher, HistoryReader, ConnectionStore, NodeRegistry, GatewayState, Protocol
):
    """What a gateway replica needs of the state engine: the registry and the state replicas
    share, for the pool manager; connection records, the nodes' control channels and the
    channels' histories (publishing and reading them), for the REST API. The replica closes
    it when it stops."""

    async def close(self) -> None: ...


class Gateway:
    def __init__(self, settings: GatewaySettings, engine: GatewayEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.api_policy = settings.security.api_policy()
        self.pool = PoolManager(settings, engine, engine)
        self.stats = RelayStats()
        self.admission = Admission(file_limit(), settings.file_reserve)
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(_GatewayCollector(self))
        # process_* (CPU seconds, resident memory): `wspool bench` divides them by the relay
        # counters to report the gateway's CPU per relayed frame and memory per connection.
        ProcessCollector(registry=self.metrics)
        self.session: aiohttp.ClientSession | None = None
        self.monitor: HealthMonitor | None = None
        self.front: FrontDoor | None = None
        """The listener's front door, once the gateway listens (``wspool.gateway.front``)."""
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, learn the farm, check every node once, then keep the picture fresh."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self.monitor = HealthMonitor(self.pool, self.session)
        if not await refresh_safely(self.pool):
            log.warning("store unreachable at start; serving the static list only, if any")
        await asyncio.gather(*(self.monitor.check(node) for node in list(self.pool)))
        self.monitor.sync()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="pool-refresh")
        log.info(
            "gateway %s: %d nodes known, %d available",
            self.settings.id,
            len(self.pool.nodes),
            len(self.pool.available(time.time())),
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._refresher)
        if self.monitor is not None:
            await self.monitor.stop()
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.deregister_gateway(self.settings.id)
        if self.session is not None:
            await self.session.close()
        await self.engine.close()

    async def _refresh_forever(self) -> None:
        assert self.monitor is not None
        failing = False
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            ok = await refresh_safely(self.pool)
            if not ok and not failing:
                log.warning("store unreachable; keeping the last picture of the farm")
            elif ok and failing:
                log.info("store reachable again")
            failing = not ok
            self.monitor.sync()


GATEWAY = web.AppKey("gateway", Gateway)


class _GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        stats = self.gateway.stats
        pool = self.gateway.pool
        admission = self.gateway.admission
        for name, doc, value in (
            (
                "wspool_gateway_connections_opened",
                "client connections relayed",
                stats.connections_opened,
            ),
            (
                "wspool_gateway_upstream_failures",
                "failed connects to nodes (retried elsewhere)",
                stats.upstream_failures,
            ),
            (
                "wspool_gateway_upstream_lost",
                "relayed connections whose node vanished",
                stats.upstream_lost,
            ),
            (
                "wspool_gateway_sessions_moved",
                "relayed sessions moved to another node, their clients still connected",
                stats.sessions_moved,
            ),
            (
                "wspool_gateway_sessions_handed_over",
                "moved sessions of draining nodes, moved before their node was left",
                stats.sessions_handed_over,
            ),
            (
                "wspool_gateway_sessions_not_moved",
                "relayed sessions that could not be moved (their clients got 1012)",
                stats.sessions_not_moved,
            ),
            (
                "wspool_gateway_session_move_seconds",
                "seconds the moved sessions took to reach their new node, summed",
                stats.move_seconds,
            ),
            (
                "wspool_gateway_refused_no_server",
                "clients refused: no healthy node",
                stats.refused_no_server,
            ),
            (
                "wspool_gateway_refused_pool_full",
                "clients refused: pool full",
                stats.refused_pool_full,
            ),
            (
                "wspool_gateway_refused_by_node",
                "clients a node refused (token, origin, limits), answered as the node did",
                stats.refused_by_node,
            ),
            (
                "wspool_gateway_refused_at_capacity",
                "clients refused: the replica's open-file budget was spent (503 or 1013)",
                stats.refused_at_capacity + admission.refused,
            ),
            (
                "wspool_gateway_handshakes_evicted",
                "connections still sending their request, closed to make room for new ones",
                admission.evicted,
            ),
            (
                "wspool_gateway_slow_consumers",
                "clients closed with 1008 for letting more than the send-buffer limit pile up",
                stats.slow_consumers,
            ),
            (
                "wspool_gateway_messages_to_server",
                "frames relayed client to node",
                stats.messages_to_server,
            ),
            (
                "wspool_gateway_messages_to_client",
                "frames relayed node to client",
                stats.messages_to_client,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "wspool_gateway_connections",
            "client connections this replica relays now",
            value=stats.connections_open,
        )
        yield GaugeMetricFamily(
            "wspool_gateway_longest_session_move_seconds",
            "the longest any moved session took to reach its new node",
            value=stats.longest_move,
        )
        yield GaugeMetricFamily(
            "wspool_gateway_open_files",
            "descriptors this replica holds for clients and their upstreams",
            value=admission.in_use,
        )
        yield GaugeMetricFamily(
            "wspool_gateway_open_files_budget",
            "the most it may hold: the open-file limit less --file-reserve and one accept burst",
            value=admission.budget,
        )
        yield GaugeMetricFamily(
            "wspool_gateway_pending_handshakes",
            "connections whose first request has not arrived yet",
            value=admission.pending,
        )
        yield GaugeMetricFamily(
            "wspool_gateway_pool_connections",
            "connections in the pool",
            value=pool.total_connections,
        )
        healthy = GaugeMetricFamily(
            "wspool_gateway_node_healthy", "1 when the node takes connections", labels=["server"]
        )
        for node in pool:
            healthy.add_metric([node.server_id or node.id], float(node.healthy))
        yield healthy
