"""Engines on a primary watched by Sentinel: they follow a failover to the promoted replica.

The test has a Sentinel, primary and replica of its own, not the session's: on a busy
machine the session's Sentinel may already have failed its primary over (it takes a primary
that misses its pings for two seconds for down), and the test starts from a known pair. It
kills the primary's process, waits for Sentinel to promote the replica, and starts the
killed process again as the new replica.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.contracts.engines import engines_on, frame, has, payloads_of
from tests.support.redis_cluster import RedisSentinel
from tests.support.waiting import eventually
from wspool.state.engine import EngineUnavailableError

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_sentinel() -> Iterator[RedisSentinel]:
    with RedisSentinel().running() as sentinel:
        yield sentinel


async def test_engines_follow_the_primary_sentinel_promotes_and_say_what_history_is_gone(
    redis_sentinel: RedisSentinel,
) -> None:
    async with engines_on(redis_sentinel.url, f"sentinel-{uuid.uuid4().hex[:8]}:") as (make, _):
        publisher, _ = await make()
        subscriber, inbox = await make()
        await subscriber.subscribe("news")
        positions = await publisher.publish({"news": [frame(i) for i in range(5)]})
        await eventually(has(inbox, "news", list(range(5))), message="frames before the kill")

        killed = redis_sentinel.fail_over()
        try:

            async def publishes_again() -> bool:
                try:
                    await publisher.publish({"news": [frame(5)]})
                except EngineUnavailableError:  # while it finds the new primary
                    return False
                return True

            async def link_up() -> bool:
                return subscriber.available

            async def heard_after_the_failover() -> bool:
                return 6 in payloads_of(inbox.frames["news"])

            await eventually(publishes_again, within=20, message="a publish to the new primary")
            await eventually(link_up, within=20, message="the subscriber's link up again")
            await publisher.publish({"news": [frame(6)]})
            await eventually(heard_after_the_failover, within=10, message="a frame afterwards")
            # The promoted replica is another process: positions of the old primary's epoch
            # are not taken for complete, whatever the replica holds.
            read = await subscriber.read_history("news", positions["news"])
            assert not read.recovered
        finally:
            redis_sentinel.heal(killed)
        assert payloads_of(inbox.frames["news"])[:5] == list(range(5))
