"""Publishing through Redis: one script call per batch, for every channel in it.

What only the Redis bus does (the in-memory engine has no request that can go unanswered):
a batch sent again with its batch id writes nothing twice on any of its channels, a node's
control channel in a batch keeps no history while the others do, and Redis forgetting the
script (a restart, ``SCRIPT FLUSH``) costs nothing but a reload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise

import pytest
import redis.asyncio as aioredis

from tests.integration.contracts.engines import HISTORY, Inbox, frame, has, payloads_of
from tests.support.redis_server import RedisServer
from tests.support.store import Store
from tests.support.waiting import eventually
from wspool.core import control
from wspool.core.history import StreamPosition
from wspool.core.keys import Keys
from wspool.core.redisurl import parse_redis_url
from wspool.state.redis_bus import LINK_TIMEOUT, RedisBus
from wspool.state.redis_client import connect, dedicated
from wspool.state.redis_links import SingleLink
from wspool.tasks import cancel_and_wait


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[tuple[RedisBus, Inbox]]:
    inbox = Inbox()
    bus = RedisBus(redis_url, history=HISTORY)
    await bus.start(inbox.on_message, inbox.on_status)
    await eventually(_available(bus), message="bus available")
    yield bus, inbox
    await bus.close()


def _available(bus: RedisBus) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return bus.available

    return probe


async def _top(bus: RedisBus, channel: str) -> StreamPosition:
    return (await bus.read_history(channel, None)).top


async def test_a_batch_sent_again_with_its_id_is_written_once_on_every_channel(
    bus: tuple[RedisBus, Inbox],
) -> None:
    engine, inbox = bus
    for channel in ("a", "b", "c"):
        await engine.subscribe(channel)
    batch = {"a": [frame(1), frame(2)], "b": [frame(3)], "c": [frame(4)]}
    for _ in range(3):  # as a node resends a batch whose answer it never got
        await engine.publish(batch, "batch-1")
    await engine.publish({"c": [frame(5)]}, "batch-2")
    await eventually(has(inbox, "c", [4, 5]), message="the later batch delivered")
    assert payloads_of(inbox.frames["a"]) == [1, 2]
    assert payloads_of(inbox.frames["b"]) == [3]
    assert [(await _top(engine, c)).offset for c in ("a", "b", "c")] == [2, 1, 2]
    since = StreamPosition((await _top(engine, "a")).epoch, 0)
    assert payloads_of((await engine.read_history("a", since)).frames or []) == [1, 2]


async def test_a_control_channel_keeps_no_history_beside_channels_that_do(
    bus: tuple[RedisBus, Inbox],
) -> None:
    engine, inbox = bus
    command = control.channel("node-1")
    await engine.subscribe(command)
    await engine.publish({command: [frame(1)], "news": [frame(2)]}, "batch-1")
    await eventually(has(inbox, command, [1]), message="command delivered")
    news = await _top(engine, "news")
    assert news.offset == 1
    read = await engine.read_history("news", StreamPosition(news.epoch, 0))
    assert payloads_of(read.frames or []) == [2]
    orders = await _top(engine, command)
    assert orders.offset == 1  # numbered, so its listener sees no gap, but not kept
    assert (await engine.read_history(command, StreamPosition(orders.epoch, 0))).frames is None


async def test_a_publish_after_redis_forgot_the_script_loads_it_again(
    bus: tuple[RedisBus, Inbox], redis_url: str
) -> None:
    engine, inbox = bus
    await engine.subscribe("news")
    await engine.publish({"news": [frame(1)]}, "batch-1")
    client = aioredis.Redis.from_url(redis_url)
    await client.script_flush()
    await client.aclose()
    await engine.publish({"news": [frame(2)], "other": [frame(3)]}, "batch-2")
    await eventually(has(inbox, "news", [1, 2]), message="both batches delivered")
    assert (await _top(engine, "other")).offset == 1


async def test_a_batch_sent_again_gets_the_positions_of_its_first_write(
    bus: tuple[RedisBus, Inbox],
) -> None:
    engine, _ = bus
    batch = {"a": [frame(1), frame(2)], "b": [frame(3)]}
    first = await engine.publish(batch, "batch-1")
    assert {c: p.offset for c, p in first.items()} == {"a": 2, "b": 1}
    assert await engine.publish(batch, "batch-1") == first  # no new offsets: not written again


async def test_a_senders_batches_leave_one_marker_per_channel_not_one_per_batch(
    bus: tuple[RedisBus, Inbox], redis_url: str
) -> None:
    """What Redis holds for publishes that may be sent again: at a node's rate of a batch per
    round trip, one key per batch would pile up for ten minutes (about a million at 2,000
    batches a second)."""
    engine, _ = bus
    for count in range(1, 51):
        last = await engine.publish({"a": [frame(count)]}, f"node-1.{count}")
    await engine.publish({"a": [frame(51)], "b": [frame(52)]}, "node-2.1")
    assert await engine.publish({"a": [frame(50)]}, "node-1.50") == last  # the last, again
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        markers = sorted([key async for key in client.scan_iter(match="*:b:*")])
    finally:
        await client.aclose()
    assert markers == [Keys().history_batch("a", "node-1"), Keys().history_batch("a", "node-2")]
    assert (await _top(engine, "a")).offset == 51


async def test_a_publish_goes_out_on_the_connection_that_receives_its_messages(
    bus: tuple[RedisBus, Inbox], redis_url: str
) -> None:
    # So Redis answers the script and delivers what it published to this node in one write.
    engine, inbox = bus
    await engine.subscribe("a")
    await engine.publish({"a": [frame(1)]}, "batch-1")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        subscribed = [c for c in await client.client_list() if c["sub"] != "0"]
    finally:
        await client.aclose()
    assert [c["cmd"] for c in subscribed] == ["evalsha"]
    await eventually(has(inbox, "a", [1]), message="delivered")


async def test_a_process_too_busy_to_read_does_not_take_its_link_for_lost(
    bus: tuple[RedisBus, Inbox],
) -> None:
    engine, inbox = bus
    await engine.subscribe("a")
    statuses = len(inbox.statuses)

    def hog() -> None:  # one pass of the event loop longer than the link's timeout
        time.sleep(LINK_TIMEOUT + 1.5)

    asyncio.get_running_loop().call_soon(hog)
    await asyncio.sleep(0)
    await engine.publish({"a": [frame(1)]})
    await eventually(has(inbox, "a", [1]), message="delivered after the busy pass")
    await asyncio.sleep(LINK_TIMEOUT)  # and no late verdict either
    assert engine.available
    assert inbox.statuses[statuses:] == []


async def test_a_backlog_on_the_link_does_not_keep_the_rest_of_the_process_waiting(
    redis_url: str,
) -> None:
    backlog = 4_000
    handled: list[float] = []

    def on_message(channel: str, start: StreamPosition, frames: list[str]) -> None:
        deadline = time.perf_counter() + 0.0005  # what a fan-out to many clients costs
        while time.perf_counter() < deadline:
            pass
        handled.append(time.monotonic())

    keys = Keys(prefix="backlog:")
    engine = RedisBus(redis_url, keys=keys, history=HISTORY)
    await engine.start(on_message, Inbox().on_status)
    store = aioredis.from_url(redis_url)
    try:
        await eventually(_available(engine), message="bus available")
        await engine.subscribe("a")
        ticks: list[float] = []
        async with store.pipeline(transaction=False) as pipe:
            for n in range(backlog):  # as many nodes' publishes arrive at once
                pipe.publish(keys.channel("a"), f"e:{n + 1}\n{frame(n)}")
            await pipe.execute()
        while len(handled) < backlog:  # about 2 s of handling, in the reader's turns
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)
        assert len(ticks) > 20, len(ticks)
        assert max(b - a for a, b in pairwise(ticks)) < 0.25
    finally:
        await store.aclose()
        await engine.close()


async def test_reads_of_one_channel_from_one_position_at_once_are_one_script_call(
    bus: tuple[RedisBus, Inbox], redis_url: str
) -> None:
    # A subscribe storm: every subscriber of a channel asks for its position at once, and
    # some resume after the same frame. Each distinct read costs Redis one script call.
    engine, _ = bus
    await engine.publish({"a": [frame(1), frame(2)]})
    first = (await engine.read_history("a", None)).top.advanced(-1)
    store = Store(redis_url)
    try:
        await store.reset_stats()
        reads = await asyncio.gather(
            *(engine.read_history("a", None) for _ in range(30)),
            *(engine.read_history("a", first) for _ in range(30)),
        )
        assert await store.command_calls("evalsha") == 2
    finally:
        await store.close()
    assert {read.top for read in reads} == {first.advanced(1)}
    assert all(read.frames == [] for read in reads[:30])
    assert all(payloads_of(read.frames or []) == [2] for read in reads[30:])


async def test_a_request_redis_leaves_unanswered_fails_in_time_and_the_link_stays_in_step(
    own_redis: RedisServer,
) -> None:
    """What a publish waits for on the bus's link: Redis frozen, its answer fails after the
    request timeout (and the publisher resends); the late answer, once Redis is back, is
    not taken for the next request's."""
    target = parse_redis_url(own_redis.url)
    client = connect(target, socket_timeout=5.0)
    assert isinstance(client, aioredis.Redis)  # one server
    # Pings and the silence cut-off far away: only the request's own deadline can end it.
    link = SingleLink(dedicated(target, client), 30.0, 60.0, request_timeout=0.3)
    pushed: list[object] = []
    await link.open([], pushed.append)
    reader = asyncio.create_task(link.read(pushed.append))
    try:
        assert await link.pipeline([("PING", "before")]) == ["before"]
        own_redis.freeze()
        began = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await link.pipeline([("PING", "unanswered")])
            waited = time.monotonic() - began
            with pytest.raises(TimeoutError):  # and so is each one after it
                await link.pipeline([("PING", "unanswered too")])
        finally:
            own_redis.thaw()
        assert 0.25 <= waited < 3.0
        assert await link.pipeline([("PING", "after")]) == ["after"]
        assert pushed == []
    finally:
        await cancel_and_wait(reader)
        await link.close()
        await client.aclose()
