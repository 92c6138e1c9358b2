"""Chaos: the network between a node and Redis cut, and a gateway killed and restarted.

Each test asserts what clients observe: connections that stay up, errors instead of silent
loss while the store is unreachable, delivery that resumes by itself, and no state left
behind by connections that died with a gateway.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.faultproxy import FaultProxy
from tests.support.processes import GatewayProcess, NodeProcess, http_get
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient


@pytest.fixture
async def redis_link(redis_url: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the test Redis."""
    host_port = redis_url.removeprefix("redis://").split("/")[0]
    host, port = host_port.rsplit(":", 1)
    proxy = await FaultProxy(host, int(port)).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def cut_off_node(redis_link: FaultProxy) -> AsyncIterator[NodeProcess]:
    node = NodeProcess("node-cut", redis_link.url)
    try:
        await node.start_async()
        yield node
    finally:
        node.stop()


@pytest.fixture
def steady_node(redis_url: str) -> Iterator[NodeProcess]:
    node = NodeProcess("node-steady", redis_url)
    try:
        yield node.start()
    finally:
        node.stop()


async def _store_state(node: NodeProcess) -> str:
    return str(http_get(node.health_url)[1]["store"])


async def test_a_node_cut_off_from_redis_keeps_its_clients_refuses_publishes_and_recovers(
    redis_link: FaultProxy, cut_off_node: NodeProcess, steady_node: NodeProcess
) -> None:
    async with (
        TestClient(cut_off_node.url) as subscriber,
        TestClient(steady_node.url) as publisher,
    ):
        await subscriber.subscribe("ticks")
        await publisher.publish("ticks", 1)
        assert (await subscriber.recv())["payload"] == 1

        redis_link.cut()
        await eventually(
            lambda: _is(cut_off_node, "down"), within=5, message="node sees the store down"
        )
        assert http_get(cut_off_node.health_url)[1]["status"] == "degraded"
        reply = await subscriber.request(type="data", channel="ticks", payload="during cut")
        assert (reply["type"], reply["payload"]["code"]) == ("error", "INTERNAL")

        redis_link.heal()
        await eventually(lambda: _is(cut_off_node, "up"), within=10, message="store back")

        await eventually(
            lambda: _delivered(publisher, subscriber),
            within=10,
            message="delivery across nodes resumed",
        )
        assert (await subscriber.request(type="ping"))["type"] == "pong"  # never disconnected


async def _delivered(publisher: TestClient, subscriber: TestClient) -> bool:
    """Publish a marker and read until it arrives (True) or the subscriber goes quiet."""
    await publisher.publish("ticks", "after")
    with contextlib.suppress(TimeoutError):
        while True:
            if (await subscriber.recv()).get("payload") == "after":
                return True
    return False


async def _is(node: NodeProcess, state: str) -> bool:
    return await _store_state(node) == state


async def test_clients_of_a_killed_gateway_reconnect_to_its_successor_and_nothing_leaks(
    redis_url: str,
) -> None:
    prefix = ("--key-prefix", f"gwr-{uuid.uuid4().hex[:8]}:")
    node = NodeProcess("node-1", redis_url, *prefix).start()
    gateway = GatewayProcess("gw", redis_url, *prefix, nodes=1).start()
    store = Store(redis_url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            connected = [await stack.enter_async_context(TestClient(gateway.url)) for _ in range(5)]
            await eventually(lambda: _count(store, prefix[1]), message="5 connection records")
            gateway.signal(signal.SIGKILL)
            gateway.wait()
            for client in connected:
                with pytest.raises(ConnectionClosed):
                    await client.recv()

            seen: list[object] = []

            async def released() -> bool:
                seen[:] = [
                    http_get(node.health_url)[1]["connections"],
                    await store.keys(f"{prefix[1]}conn:*"),
                ]
                return seen == [0, []]

            try:
                await eventually(released, within=10)
            except AssertionError:
                raise AssertionError(f"connections and records left: {seen}") from None

        successor = GatewayProcess("gw", redis_url, *prefix, nodes=1)
        successor.port = gateway.port
        successor.args[successor.args.index("--port") + 1] = str(gateway.port)
        successor.start()
        gateway = successor
        async with TestClient(gateway.url) as again:
            assert again.connected["payload"]["serverId"] == "node-1"
    finally:
        await store.close()
        gateway.stop()
        node.stop()


async def _count(store: Store, prefix: str, expected: int = 5) -> bool:
    return len(await store.keys(f"{prefix}conn:*")) == expected


async def test_a_silent_partition_from_redis_is_noticed_and_healed(
    redis_link: FaultProxy, cut_off_node: NodeProcess, steady_node: NodeProcess
) -> None:
    async with (
        TestClient(cut_off_node.url) as subscriber,
        TestClient(steady_node.url) as publisher,
    ):
        await subscriber.subscribe("ticks")
        redis_link.blackhole()  # packets dropped, no connection closed
        await eventually(
            lambda: _is(cut_off_node, "down"), within=10, message="node notices the silence"
        )
        redis_link.heal()
        await eventually(lambda: _is(cut_off_node, "up"), within=15, message="store back")

        await eventually(
            lambda: _delivered(publisher, subscriber),
            within=10,
            message="delivery across nodes resumed",
        )
