"""``--publish-delay``: a busy node publishes at most once per delay, what its clients sent
meanwhile in one batch, for less Redis work per message; a message after a quiet spell goes
at once; nothing held is lost when the node stops."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from tests.support.nodes import running_node, running_nodes, ws_url
from tests.support.wsclient import TestClient


async def _channel_writes(redis_url: str) -> int:
    """How many times Redis has written a batch to a channel: the publish script takes each
    channel's offsets with one ``HINCRBY`` per batch, and nothing else calls it."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_hincrby", {}).get("calls", 0))


async def test_a_burst_waits_for_the_delay_and_is_written_once_per_channel(
    redis_url: str,
) -> None:
    async with (
        running_node(redis_url, publish_delay=0.4) as node,
        TestClient(ws_url(node)) as subscriber,
        TestClient(ws_url(node)) as publisher,
    ):
        await subscriber.subscribe("prices")
        await subscriber.subscribe("news")
        writes = await _channel_writes(redis_url)
        sent = time.monotonic()
        await publisher.publish("prices", 0)
        first = await subscriber.recv()
        assert time.monotonic() - sent < 0.3, "the first message after a quiet spell goes at once"

        for index in range(1, 4):
            await publisher.publish("prices", index)
        await publisher.publish("news", "x")
        frames = [first] + [await subscriber.recv() for _ in range(4)]
        waited = time.monotonic() - sent

        assert [f["payload"] for f in frames if f["channel"] == "prices"] == [0, 1, 2, 3]
        assert [f["payload"] for f in frames if f["channel"] == "news"] == ["x"]
        assert waited >= 0.35, "the burst waited for the delay after the first publish"
        assert await _channel_writes(redis_url) - writes == 3, "the burst: one write per channel"


async def test_without_a_delay_every_message_is_published_at_once(redis_url: str) -> None:
    async with (
        running_node(redis_url) as node,
        TestClient(ws_url(node)) as subscriber,
        TestClient(ws_url(node)) as publisher,
    ):
        await subscriber.subscribe("prices")
        writes = await _channel_writes(redis_url)
        await publisher.publish("prices", 1)
        assert (await subscriber.recv())["payload"] == 1
        await publisher.publish("prices", 2)
        assert (await subscriber.recv())["payload"] == 2
        assert await _channel_writes(redis_url) - writes == 2


async def test_a_stopping_node_publishes_what_it_was_holding_without_waiting_out_the_delay(
    redis_url: str,
) -> None:
    async with running_nodes("redis", redis_url, count=2, publish_delay=1.0) as (held, other):
        async with (
            TestClient(ws_url(other)) as subscriber,
            TestClient(ws_url(held)) as publisher,
        ):
            await subscriber.subscribe("prices")
            await publisher.publish("prices", "first")
            assert (await subscriber.recv())["payload"] == "first"
            await publisher.publish("prices", "held")  # within the delay: held back
            # The node reads a client's frames in order: once the pong is back, the message
            # waits in the batch.
            assert (await publisher.request(type="ping"))["type"] == "pong"
            started = time.monotonic()
            await held.stop()
            stopping = time.monotonic() - started
            frame = await subscriber.recv()

        assert frame["payload"] == "held"
        assert stopping < 0.9, "the stop published the batch instead of waiting out the delay"
