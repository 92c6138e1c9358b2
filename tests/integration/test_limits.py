"""Each limit refuses at its boundary: two nodes share one Redis, and a client is counted
across both. The limit's own count passes; one more is refused."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.nodes import running_node, ws_url
from tests.support.processes import NodeProcess
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient
from wspool.core.security import SecuritySettings

OFF = SecuritySettings(
    insecure=True,
    max_connections_per_ip=0,
    connection_attempts_per_ip=0,
    messages_per_second=0,
    max_channels_per_connection=0,
)


def limits(**changes: Any) -> SecuritySettings:
    return dataclasses.replace(OFF, **changes)


async def refused_open(url: str, **options: Any) -> tuple[str, int | None]:
    """Connect to a node that must refuse after the handshake: the error code, close code."""
    async with connect(url, open_timeout=5, **options) as ws:
        async with asyncio.timeout(5):
            frame = await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        return str(json.loads(frame)["payload"]["code"]), ws.close_code


async def test_connections_per_address_are_counted_across_nodes(
    redis_url: str, store: Store
) -> None:
    security = limits(max_connections_per_ip=3)
    async with (
        running_node(redis_url, "node-a", security=security) as a,
        running_node(redis_url, "node-b", security=security) as b,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [await stack.enter_async_context(TestClient(ws_url(node))) for node in (a, b, a)]
        assert await store.redis.zcard("ip:127.0.0.1:connections") == 3
        assert await refused_open(ws_url(b)) == ("RATE_LIMITED", 1013)
        await clients[1].__aexit__(None, None, None)

        async def one_free() -> bool:
            return bool(await store.redis.zcard("ip:127.0.0.1:connections") == 2)

        await eventually(one_free, message="slot released")
        await stack.enter_async_context(TestClient(ws_url(b)))
    assert await store.exists("ip:127.0.0.1:connections") == 0


async def test_connection_attempts_per_address_are_counted_across_nodes(redis_url: str) -> None:
    security = limits(connection_attempts_per_ip=3)
    async with (
        running_node(redis_url, "node-a", security=security) as a,
        running_node(redis_url, "node-b", security=security) as b,
    ):
        for node in (a, b, a):
            async with TestClient(ws_url(node)):
                pass
        with pytest.raises(InvalidStatus) as raised:
            async with connect(ws_url(b), open_timeout=5):
                pass
        assert raised.value.response.status_code == 429
        assert raised.value.response.headers["Retry-After"] == "1"

        async def allowed_again() -> bool:
            with contextlib.suppress(InvalidStatus):
                async with connect(ws_url(a), open_timeout=5):
                    return True
            return False

        await eventually(allowed_again, within=3, interval=0.2, message="next second")


async def test_a_trusted_proxy_decides_whose_address_counts(redis_url: str) -> None:
    trusting = limits(max_connections_per_ip=1, trusted_proxies=("127.0.0.1",))
    async with (
        running_node(redis_url, "node-a", security=trusting) as a,
        running_node(redis_url, "node-b", security=limits(max_connections_per_ip=1)) as b,
    ):

        def via(client: str) -> dict[str, Any]:
            return {"additional_headers": {"X-Forwarded-For": client}}

        async with (
            TestClient(ws_url(a), **via("198.51.100.1")),
            TestClient(ws_url(a), **via("198.51.100.2")),
        ):
            assert await refused_open(ws_url(a), **via("198.51.100.1")) == (
                "RATE_LIMITED",
                1013,
            )
            # node-b trusts no proxy: the header is ignored and the peer address counts.
            async with TestClient(ws_url(b), **via("203.0.113.1")):
                refused = await refused_open(ws_url(b), **via("203.0.113.2"))
                assert refused == ("RATE_LIMITED", 1013)


async def test_messages_over_the_rate_are_refused_then_abuse_closes_with_1008(
    redis_url: str,
) -> None:
    # One token a second: the test's frames all arrive within that second.
    async with (
        running_node(redis_url, security=limits(messages_per_second=1, message_burst=5)) as a,
        connect(ws_url(a)) as ws,
    ):
        await ws.recv()
        for i in range(11):
            await ws.send(f'{{"type":"ping","messageId":"p{i}"}}')
        replies = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:  # until the node closes
                    replies.append(json.loads(await ws.recv()))
        assert [r["type"] for r in replies] == ["pong"] * 5 + ["error"] * 6
        assert {r["payload"]["code"] for r in replies[5:]} == {"RATE_LIMITED"}
        assert ws.close_code == 1008


async def test_a_client_at_the_burst_is_never_refused(redis_url: str) -> None:
    async with (
        running_node(redis_url, security=limits(messages_per_second=1, message_burst=5)) as a,
        TestClient(ws_url(a)) as client,
    ):
        for _ in range(5):
            assert (await client.request(type="ping"))["type"] == "pong"


async def test_channels_per_connection_stop_at_the_limit(redis_url: str) -> None:
    async with (
        running_node(redis_url, security=limits(max_channels_per_connection=3)) as a,
        TestClient(ws_url(a)) as client,
    ):
        for channel in ("c1", "c2", "c3", "c3"):
            await client.subscribe(channel)
        assert await client.error_code(type="subscribe", channel="c4") == "RATE_LIMITED"
        await client.request(type="unsubscribe", channel="c1")
        await client.subscribe("c4")


async def test_a_crashed_nodes_connections_stop_counting(redis_url: str, store: Store) -> None:
    flags = ("--insecure", "--max-connections-per-ip", "2", "--connection-attempts-per-ip", "0")
    crashing = NodeProcess("node-crash", redis_url, security=flags).start()
    try:
        async with (
            running_node(redis_url, "node-b", security=limits(max_connections_per_ip=2)) as b,
            TestClient(crashing.url),
            TestClient(crashing.url),
        ):
            assert await refused_open(ws_url(b)) == ("RATE_LIMITED", 1013)
            crashing.stop()  # SIGKILL: no goodbye, its slots stay until they lapse

            async def freed() -> bool:
                return await store.redis.zcount("ip:127.0.0.1:connections", "-inf", "+inf") == 0

            await eventually(freed, within=5, interval=0.1, message="slots lapsed")
            async with TestClient(ws_url(b)), TestClient(ws_url(b)):
                assert await refused_open(ws_url(b)) == ("RATE_LIMITED", 1013)
    finally:
        crashing.stop()
