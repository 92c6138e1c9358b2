"""What the relay answers a client with, besides the node's 101 and the frames after it.

- :func:`refuse`: the gateway's own refusals, as WebSocket closes (browsers see close
  codes, not statuses), on a :class:`ClientSocket` that ends its TCP connection as a node
  does;
- :func:`node_refusal`: a node's refusal of the client, as the node wrote it;
- :class:`Upgraded`: what the handler of a relayed connection returns, the relay having
  written everything itself.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from wspool.core.protocol import CloseCode
from wspool.gateway.admission import connection_closed
from wspool.gateway.upstream import ClientRefusedError

__all__ = ["LINGER", "ClientSocket", "Upgraded", "node_refusal", "refuse"]


class ClientSocket(web.WebSocketResponse):
    """aiohttp's server WebSocket, for the refusals: ends its TCP connection as a node does.

    aiohttp closes the socket right after the closing handshake; if the client is still
    sending, the kernel answers with a reset, which can destroy the close frame before the
    client has read it. Here the gateway stops sending (FIN), lets what still arrives be
    discarded, and waits for the client to close, at most ``LINGER`` seconds.
    """

    def _close_transport(self) -> None:  # aiohttp's one place that ends the connection
        transport = self._req.transport if self._req is not None else None
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            super()._close_transport()
            return
        transport.write_eof()
        transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER, transport.abort)


LINGER = 5.0
"""Seconds a client has to close its side after the gateway closed its own."""


async def refuse(request: web.Request, code: CloseCode, reason: str) -> web.WebSocketResponse:
    """Complete the handshake and close at once: browsers see close codes, not statuses."""
    client = ClientSocket(compress=False)
    await client.prepare(request)
    await client.close(code=code, message=reason.encode())
    await connection_closed(request, LINGER)  # aiohttp ends the connection when we return
    return client


class Upgraded(web.StreamResponse):
    """What the handler of a relayed connection returns: its 101 and everything after it
    were written by the relay, so aiohttp has nothing left to send."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def node_refusal(refusal: ClientRefusedError) -> web.Response:
    """The node's refusal, as the node wrote it: status, body and the headers that explain it."""
    return web.Response(status=refusal.status, body=refusal.body, headers=refusal.headers)
