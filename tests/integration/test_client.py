"""The Python client against real nodes: requests, typed messages, reconnect and recovery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from tests.support.nodes import running_nodes, ws_url
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually
from wspool.client import Client, Data, Message, RequestError, Resubscribed
from wspool.core.backoff import Backoff
from wspool.core.protocol import ErrorCode
from wspool.server.node import ServerNode


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[list[ServerNode]]:
    async with running_nodes("redis", redis_url, history_size=100) as nodes:
        yield nodes


async def _next(messages: AsyncIterator[Message]) -> Message:
    async with asyncio.timeout(5):
        return await anext(messages)


async def test_subscribe_publish_and_receive_typed_messages(pair: list[ServerNode]) -> None:
    async with Client(ws_url(pair[0]), client_id="alice") as client:
        assert client.server_id == "n1"
        position = await client.subscribe("prices")
        assert position.endswith(":0")
        await client.publish("prices", {"eur": 1.08}, message_id="p1")
        messages = client.messages()
        message = await _next(messages)
        assert message == Data("prices", {"eur": 1.08}, "p1", position.replace(":0", ":1"))
        assert client.positions == {"prices": message.offset}
        assert await client.ping() < 1.0
        await client.unsubscribe("prices")
        assert client.positions == {}


async def test_a_refused_subscription_raises_with_the_servers_code(pair: list[ServerNode]) -> None:
    async with Client(ws_url(pair[0])) as client:
        with pytest.raises(RequestError) as caught:
            await client.subscribe("no spaces allowed")
        assert caught.value.code == "BAD_REQUEST"
        assert client.positions == {}


async def test_after_a_drain_the_client_resumes_on_another_node_without_losing_a_message(
    pair: list[ServerNode],
) -> None:
    first, second = pair
    async with (
        Client([ws_url(first), ws_url(second)], backoff=Backoff(base=0.05, cap=0.2)) as client,
        Client(ws_url(second)) as publisher,
    ):
        await client.subscribe("ticks")
        messages = client.messages()
        for n in range(20):
            await publisher.publish("ticks", n)
        received = [await _next(messages) for _ in range(20)]
        drained = asyncio.create_task(first.drain())
        for n in range(20, 60):
            await publisher.publish("ticks", n)
            await asyncio.sleep(0.005)
        await drained
        while len(received) < 61:  # 60 data messages and one Resubscribed
            received.append(await _next(messages))
        assert client.server_id == "n2"
        assert client.connections == 2
        resubscribed = [m for m in received if isinstance(m, Resubscribed)]
        assert resubscribed == [Resubscribed("ticks", True, "n2")]
        assert [m.payload for m in received if isinstance(m, Data)] == list(range(60))


async def test_when_history_no_longer_holds_the_gap_the_client_says_so(
    pair: list[ServerNode],
) -> None:
    first, second = pair
    # Random(0) draws a first reconnect delay of 1.7 s out of the 2 s window.
    slow = Backoff(base=2.0, cap=2.0, rng=random.Random(0))
    async with (
        Client([ws_url(first), ws_url(second)], backoff=slow) as client,
        Client(ws_url(second)) as publisher,
    ):
        await client.subscribe("ticks")
        await publisher.subscribe("ticks")
        messages, echoes = client.messages(), publisher.messages()
        await first.drain()
        for n in range(1000):  # ten times the history while the client waits to reconnect
            await publisher.publish("ticks", n)
        while not (isinstance(echo := await _next(echoes), Data) and echo.payload == 999):
            pass
        assert client.connections == 1  # still waiting to reconnect
        message = await _next(messages)
        assert message == Resubscribed("ticks", False, "n2")
        await publisher.publish("ticks", "live")
        data = await _next(messages)
        assert isinstance(data, Data)
        assert data.payload == "live"


async def test_a_resubscribe_refused_while_the_store_is_out_of_reach_is_sent_again(
    own_redis: RedisServer,
) -> None:
    """A client reconnecting to a node whose Redis is down gets its resubscribe refused
    (INTERNAL): it keeps the channel and asks again until the node can take it, instead of
    silently receiving nothing more on it."""
    async with (
        running_nodes("redis", own_redis.url, count=1, history_size=100) as (node,),
        Client(ws_url(node), backoff=Backoff(base=0.05, cap=0.2)) as client,
    ):
        await client.subscribe("ticks")
        messages = client.messages()
        own_redis.stop()
        for session in list(node.sessions.values()):  # the client reconnects meanwhile
            await session.websocket.close(1012, "server restart")
        await eventually(lambda: _reconnected(client), message="the client reconnected")

        async def refused_twice() -> bool:  # its resubscribe, and the resend after a delay
            return node.stats.errors[ErrorCode.INTERNAL] >= 2

        await eventually(refused_twice, message="the resubscribe refused, then sent again")
        own_redis.start()
        resumed = await _next(messages)
        assert isinstance(resumed, Resubscribed)
        assert resumed.channel == "ticks"
        async with Client(ws_url(node)) as publisher:
            await publisher.publish("ticks", 1)
        received = await _next(messages)
        assert isinstance(received, Data)
        assert received.payload == 1
        assert client.positions.keys() == {"ticks"}


async def _reconnected(client: Client) -> bool:
    return client.connections == 2 and client.server_id != ""
