"""Channel history in Redis keeps each message for the history ttl, and not much longer,
though the publish script renews the expiries only once per eighth of the ttl."""

from __future__ import annotations

import asyncio

from tests.integration.contracts.engines import frame, payloads_of
from wspool.core.history import HistoryPolicy, StreamPosition
from wspool.core.keys import Keys
from wspool.state.redis_bus import RedisBus

TTL = 2.0


async def test_a_message_stays_in_history_for_the_ttl_and_is_gone_soon_after(
    redis_url: str,
) -> None:
    bus = RedisBus(redis_url, Keys("expiry:"), HistoryPolicy(size=100, ttl=TTL))
    try:
        start = (await bus.read_history("news", None)).top
        # A steady publisher: the expiries are renewed only now and then, yet the messages
        # stay readable for the whole ttl after the last publish.
        for i in range(8):
            await bus.publish({"news": [frame(i)]}, f"batch-{i}")
            await asyncio.sleep(TTL / 16)
        since = StreamPosition(start.epoch, start.offset + 6)
        await asyncio.sleep(TTL * 0.8)
        read = await bus.read_history("news", since)
        assert read.frames is not None
        assert payloads_of(read.frames) == [6, 7]
        # Past the ttl and its eighth the history no longer holds them, so a subscriber
        # resuming from there is told it did not recover.
        await asyncio.sleep(TTL * 0.5)
        read = await bus.read_history("news", since)
        assert read.top == StreamPosition(start.epoch, start.offset + 8)
        assert read.frames is None
    finally:
        await bus.close()
