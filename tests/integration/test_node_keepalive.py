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
