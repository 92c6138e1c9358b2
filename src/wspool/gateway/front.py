"""The gateway's listener: each connection is read until its first request's head is
complete, and then served by the relay or by aiohttp.

- A WebSocket upgrade of ``/ws`` (or ``/``) from an allowed origin is the relay's
  (``wspool.gateway.relay``): the same :class:`ClientConnection` carries it for the
  connection's life, and nothing of the HTTP request is kept but what a node is sent
  (:class:`~wspool.gateway.model.upgrade.UpgradeRequest`). A relayed connection costs no task
  and no request object once it is open: its reads go straight to its splice.
- Anything else goes to aiohttp's connection handler with what was read: the REST API, the
  dashboard, the client's modules, and every answer aiohttp words (a malformed request, an
  upgrade that is not one, an origin not allowed, a gateway at capacity).

The head is parsed by aiohttp's own HTTP parser, with the limits its connection handler
applies, so both take the same requests. A head not complete within ``--handshake-timeout``
closes the connection, and until it is complete the connection is one that
:class:`~wspool.gateway.admission.Admission` may close to make room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_parser import HttpRequestParser

from wspool.gateway.admission import CountedHandler
from wspool.gateway.answers import LINGER
from wspool.gateway.model.upgrade import UpgradeRequest, opens_websocket
from wspool.gateway.relay import relay_websocket

if TYPE_CHECKING:
    from wspool.gateway.gateway import Gateway
    from wspool.gateway.splice import Splice

__all__ = ["ClientConnection", "FrontDoor", "FrontSite"]

log = logging.getLogger(__name__)

WEBSOCKET_PATHS = frozenset({"/ws", "/"})
MAX_HEAD_BYTES = 64 * 1024
"""A head not complete within this many bytes goes to aiohttp, which answers it (its limits
are per line and per header)."""
EARLY_BYTES = 64 * 1024
"""What a client may send before its 101 is read (its first frames) before reading stops
until the relay takes them."""


class FrontDoor:
    """The listener's protocol factory: one :class:`ClientConnection` per accepted socket.

    ``options`` are aiohttp's connection-handler settings (the handshake timeout as its
    keep-alive timeout, the header limits); ``server`` is aiohttp's, for the connections it
    serves.
    """

    def __init__(self, gateway: Gateway, server: web.Server, options: dict[str, Any]) -> None:
        self.gateway = gateway
        self.admission = gateway.admission
        self._server = server
        self._options = options
        self.handshake_timeout: float = options["keepalive_timeout"]
        self._limits = {
            name: options[name] for name in ("max_line_size", "max_headers", "max_field_size")
        }
        self.relayed: set[ClientConnection] = set()

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def route(self, connection: ClientConnection, head: bytes) -> None:
        """The first request's head arrived on ``connection`` (with anything after it)."""
        self.admission.arrived(connection)
        upgrade = None if self.admission.full else self._upgrade(connection, head)
        if upgrade is None:
            self._hand_off(connection, head)
            return
        request, early = upgrade
        self.relayed.add(connection)
        connection.relay(request, early)

    def _upgrade(
        self, connection: ClientConnection, head: bytes
    ) -> tuple[UpgradeRequest, bytes] | None:
        """The upgrade the relay serves, and what the client sent after it; None for the
        requests aiohttp serves."""
        if not head.startswith(b"GET "):
            return None
        parser = HttpRequestParser(None, asyncio.get_running_loop(), 2**16, **self._limits)
        try:
            messages, upgraded, early = parser.feed_data(head)
        except Exception:  # aiohttp answers what its parser refuses, and
            return None  # a request with a body, whose reader this parser cannot make
        if not messages or not upgraded:
            return None
        message = messages[0][0]
        headers = message.headers
        if (
            message.method != "GET"
            or message.url.path not in WEBSOCKET_PATHS
            or not opens_websocket(headers)
            or not self.gateway.settings.security.origin_allowed(headers.get("Origin"))
        ):
            return None
        peer = connection.transport.get_extra_info("peername")
        remote = peer[0] if isinstance(peer, tuple) else None
        return UpgradeRequest.of(headers, message.url.query.items(), remote), early

    def adopt(self, request: web.Request) -> web.StreamResponse:
        """Relay an upgrade that aiohttp read (it followed another request on its
        connection): the connection leaves aiohttp's handler for a :class:`ClientConnection`.
        What the handler returns to aiohttp."""
        handler = request.protocol
        if not isinstance(handler, CountedHandler) or handler.transport is None:
            raise ConnectionResetError("the client left")
        upgrade = UpgradeRequest.of(request.headers, request.query.items(), request.remote)
        connection = ClientConnection(self)
        connection.adopt(handler.detach())
        self.relayed.add(connection)
        connection.relay(upgrade, b"")
        return Upgraded()

    def _hand_off(self, connection: ClientConnection, head: bytes) -> None:
        transport = connection.transport
        handler = CountedHandler(
            self.admission, self._server, loop=asyncio.get_running_loop(), **self._options
        )
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(head)

    def close(self) -> None:
        """Drop every relayed connection (the gateway is stopping)."""
        for connection in list(self.relayed):
            connection.abort()


class ClientConnection(asyncio.Protocol):
    """One client's connection: its head read, then (if it is relayed) its WebSocket's bytes
    handed to its splice, and its end."""

    __slots__ = ("_door", "_head", "_opening", "_timer", "early", "splice", "transport")

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._head: bytearray | None = bytearray()  # None once the head is read
        self._timer: asyncio.TimerHandle | None = None  # the handshake's, then the linger's
        self._opening: asyncio.Task[None] | None = None
        self.early = b""
        """What the client sent after its request, before the relay took over."""
        self.splice: Splice | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._door.admission.opened(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._door.handshake_timeout, self.force_close)

    def adopt(self, transport: asyncio.Transport) -> None:
        """Carry on a connection whose request another protocol read (counted already)."""
        self.transport = transport
        self._head = None
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        splice = self.splice
        if splice is not None:
            splice.from_client(data)
            return
        head = self._head
        if head is None:
            if self._opening is None:  # answered with a refusal: the rest is dropped
                return
            self.early += data  # the relay is opening the node
            if len(self.early) > EARLY_BYTES:
                self.transport.pause_reading()
            return
        searched = max(0, len(head) - 3)
        head += data
        if head.find(b"\r\n\r\n", searched) < 0 and len(head) <= MAX_HEAD_BYTES:
            return
        self._head = None
        self._cancel_timer()
        self._door.route(self, bytes(head))

    def relay(self, request: UpgradeRequest, early: bytes) -> None:
        """Relay this connection's WebSocket (the task ends once the node's 101 is passed on)."""
        self.early += early
        door = self._door
        gateway = door.gateway
        assert gateway.monitor is not None
        self._opening = asyncio.create_task(
            relay_websocket(
                self, request, gateway.pool, gateway.monitor, gateway.stats, door.admission
            )
        )
        self._opening.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[None]) -> None:
        self._opening = None
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("relaying a client failed", exc_info=error)
            self.abort()

    def attach(self, splice: Splice) -> None:
        """From now on the client's bytes go to ``splice``, beginning with what came early."""
        self.splice = splice
        early, self.early = self.early, b""
        if early:
            splice.from_client(early)
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def answer(self, data: bytes) -> None:
        """Write ``data`` (a refusal) and end the connection."""
        if not self.transport.is_closing():
            self.transport.write(data)
        self.linger()

    def linger(self) -> None:
        """Stop sending (FIN) and read on until the client closes, at most :data:`LINGER`
        seconds: closing a socket with unread data resets it, which can destroy the last
        frame before the client has read it."""
        transport = self.transport
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(LINGER, transport.abort)

    def force_close(self) -> None:
        """Close a connection that has not sent its request (its time is up, or the gateway
        needs room)."""
        self.transport.close()

    def abort(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
        if self.splice is not None:
            self.splice.abort_node()
        self.transport.abort()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost tells the splice

    def connection_lost(self, exc: Exception | None) -> None:
        door = self._door
        door.admission.closed(self)
        door.relayed.discard(self)
        self._cancel_timer()
        if self._opening is not None:
            self._opening.cancel()
        if self.splice is not None:
            self.splice.client_gone()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Upgraded(web.StreamResponse):
    """What aiohttp's handler of an adopted upgrade returns: the relay writes everything the
    client gets, so aiohttp has nothing to send."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class FrontSite(web.BaseSite):
    """The gateway's TCP site: its connections come in through a :class:`FrontDoor`, counted
    by the gateway's :class:`~wspool.gateway.admission.Admission` (aiohttp's TCPSite counts
    nothing and relays nothing)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        gateway: Gateway,
        options: dict[str, Any],
    ) -> None:
        """``options`` are aiohttp's connection-handler settings (timeouts, header limits)."""
        super().__init__(runner, backlog=gateway.admission.backlog)
        self._host = host
        self._port = port
        self._gateway = gateway
        self._options = options
        self._door: FrontDoor | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._door = door = FrontDoor(self._gateway, server, self._options)
        self._gateway.front = door
        self._server = await asyncio.get_running_loop().create_server(
            door,
            self._host,
            self._port,
            backlog=self._gateway.admission.backlog,
            reuse_address=True,
        )

    async def stop(self) -> None:
        await super().stop()
        if self._door is not None:
            self._door.close()
