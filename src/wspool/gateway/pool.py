"""The connection pool manager: the gateway's picture of the farm, and the choice of node.

It merges three sources: the node registry in Redis (or a static list), refreshed every
``refresh_interval``; the health monitor's verdicts and each node's circuit breaker; and
this replica's own connects and disconnects since each node's last heartbeat, so
least-connections sees counts that are exact for this replica and seconds-fresh for the
others. The shared ``PoolConfig`` is read on the same refresh, so a change made through any
replica applies everywhere within a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from wspool.core.config import GatewaySettings
from wspool.core.poolconfig import PoolConfig, PoolConfigError
from wspool.core.records import NodeInfo
from wspool.gateway.model.circuit import CircuitBreaker, CircuitState
from wspool.gateway.model.health import HealthTracker
from wspool.gateway.model.poolstats import NodeSample
from wspool.gateway.model.strategies import Candidate, Strategy, create_strategy
from wspool.gateway.model.strategies import slow_start_ramp as ramp_of
from wspool.state.engine import EngineUnavailableError, GatewayState, NodeRegistry

__all__ = ["NodeState", "PoolManager"]

log = logging.getLogger(__name__)

MOVES_IN_FLIGHT = 8
"""Sessions one gateway moves to another node at once. A node killed under a thousand
clients would otherwise send a thousand handshakes at the survivors in the same instant:
slowed down by each other past ``--connect-timeout``, they would open healthy nodes'
circuits. In turns the survivors answer each in milliseconds."""

GATEWAY_TTL = 3.0
"""Seconds after its last refresh when a gateway replica stops counting as live."""


@dataclass
class NodeState:
    """One node as this gateway replica sees it."""

    info: NodeInfo
    tracker: HealthTracker
    circuit: CircuitBreaker
    server_id: str
    """The node's own id (tickets name it); from the registry, or its /health when static."""
    ramp_from: float = 0.0
    """When the node joined or recovered; its slow start runs from here (0: no ramp)."""
    checked_at: float = 0.0
    draining: bool = False
    local: deque[tuple[float, int]] = field(default_factory=deque)
    """This replica's +1/-1 connection events since the node's last reported count."""
    local_sum: int = 0
    """The sum of ``local``, kept as events come and go (read on every choice)."""
    pending: int = 0
    """Handshakes this replica has in flight to the node (not yet in any report)."""
    samples: deque[NodeSample] = field(default_factory=lambda: deque(maxlen=2))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    watchers: set[Callable[[], None]] = field(default_factory=set)
    """What each relay to the node does when the health checks mark it down (a set: each
    relayed connection's goes in and out in constant time)."""

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def healthy(self) -> bool:
        return self.tracker.healthy

    @property
    def connections(self) -> int:
        """The node's last reported count plus what this replica did since."""
        return max(0, self.info.active_connections + self.local_sum) + self.pending

    def count(self, delta: int) -> None:
        """This replica opened (+1) or closed (-1) a connection to the node just now."""
        self.local.append((time.time(), delta))
        self.local_sum += delta

    def report(self, connections: int, at: float) -> None:
        """The node said it had ``connections`` at ``at``: forget local events before that."""
        self.info = _with_connections(self.info, connections)
        while self.local and self.local[0][0] <= at:
            self.local_sum -= self.local.popleft()[1]


def _with_connections(info: NodeInfo, connections: int) -> NodeInfo:
    return dataclasses.replace(info, active_connections=connections)


class PoolManager:
    """Which nodes exist, which may take connections, and which one takes the next."""

    def __init__(
        self, settings: GatewaySettings, registry: NodeRegistry, shared: GatewayState
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.shared = shared
        self.config = PoolConfig.from_json(
            {
                "strategy": settings.strategy,
                "maxConnections": settings.max_connections,
                "seamless": settings.seamless,
            }
        )
        self.nodes: dict[str, NodeState] = {}
        self._order: list[NodeState] | None = None
        self.moves = asyncio.Semaphore(MOVES_IN_FLIGHT)
        """Sessions being moved to another node at once (``wspool.gateway.relay``)."""
        self.replicas = 1
        self.store_reachable = False
        """Whether the last refresh reached the store (see :func:`refresh_safely`)."""
        self.strategy: Strategy = create_strategy(self.config.strategy)
        self._strategy_key = (self.config.strategy, False)
        self._stored_config: dict[str, object] | None = None
        self._refreshed = False
        if settings.servers:
            for url in settings.servers:
                self._add(NodeInfo(id=url, url=url), server_id="", now=0.0)

    # the farm ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[NodeState]:
        return iter(self._ordered())

    def _ordered(self) -> list[NodeState]:
        """The nodes in id order, kept until the farm changes (read on every choice)."""
        if self._order is None:
            self._order = sorted(self.nodes.values(), key=lambda n: n.id)
        return self._order

    def _add(self, info: NodeInfo, server_id: str, now: float) -> NodeState:
        hc = self.config.health_check
        cb = self.config.circuit_breaker
        state = NodeState(
            info=info,
            tracker=HealthTracker(
                unhealthy_threshold=self.config.health_threshold,
                healthy_threshold=hc.healthy_threshold,
                interval=hc.interval,
                fast_interval=hc.fast_interval,
            ),
            circuit=CircuitBreaker(cb.failure_threshold, cb.open_seconds, cb.trial_connections),
            server_id=server_id,
            ramp_from=now,
        )
        self.nodes[info.id] = state
        self._order = None
        return state

    async def refresh(self) -> None:
        """Read the registry, the shared config and the replica count from the store."""
        now = time.time()
        self.replicas = await self.shared.register_gateway(self.settings.id, GATEWAY_TTL)
        self._update_strategy()
        document = await self.shared.get_pool_config()
        if document is None:
            await self.shared.set_pool_config(self.config.to_json())
        elif document != self._stored_config:
            self._stored_config = document
            try:
                self.apply(PoolConfig.from_json(document))
            except PoolConfigError as error:
                log.error("ignoring the stored pool config: %s", error)
        if self.settings.servers:
            self._refreshed = True
            return
        registered = {info.id: info for info in await self.registry.list_nodes()}
        for node_id in self.nodes.keys() - registered.keys():
            log.info("node %s left the registry", node_id, extra={"serverId": node_id})
            del self.nodes[node_id]
            self._order = None
        for node_id, info in registered.items():
            state = self.nodes.get(node_id)
            if state is None:
                # Nodes present when the gateway starts are not new to the farm: no ramp.
                state = self._add(info, node_id, now if self._refreshed else 0.0)
                log.info("node %s joined at %s", node_id, info.url, extra={"serverId": node_id})
            state.info = info
            state.draining = state.draining or info.draining
            state.report(info.active_connections, info.heartbeat_at)
        self._refreshed = True

    def apply(self, config: PoolConfig) -> None:
        """Adopt a new config: strategy, thresholds, circuits; counts and health are kept."""
        previous = self.config
        self.config = config
        if config.strategy != previous.strategy:
            log.info("strategy is now %s", config.strategy)
        self._update_strategy()
        hc, cb = config.health_check, config.circuit_breaker
        for node in self.nodes.values():
            node.tracker.unhealthy_threshold = config.health_threshold
            node.tracker.healthy_threshold = hc.healthy_threshold
            node.tracker.interval = hc.interval
            node.tracker.fast_interval = hc.fast_interval
            node.circuit.failure_threshold = cb.failure_threshold
            node.circuit.open_seconds = cb.open_seconds
            node.circuit.trial_connections = cb.trial_connections

    def _update_strategy(self) -> None:
        """A fresh strategy when the config names another, or replicas start or stop sharing."""
        key = (self.config.strategy, self.replicas > 1)
        if key != self._strategy_key:
            self._strategy_key = key
            self.strategy = create_strategy(self.config.strategy, replicas=self.replicas)

    # choosing ------------------------------------------------------------------------------

    @property
    def total_connections(self) -> int:
        return sum(node.connections for node in self.nodes.values())

    @property
    def full(self) -> bool:
        return self.total_connections >= self.config.max_connections

    def available(self, now: float) -> list[NodeState]:
        """Nodes that may take a connection now: healthy, serving, circuit not open."""
        return [node for node in self._ordered() if self._serves(node, now)]

    def _serves(self, node: NodeState, now: float) -> bool:
        return (
            node.tracker.healthy
            and bool(node.samples)  # answered at least once
            and not node.draining
            and node.circuit.allows(now)
            and self.weight(node) > 0
        )

    def weight(self, node: NodeState) -> int:
        """The node's weight: the pool config's for it, else the one it registered."""
        return self.config.weights.get(node.server_id or node.id, node.info.weight)

    def ramp(self, node: NodeState, now: float) -> float:
        """The node's slow-start factor now, 0 to 1 (1: none, or its ramp is over)."""
        if not node.ramp_from:
            return 1.0
        return ramp_of(now - node.ramp_from, self.config.slow_start)

    def select(self, exclude: frozenset[str] = frozenset()) -> NodeState | None:
        """The node for the next connection by the pool's strategy, or None."""
        now = time.time()
        candidates = [
            Candidate(node.id, self.weight(node), node.connections, self.ramp(node, now))
            for node in self._ordered()
            if node.id not in exclude and self._serves(node, now)
        ]
        chosen = self.strategy.select(candidates)
        return None if chosen is None else self.nodes[chosen.id]

    def reserve(self, node: NodeState) -> None:
        """A handshake to ``node`` starts: count it until it completes or fails."""
        node.pending += 1

    def release(self, node: NodeState, *, connected: bool) -> None:
        node.pending -= 1
        if connected:
            self.opened(node)

    def opened(self, node: NodeState) -> None:
        node.count(+1)

    def closed(self, node: NodeState) -> None:
        if self.nodes.get(node.id) is node:
            node.count(-1)

    # what the health monitor and the relay learn ----------------------------------------

    def watch(self, node: NodeState, on_lost: Callable[[], None]) -> None:
        """Call ``on_lost`` (at the event loop's next turn) when ``node`` is marked down."""
        node.watchers.add(on_lost)

    def unwatch(self, node: NodeState, on_lost: Callable[[], None]) -> None:
        node.watchers.discard(on_lost)

    def lose(self, node: NodeState) -> None:
        """The node stopped answering: every relay to it closes its client (or moves it)."""
        watchers, node.watchers = node.watchers, set()
        loop = asyncio.get_running_loop()
        for on_lost in watchers:
            loop.call_soon(on_lost)

    def recovered(self, node: NodeState) -> None:
        node.ramp_from = time.time()
        node.circuit.succeeded(time.time())

    def circuit_state(self, node: NodeState) -> CircuitState:
        return node.circuit.current(time.time())


async def refresh_safely(pool: PoolManager) -> bool:
    """One refresh; a store outage keeps the last picture (and is logged once by the caller).

    Returns, and records as ``pool.store_reachable``, whether the store answered.
    """
    try:
        await pool.refresh()
    except EngineUnavailableError:
        pool.store_reachable = False
    else:
        pool.store_reachable = True
    return pool.store_reachable
