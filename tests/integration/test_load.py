"""The load test: 1,000 concurrent connections through the gateway, all open.

Three node processes behind a gateway process on one Redis. Every connection is open at the
same time, and one message published to a channel they all joined reaches every one of them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from tests.support.processes import GatewayProcess, running_farm
from tests.support.waiting import eventually

CONNECTIONS = 1000


@pytest.fixture
def farm(redis_url: str) -> Iterator[GatewayProcess]:
    with running_farm(redis_url) as farm:
        yield farm.gateway


async def _join(url: str, gate: asyncio.Semaphore) -> tuple[ClientConnection, str]:
    async with gate:  # a bounded burst, as a fleet of browsers reconnecting would be
        ws = await connect(url, compression=None, open_timeout=30)
        connected = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "subscribe", "channel": "all", "messageId": "s"}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        return ws, connected["payload"]["serverId"]


async def test_1000_concurrent_connections_are_all_open_and_all_receive_a_broadcast(
    farm: GatewayProcess,
) -> None:
    gate = asyncio.Semaphore(100)
    joined = await asyncio.gather(*(_join(farm.url, gate) for _ in range(CONNECTIONS)))
    sockets = [ws for ws, _ in joined]
    try:
        assert all(ws.protocol.state is State.OPEN for ws in sockets)
        spread = Counter(node for _, node in joined)
        # Least-connections under a burst of 100 handshakes at a time, on counts that are
        # up to a heartbeat old: even within 3 % of the total, not exact.
        assert len(spread) == 3
        assert max(spread.values()) - min(spread.values()) <= 30, spread

        async def counted() -> bool:
            return bool(farm.api("GET", "/pool/stats")[1]["totalConnections"] == CONNECTIONS)

        await eventually(counted, message="the pool counting 1,000 connections")

        await sockets[0].send(
            json.dumps({"type": "data", "channel": "all", "payload": "hi", "messageId": "b"})
        )
        async with asyncio.timeout(30):
            received = await asyncio.gather(*(ws.recv() for ws in sockets))
        assert {json.loads(frame)["payload"] for frame in received} == {"hi"}
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
