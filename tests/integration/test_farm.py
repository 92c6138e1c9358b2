"""A farm of real ``wspool server`` processes sharing one Redis.

What users of the farm notice: a message published on any node reaches subscribers on every
node, once and in order; a node that dies leaves no state behind; a node that drains sends
its clients away gently and exits cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.processes import NodeProcess, http_get
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient


@pytest.fixture
def farm(redis_url: str) -> Iterator[list[NodeProcess]]:
    nodes = [NodeProcess(f"node-{i}", redis_url, "--drain-window", "1") for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def test_data_published_on_one_node_reaches_subscribers_on_every_node(
    farm: list[NodeProcess],
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [await stack.enter_async_context(TestClient(n.url)) for n in farm]
        publisher = await stack.enter_async_context(TestClient(farm[1].url))
        for subscriber in subscribers:
            await subscriber.subscribe("dashboard")
        await publisher.send(type="data", channel="dashboard", payload={"v": 1}, messageId="x1")
        offsets = set()
        for subscriber in subscribers:
            frame = await subscriber.recv()
            offsets.add(frame.pop("offset"))
            assert frame == {
                "type": "data",
                "channel": "dashboard",
                "payload": {"v": 1},
                "messageId": "x1",
            }
        # One message, one position in the channel's history, whichever node delivers it.
        assert len(offsets) == 1
        # Exactly once: the next frame each subscriber sees is the answer to its own ping.
        for subscriber in subscribers:
            assert (await subscriber.request(type="ping"))["type"] == "pong"


async def test_each_publishers_messages_arrive_in_the_order_sent(
    farm: list[NodeProcess],
) -> None:
    count = 500
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [await stack.enter_async_context(TestClient(n.url)) for n in farm]
        publishers = [await stack.enter_async_context(TestClient(n.url)) for n in farm]
        for subscriber in subscribers:
            await subscriber.subscribe("ticks")

        async def publish(index: int, publisher: TestClient) -> None:
            for seq in range(count):
                await publisher.publish("ticks", [index, seq])

        await asyncio.gather(*(publish(i, p) for i, p in enumerate(publishers)))

        for subscriber in subscribers:
            seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
            for _ in range(count * len(publishers)):
                frame = await subscriber.recv()
                source, seq = frame["payload"]
                seen[source].append(seq)
            assert all(sequence == list(range(count)) for sequence in seen.values())


async def test_a_killed_nodes_state_is_swept_by_the_survivors(
    farm: list[NodeProcess], store: Store
) -> None:
    victim = farm[0]
    async with TestClient(victim.url + "?clientId=carol") as client:
        await client.subscribe("c")

        async def recorded() -> bool:
            return bool(await store.exists(f"conn:{client.connection_id}"))

        await eventually(recorded, message="connection recorded")
        victim.signal(signal.SIGKILL)
        victim.wait()

        async def swept() -> bool:
            return not await store.keys("*node-1*") and not await store.exists(
                f"conn:{client.connection_id}", "client:carol:sessions"
            )

        await eventually(swept, within=10, message="dead node's state swept")
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await client.recv()


async def test_a_draining_node_refuses_new_clients_and_closes_its_own_with_1012(
    farm: list[NodeProcess], store: Store
) -> None:
    node = farm[2]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(TestClient(node.url)) for _ in range(5)]
        started = time.monotonic()
        node.signal(signal.SIGTERM)

        async def draining() -> bool:
            status, body = await asyncio.to_thread(http_get, node.health_url)
            return status == 503 and body["status"] == "draining"

        with contextlib.suppress(OSError):  # the node may already be gone on a fast machine
            await eventually(draining, message="/health says draining")

        closed_at: list[float] = []
        for client in clients:
            assert client.ws is not None
            await client.ws.wait_closed()
            closed_at.append(time.monotonic() - started)
            assert client.ws.close_code == 1012
        # Spread over the 1 s window, not all at once.
        assert max(closed_at) - min(closed_at) >= 0.5
        assert await asyncio.to_thread(node.wait, 10) == 0
    assert await store.keys("*node-3*") == []


async def test_a_node_frozen_past_its_ttl_restores_its_records_when_it_wakes(
    farm: list[NodeProcess], store: Store
) -> None:
    frozen = farm[0]
    async with TestClient(frozen.url) as client:
        key = f"conn:{client.connection_id}"
        await eventually(lambda: store.exists(key), message="record written")
        frozen.signal(signal.SIGSTOP)
        try:

            async def swept() -> bool:
                return not await store.exists(key)

            await eventually(swept, within=5, message="survivors sweep the frozen node")
        finally:
            frozen.signal(signal.SIGCONT)
        await eventually(lambda: store.exists(key), within=5, message="record restored")
        assert (await client.request(type="ping"))["type"] == "pong"
