"""A node's keepalive pings: a client that answers them stays, one that falls silent is
dropped with 1011 once ``--ping-timeout`` has passed without its pong."""

from __future__ import annotations

import asyncio

from tests.support.nodes import running_node, ws_url
from tests.support.rawsocket import open_websocket, read_close_code
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient

INTERVAL = 0.2
TIMEOUT = 0.3


async def test_a_client_that_answers_pings_stays_connected(redis_url: str) -> None:
    async with (
        running_node(redis_url, ping_interval=INTERVAL, ping_timeout=TIMEOUT) as node,
        TestClient(ws_url(node), ping_interval=None) as client,
    ):
        # Several rounds of pings, each answered by the client library alone.
        await asyncio.sleep(8 * INTERVAL)
        assert await client.request(type="ping", messageId="p-1") == {
            "type": "pong",
            "messageId": "p-1",
        }
        assert node.sessions[client.connection_id].websocket.latency > 0


async def test_a_client_that_stops_answering_pings_is_closed_with_1011(redis_url: str) -> None:
    async with running_node(redis_url, ping_interval=INTERVAL, ping_timeout=TIMEOUT) as node:
        reader, writer = await open_websocket(node.port)
        try:
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(5):
                assert await read_close_code(reader) == 1011
            # Pinged within an interval (the rounds are the node's, not the connection's),
            # dropped once the timeout passed without a pong.
            waited = asyncio.get_running_loop().time() - started
            assert TIMEOUT <= waited < INTERVAL + TIMEOUT + 1.0
        finally:
            writer.close()

        async def forgotten() -> bool:
            return not node.sessions

        await eventually(forgotten, message="the silent session forgotten")


async def _first_ping(reader: asyncio.StreamReader) -> float:
    """When the first ping frame arrives, past any data frames before it."""
    loop = asyncio.get_running_loop()
    while True:
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        await reader.readexactly(length)
        if first & 0x0F == 0x9:
            return loop.time()


async def test_a_round_of_pings_is_spread_over_a_quarter_of_the_interval(
    redis_url: str,
) -> None:
    # 100 connections are 4 slices of 25: sent at once, a round of pings holds the node's
    # event loop for as long as 100 system calls take, and every message waits behind it.
    interval = 0.4
    async with running_node(redis_url, ping_interval=interval, ping_timeout=10) as node:
        connections = [await open_websocket(node.port) for _ in range(100)]
        try:
            async with asyncio.timeout(5):
                pinged = await asyncio.gather(*(_first_ping(r) for r, _ in connections))
        finally:
            for _, writer in connections:
                writer.close()
    # Three pauses of a quarter interval over 4 slices lie between the first and the last.
    assert max(pinged) - min(pinged) >= 0.75 * (3 * interval * 0.25 / 4)
    assert max(pinged) - min(pinged) < interval
