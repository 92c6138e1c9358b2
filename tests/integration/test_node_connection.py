"""What a node keeps of a connection's opening handshake once it is admitted: its path, not
its headers (a browser's cookies would otherwise stay in memory for the connection's life)."""

from __future__ import annotations

from tests.support.nodes import running_node, ws_url
from tests.support.wsclient import TestClient


async def test_an_admitted_connection_keeps_no_handshake_headers(redis_url: str) -> None:
    async with (
        running_node(redis_url) as node,
        TestClient(
            ws_url(node, "?clientId=alice"), additional_headers={"Cookie": "session=" + "x" * 2000}
        ) as client,
    ):
        websocket = node.sessions[client.connection_id].websocket
        assert websocket.request is not None
        assert websocket.request.path == "/ws?clientId=alice"
        assert not websocket.request.headers
        assert websocket.response is None
        # The connection works on without them.
        assert await client.request(type="ping", messageId="p-1") == {
            "type": "pong",
            "messageId": "p-1",
        }
