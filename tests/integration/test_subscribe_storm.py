"""A subscribe storm on one node: 10,000 subscribes over 1,000 channels at once, as after a
failover or a scale-down, all get ``subscribed`` and then every message.

The node runs as its own process on a real Redis; the clients are the bench's lean
WebSocket client, so that the test process does not starve the node of CPU. 2,500 clients
send 4 subscribes each at once (opening 10,000 connections would take most of the test's
time); ``wspool bench subscribe-storm`` measures the storm of one subscribe per client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from tests.support.processes import NodeProcess
from tests.support.waiting import eventually
from wspool.bench.settings import Target
from wspool.bench.wire import WireConnection, open_connection

CLIENTS = 2_500
CHANNELS_EACH = 4
CHANNELS = 1_000


@pytest.fixture
def node(redis_url: str) -> Iterator[NodeProcess]:
    # A heartbeat ttl a loaded machine keeps up with while 10,000 clients connect.
    node = NodeProcess("storm-node", redis_url, "--node-ttl", "10").start()
    try:
        yield node
    finally:
        node.stop()


async def test_10000_subscribes_over_1000_channels_all_succeed_and_all_receive(
    node: NodeProcess,
) -> None:
    target = Target("127.0.0.1", node.port, "/ws")
    received: list[bytes] = []
    gate = asyncio.Semaphore(64)

    async def opened() -> WireConnection:
        async with gate:
            return await open_connection(target, "", received.append, within=30)

    clients = await asyncio.gather(*(opened() for _ in range(CLIENTS)))
    try:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.subscribe(f"storm-{(i * CHANNELS_EACH + j) % CHANNELS}")
                for i, client in enumerate(clients)
                for j in range(CHANNELS_EACH)
            )
        )
        took = time.monotonic() - started
        assert len(answers) == 10_000
        problems = [a.problem for a in answers if a.problem is not None]
        assert problems == [], f"{len(problems)} refused, first: {problems[0]}"
        assert all(a.offset for a in answers)

        # Every subscription is live: one message on each of 10 channels reaches all of
        # their subscribers.
        for channel in range(10):
            frame = {"type": "data", "channel": f"storm-{channel}", "payload": "hi"}
            clients[channel].send_text(json.dumps(frame | {"messageId": "m"}).encode())

        async def all_delivered() -> bool:
            return len(received) == 10 * len(answers) // CHANNELS

        await eventually(all_delivered, within=10, message="every subscriber receiving")
        print(f"10,000 subscribes answered in {took:.1f} s")
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
