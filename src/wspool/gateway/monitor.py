"""The health monitor: active checks of every node's ``/health``, and checks on demand.

One task per node checks it every ``healthCheck.interval`` (5 s), each check bounded by
``healthCheck.timeout`` (3 s); after a failure it re-checks every ``fastInterval`` (1 s)
until the node is settled. The relay asks for an immediate check when a connect fails or
an upstream connection drops without a closing handshake, so a killed node is marked
down in milliseconds instead of at the next interval. A node marked down has its relayed
clients closed with 1012 (:meth:`PoolManager.lose`): a hung node never closes them itself.
Each verdict is written to ``server:{id}:health`` for the other replicas and the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from wspool.core.records import NodeHealth
from wspool.gateway.model.health import CheckOutcome
from wspool.gateway.model.nodeurls import health_url
from wspool.gateway.model.poolstats import NodeSample
from wspool.gateway.pool import NodeState, PoolManager
from wspool.state.engine import EngineUnavailableError
from wspool.tasks import cancel_and_wait

__all__ = ["HealthMonitor"]

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(self, pool: PoolManager, session: aiohttp.ClientSession) -> None:
        self.pool = pool
        self.session = session
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def sync(self) -> None:
        """Watch every node the pool knows, and stop watching the ones it forgot."""
        for node_id in self._tasks.keys() - self.pool.nodes.keys():
            self._tasks.pop(node_id).cancel()
            self._wake.pop(node_id, None)
        for node_id, node in self.pool.nodes.items():
            if node_id not in self._tasks:
                self._wake[node_id] = asyncio.Event()
                self._tasks[node_id] = asyncio.create_task(
                    self._watch(node), name=f"health-{node_id}"
                )

    def check_now(self, node: NodeState) -> None:
        wake = self._wake.get(node.id)
        if wake is not None:
            wake.set()

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks.values())
        self._tasks.clear()

    async def _watch(self, node: NodeState) -> None:
        wake = self._wake[node.id]
        loop = asyncio.get_running_loop()
        while self.pool.nodes.get(node.id) is node:
            wake.clear()
            await self.check(node)
            checked = loop.time()
            # Re-read the delay at least every second: a config change (a shorter interval)
            # applies to the next check, not to the one after the old interval.
            while (remaining := checked + node.tracker.next_delay() - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 1.0)):
                        await wake.wait()
                if wake.is_set():
                    break

    async def check(self, node: NodeState) -> CheckOutcome:
        """Check one node now, and record what it says."""
        sent = time.time()
        outcome, body = await self._probe(node)
        now = time.time()
        if outcome is CheckOutcome.OK:
            node.latencies_ms.append((now - sent) * 1000)
            self._learn(node, body, sent)
        elif outcome is CheckOutcome.REFUSED:
            node.circuit.trip(now)
        was_checked = node.checked_at > 0
        node.checked_at = now
        if node.tracker.record(outcome):
            if node.healthy:
                log.info("node %s is healthy again", node.id, extra={"serverId": node.id})
                self.pool.recovered(node)
            else:
                log.warning(
                    "node %s is down (%s)", node.id, outcome.value, extra={"serverId": node.id}
                )
                # A hung node keeps its sockets open and says nothing: its clients would sit
                # on a silent link (the relay answers their pings). Send them elsewhere.
                self.pool.lose(node)
        elif not was_checked and not node.healthy:
            log.warning("node %s is not answering", node.id, extra={"serverId": node.id})
        await self._publish(node, now)
        return outcome

    async def _probe(self, node: NodeState) -> tuple[CheckOutcome, dict[str, Any]]:
        timeout = self.pool.config.health_check.timeout
        try:
            async with (
                asyncio.timeout(timeout),
                self.session.get(health_url(node.info.url)) as response,
            ):
                body = await response.json(content_type=None)
        except aiohttp.ClientConnectorError as error:
            refused = isinstance(error.os_error, ConnectionRefusedError)
            return (CheckOutcome.REFUSED if refused else CheckOutcome.FAILED), {}
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return CheckOutcome.FAILED, {}
        if not isinstance(body, dict):
            return CheckOutcome.FAILED, {}
        if response.status == 200 or body.get("status") == "draining":
            return CheckOutcome.OK, body
        return CheckOutcome.FAILED, body

    def _learn(self, node: NodeState, body: dict[str, Any], sent: float) -> None:
        """Take what a good answer says: the node's id, draining, counts and counters."""
        if not node.server_id and isinstance(body.get("serverId"), str):
            node.server_id = body["serverId"]
        node.draining = bool(body.get("draining"))
        try:
            sample = NodeSample(
                at=sent,
                connections=int(body.get("connections", 0)),
                messages_in=int(body.get("messagesIn", 0)),
                messages_out=int(body.get("messagesOut", 0)),
                errors=int(body.get("errors", 0)),
            )
        except (TypeError, ValueError):
            return
        node.samples.append(sample)
        node.report(sample.connections, sent)

    async def _publish(self, node: NodeState, now: float) -> None:
        if self.pool.settings.servers and not node.server_id:
            return
        interval = self.pool.config.health_check.interval
        health = NodeHealth(
            server_id=node.server_id or node.id,
            healthy=node.healthy,
            last_health_check=now,
            circuit=self.pool.circuit_state(node).value,
            draining=node.draining,
            checked_by=self.pool.settings.id,
        )
        with contextlib.suppress(EngineUnavailableError):
            await self.pool.shared.save_node_health(health, ttl=max(15.0, 3 * interval))
