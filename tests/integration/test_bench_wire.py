"""The load generator's connections: they behave on the wire as real clients' do."""

from __future__ import annotations

import socket

from tests.support.nodes import running_node
from wspool.bench.settings import Target
from wspool.bench.wire import open_connection


async def test_a_generator_connection_sends_each_frame_without_waiting_for_an_ack(
    redis_url: str,
) -> None:
    # Browsers and WebSocket libraries disable Nagle's algorithm; a generator that did not
    # would hold a publisher's frame until the server acknowledged the one before (up to
    # 40 ms) and measure that wait as the server's latency.
    received: list[bytes] = []
    async with running_node(redis_url) as node:
        target = Target("127.0.0.1", node.port, "/ws")
        connection = await open_connection(target, "", received.append)
        try:
            assert connection.transport is not None
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            await connection.close()
