"""Interruptions of a node's subscription: nothing published meanwhile is lost without a word.

Real ``wspool server`` (and ``wspool gateway``) processes and a real Redis. In every test a
publisher publishes without pause through the fault, and subscribers using the product's
client record what they are handed. Afterwards each subscriber must have every message of
the channel's history exactly once and in order, or have been told of the gap
(``Resubscribed(recovered=False)``, after a close that made it resume with ``since``);
and every publish was either refused and not written, or accepted and written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.processes import GatewayProcess, NodeProcess, http_get, running_farm
from tests.support.redis_server import RedisServer
from tests.support.store import Store
from tests.support.streams import (
    SteadyPublisher,
    Watcher,
    assert_answers_are_true,
    assert_nothing_lost_silently,
    history_payloads,
    wait_for_last,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

CHANNEL = "ticks"


def _prefix() -> tuple[str, str]:
    return ("--key-prefix", f"int-{uuid.uuid4().hex[:8]}:")


async def _store_is(node: NodeProcess, state: str) -> bool:
    status = await asyncio.to_thread(http_get, node.health_url)
    return bool(status[1]["store"] == state)


async def _check(
    store: Store, key: str, publisher: SteadyPublisher, watchers: list[Watcher]
) -> list[int]:
    """Stop the publisher, wait for its last message everywhere, and check every rule."""
    await publisher.stop()
    history = await history_payloads(store, key)
    assert history, "nothing was published"
    top, last = history[-1]
    await wait_for_last(watchers, last)
    for watcher in watchers:
        assert_nothing_lost_silently(watcher, top)
    return [payload for _, payload in history]


async def _all_up(nodes: list[NodeProcess]) -> bool:
    return all([await _store_is(node, "up") for node in nodes])


@contextlib.asynccontextmanager
async def _watching(urls: list[list[str]]) -> AsyncIterator[list[Watcher]]:
    watchers = [await Watcher.start(url, CHANNEL) for url in urls]
    try:
        yield watchers
    finally:
        for watcher in watchers:
            await watcher.close()


@pytest.fixture
async def redis_link(own_redis: RedisServer) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy("127.0.0.1", own_redis.port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_a_gateway_reports_its_store_down_while_cut_off_and_up_once_back(
    redis_link: FaultProxy,
) -> None:
    gateway = GatewayProcess("gw-cut", redis_link.url, nodes=0)
    await gateway.start_async()

    async def store_is(state: str) -> bool:
        return bool(http_get(f"{gateway.http}/health")[1]["store"] == state)

    try:
        await eventually(lambda: store_is("up"), message="store seen up")
        redis_link.cut()
        await eventually(lambda: store_is("down"), message="store seen down")
        redis_link.heal()
        await eventually(lambda: store_is("up"), within=10, message="store seen up")
    finally:
        gateway.stop()


async def test_subscribers_of_a_node_whose_redis_link_dropped_get_what_was_published_meanwhile(
    own_redis: RedisServer, redis_link: FaultProxy
) -> None:
    prefix = _prefix()
    cut = NodeProcess("node-cut", redis_link.url, *prefix)
    steady = NodeProcess("node-steady", own_redis.url, *prefix)
    store = Store(own_redis.url)
    try:
        await cut.start_async()
        await steady.start_async()
        async with _watching([[cut.url], [cut.url], [steady.url]]) as watchers:
            publisher = await SteadyPublisher(steady.url, CHANNEL).start()
            try:
                await asyncio.sleep(0.5)
                redis_link.cut()
                await eventually(lambda: _store_is(cut, "down"), message="link seen down")
                await asyncio.sleep(2.0)  # messages keep flowing to the history meanwhile
                redis_link.heal()
                await eventually(lambda: _store_is(cut, "up"), within=10, message="link back")
                await asyncio.sleep(1.0)
                history = await _check(store, f"{prefix[1]}hist:{{{CHANNEL}}}", publisher, watchers)
            finally:
                await publisher.close()
        assert_answers_are_true(publisher, history)
        assert not publisher.refused  # the publisher's node never lost Redis
    finally:
        await store.close()
        cut.stop()
        steady.stop()


async def _through_a_redis_fault(
    redis: RedisServer, fault: Callable[[], Awaitable[None]]
) -> tuple[SteadyPublisher, list[int], list[Watcher]]:
    """Two nodes on ``redis``, a publisher on the first, subscribers on both, ``fault``
    mid-stream; returns what was published (the history) and what each subscriber saw."""
    prefix = _prefix()
    nodes = [NodeProcess(f"node-{i}", redis.url, *prefix) for i in (1, 2)]
    store = Store(redis.url)
    try:
        for node in nodes:
            await node.start_async()
        urls = [[nodes[0].url], [nodes[1].url], [nodes[1].url]]
        async with _watching(urls) as watchers:
            publisher = await SteadyPublisher(nodes[0].url, CHANNEL).start()
            try:
                await asyncio.sleep(0.5)
                await fault()
                await eventually(lambda: _all_up(nodes), within=15, message="store back")
                await asyncio.sleep(1.0)
                history = await _check(store, f"{prefix[1]}hist:{{{CHANNEL}}}", publisher, watchers)
            finally:
                await publisher.close()
        return publisher, history, watchers
    finally:
        await store.close()
        for node in nodes:
            node.stop()


async def test_a_redis_frozen_for_ten_seconds_loses_nothing_and_refuses_only_what_it_did_not_write(
    own_redis: RedisServer,
) -> None:
    async def freeze() -> None:
        own_redis.freeze()
        try:
            await asyncio.sleep(10.0)
        finally:
            own_redis.thaw()

    publisher, history, _ = await _through_a_redis_fault(own_redis, freeze)
    assert_answers_are_true(publisher, history)
    assert publisher.refused, "a 10 s freeze refused nothing: the test did not test"


async def test_subscribers_are_told_of_the_gap_when_redis_restarts_empty(
    own_redis: RedisServer,
) -> None:
    async def restart() -> None:
        own_redis.stop()
        await asyncio.sleep(1.0)
        own_redis.start()

    publisher, history, watchers = await _through_a_redis_fault(own_redis, restart)
    # The history was lost with Redis: nobody may go on as if nothing happened.
    assert all(watcher.told_of_a_gap for watcher in watchers)
    assert not set(history) & publisher.refused.keys()


async def test_clients_of_a_node_frozen_behind_a_gateway_resume_elsewhere_and_lose_nothing(
    redis_session_url: str,
) -> None:
    with running_farm(
        redis_session_url,
        # The registration outlives the freeze: the gateway's health checks must notice.
        node_args=("--node-ttl", "60"),
        # The clients resume by themselves (the gateway's seamless moves are off).
        gateway_args=("--strategy", "round-robin", "--seamless", "false"),
    ) as farm:
        gateway = farm.gateway
        config = {
            "strategy": "round-robin",
            "healthCheck": {"interval": 1, "timeout": 1},
            "healthThreshold": 2,
        }
        assert gateway.api("POST", "/pool/config", config)[0] == 200
        store = Store(redis_session_url)
        async with _watching([[gateway.url]] * 6) as watchers:
            publisher = await SteadyPublisher(gateway.url, CHANNEL).start()
            try:
                frozen = next(n for n in farm.nodes if n.id != publisher.server_id)
                moved = [w for w in watchers if w.first_server == frozen.id]
                assert moved
                await asyncio.sleep(0.5)
                frozen.signal(signal.SIGSTOP)
                frozen_at = time.monotonic()
                try:

                    async def resumed() -> bool:
                        return all(w.client.server_id not in ("", frozen.id) for w in moved)

                    # interval + healthThreshold x timeout + fastInterval = 4 s at worst, and
                    # the client's reconnect; the node stays frozen for 30 s at most.
                    await eventually(resumed, within=30, interval=0.1, message="clients moved")
                    assert time.monotonic() - frozen_at < 8.0
                    await asyncio.sleep(2.0)
                finally:
                    frozen.signal(signal.SIGCONT)
                history = await _check(
                    store, f"{farm.prefix}hist:{{{CHANNEL}}}", publisher, watchers
                )
            finally:
                await publisher.close()
                await store.close()
        assert_answers_are_true(publisher, history)
