"""Subscribing with ``since``: a client that was away gets what it missed, then live frames.

Every test runs on both engines, with the subscriber and the publisher on different nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.nodes import running_nodes, ws_url
from tests.support.wsclient import TestClient
from wspool.core.history import StreamPosition
from wspool.server.node import ServerNode


@pytest.fixture(params=["memory", "redis"])
async def pair(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[list[ServerNode]]:
    async with running_nodes(request.param, redis_url, history_size=50) as nodes:
        yield nodes


async def _published(publisher: TestClient, last: object) -> None:
    """Wait until the publisher, a subscriber too, got its own last message back."""
    while (await publisher.recv())["payload"] != last:
        pass


async def _position(client: TestClient, channel: str, **extra: str) -> dict[str, object]:
    reply = await client.request(type="subscribe", channel=channel, **extra)
    assert reply["type"] == "subscribed", reply
    return reply


async def test_a_returning_client_gets_what_it_missed_then_live_messages(
    pair: list[ServerNode],
) -> None:
    publisher_node, subscriber_node = pair
    async with TestClient(ws_url(publisher_node)) as publisher:
        await publisher.subscribe("feed")
        async with TestClient(ws_url(subscriber_node)) as first_visit:
            position = str((await _position(first_visit, "feed"))["offset"])
            await publisher.publish("feed", "seen")
            await _published(publisher, "seen")
            seen = await first_visit.recv()
            assert seen["payload"] == "seen"
            position = seen["offset"]
        for n in range(5):
            await publisher.publish("feed", f"missed-{n}")
        await _published(publisher, "missed-4")

        async with TestClient(ws_url(subscriber_node)) as back:
            reply = await _position(back, "feed", since=position)
            assert reply["recovered"] is True
            replayed = [await back.recv() for _ in range(5)]
            assert [f["payload"] for f in replayed] == [f"missed-{n}" for n in range(5)]
            start = StreamPosition.parse(position)
            assert [f["offset"] for f in replayed] == [
                start.advanced(i).token for i in (1, 2, 3, 4, 5)
            ]
            assert reply["offset"] == replayed[-1]["offset"]
            await publisher.publish("feed", "live")
            live = await back.recv()
            assert live["payload"] == "live"
            assert live["offset"] == start.advanced(6).token
            assert (await back.request(type="ping"))["type"] == "pong"  # nothing twice


async def test_a_position_no_longer_in_history_says_recovered_false_and_replays_nothing(
    pair: list[ServerNode],
) -> None:
    publisher_node, subscriber_node = pair
    async with TestClient(ws_url(publisher_node)) as publisher:
        await publisher.subscribe("feed")
        async with TestClient(ws_url(subscriber_node)) as first_visit:
            position = str((await _position(first_visit, "feed"))["offset"])
        for n in range(500):  # ten times the history size of 50
            await publisher.publish("feed", n)
        await _published(publisher, 499)
        async with TestClient(ws_url(subscriber_node)) as back:
            reply = await _position(back, "feed", since=position)
            assert reply["recovered"] is False
            assert reply["offset"] == StreamPosition.parse(position).advanced(500).token
            await publisher.publish("feed", "live")
            assert (await back.recv())["payload"] == "live"


async def test_a_position_from_another_epoch_is_not_recovered(pair: list[ServerNode]) -> None:
    async with TestClient(ws_url(pair[0])) as client:
        reply = await _position(client, "feed", since="00000000:3")
        assert reply["recovered"] is False


async def test_a_malformed_since_is_a_bad_request_and_subscribes_nothing(
    pair: list[ServerNode],
) -> None:
    async with TestClient(ws_url(pair[0])) as client:
        reply = await client.request(type="subscribe", channel="feed", since="yesterday")
        assert reply["type"] == "error"
        assert reply["payload"]["code"] == "BAD_REQUEST"
        assert "offset" in reply["payload"]["message"]
        assert (await client.request(type="unsubscribe", channel="feed"))["type"] == "error"


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_messages_published_during_the_switch_arrive_once_and_in_order(
    kind: str, redis_url: str
) -> None:
    """A publisher runs flat out while subscribers join with ``since`` in mid-stream."""
    total = 600
    async with contextlib.AsyncExitStack() as stack:
        pair = await stack.enter_async_context(running_nodes(kind, redis_url))
        publisher_node, subscriber_node = pair
        publisher = await stack.enter_async_context(TestClient(ws_url(publisher_node)))
        watcher = await stack.enter_async_context(TestClient(ws_url(subscriber_node)))
        start = StreamPosition.parse(str((await _position(watcher, "flow"))["offset"]))

        async def publish() -> None:
            for n in range(total):
                await publisher.publish("flow", n)
                if n % 20 == 0:
                    await asyncio.sleep(0)

        task = asyncio.create_task(publish())
        # Watch the stream until it is in full flow, then join from its start.
        watched = [(await watcher.recv())["payload"]]
        while watched[-1] < 100:
            watched.append((await watcher.recv())["payload"])
        joiners = [await stack.enter_async_context(TestClient(ws_url(node))) for node in pair]
        for joiner in joiners:
            await joiner.send(type="subscribe", channel="flow", since=start.token)
        await task
        while watched[-1] < total - 1:
            watched.append((await watcher.recv())["payload"])
        assert watched == list(range(total))
        for joiner in joiners:
            reply = await joiner.recv()
            assert reply["type"] == "subscribed", reply
            assert reply["recovered"] is True
            frames = [await joiner.recv() for _ in range(total)]
            assert [f["payload"] for f in frames] == list(range(total))
            assert (await joiner.request(type="ping"))["type"] == "pong"  # nothing twice
