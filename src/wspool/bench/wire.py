"""A lean WebSocket client: the part of RFC 6455 the farm's clients use, cheap on CPU.

The generator shares the machine's cores with the nodes it measures, so each delivery it
receives must cost it far less than the node spent sending it. websockets' client runs
every frame through a parser generator, a queue and an await; here an
:class:`asyncio.Protocol` cuts frames straight out of the received bytes, hands ``data``
frames to a callback as bytes (no decoding: the caller only counts them and reads a
timestamp), and answers pings itself. Other frames go to the connection's dialect
(:mod:`wspool.bench.dialects`: the wspool protocol, or a peer's), which parses them; a
dialect whose frames carry several messages (Centrifugo's, one per line) has each handled
on its own. Client frames are masked with websockets' C ``apply_mask``.

Not covered, because the farm never sends them: extensions (compression is off),
subprotocols, masked server frames.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

from websockets.speedups import apply_mask

from wspool.bench.dialects import DIALECTS, Dialect, Subscription
from wspool.bench.settings import Target

__all__ = ["HandshakeError", "WireConnection", "open_connection"]

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_MAX_HEAD = 16 * 1024


class HandshakeError(Exception):
    """The server did not switch protocols as RFC 6455 §4.1 requires."""


class WireConnection(asyncio.Protocol):
    """One client connection; ``opened`` resolves when the server says the client is in
    (the node's ``connected`` frame; Socket.IO's namespace ``40``; Centrifugo's connect
    reply)."""

    def __init__(
        self,
        target: Target,
        on_data: Callable[[bytes], None],
        dialect: Dialect = DIALECTS["wspool"],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.target = target
        self.on_data = on_data
        self.dialect = dialect
        self.data_prefix = dialect.data_prefix
        self.batched = dialect.batched
        self.server_id = ""
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.errors: list[str] = []
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(random.randbytes(16))
        self._buffer = bytearray()
        self._upgraded = False
        self._closing = False
        self._fragments: list[bytes] = []
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._writable = asyncio.Event()
        self._writable.set()

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host = f"{self.target.host}:{self.target.port}"
        path = self.dialect.path(self.target.path)
        transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._fail(HandshakeError("response head too large"))
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            try:
                self._check_response(head)
            except HandshakeError as error:
                self._fail(error)
                return
            self._upgraded = True
            self.dialect.greet(self)
        self._read_frames()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        lost = ConnectionError(f"connection closed (code {self.close_code})")
        if not self.opened.done():
            self.opened.set_exception(exc or lost)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(lost)
        if not self.closed.done():
            self.closed.set_result(None)

    # frames in ---------------------------------------------------------------------------

    def _check_response(self, head: bytes) -> None:
        status, *lines = head.split(b"\r\n")
        if status.split(b" ", 2)[1:2] != [b"101"]:
            raise HandshakeError(f"server answered {status.decode(errors='replace')!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _ACCEPT_GUID).digest())
        if headers.get(b"sec-websocket-accept") != accept:
            raise HandshakeError("wrong Sec-WebSocket-Accept")

    def _read_frames(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        pos = 0
        # Server frames are unmasked (RFC 6455 §5.1): 2 header bytes, then 0, 2 or 8 more.
        while size - pos >= 2:
            first = buffer[pos]
            length = buffer[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                header = 10
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buffer[pos + header : end])
            pos = end
            self._on_frame(first, payload)
        if pos:
            del buffer[:pos]

    def _on_frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        final = first & 0x80
        if opcode == 0x1 or opcode == 0x0:  # text, continuation
            if not final:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            if self.batched and b"\n" in payload:
                for message in payload.split(b"\n"):
                    self._on_message(message)
            else:
                self._on_message(payload)
        elif opcode == 0x9:  # ping
            self._send_frame(0xA, payload)
        elif opcode == 0x8:  # close: answer it, then the server closes TCP (§5.5.1)
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self._closing:
                self._closing = True
                self._send_frame(0x8, payload[:2])

    def _on_message(self, payload: bytes) -> None:
        if payload.startswith(self.data_prefix):
            self.on_data(payload)
        elif payload:
            self.dialect.on_control(self, payload)

    # for the dialect -------------------------------------------------------------------

    def mark_open(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    def answer(self, request_id: str, reply: dict[str, Any]) -> None:
        waiting = self._replies.pop(request_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    def fail(self, error: Exception) -> None:
        self._fail(error)

    # frames out --------------------------------------------------------------------------

    def _send_frame(self, opcode: int, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(opcode, data))

    def send_text(self, data: bytes) -> None:
        self._send_frame(0x1, data)

    def send_texts(self, frames: list[bytes]) -> None:
        """Queue text frames in one write (the caller waits for :meth:`writable`)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join([_client_frame(0x1, data) for data in frames]))

    async def writable(self) -> None:
        """Return when the transport's buffer is below its high-water mark."""
        await self._writable.wait()

    async def request(self, request_id: str, frame: bytes, within: float = 10.0) -> dict[str, Any]:
        """Send a text frame and return the answer the dialect files under ``request_id``."""
        reply = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        self._send_frame(0x1, frame)
        async with asyncio.timeout(within):
            answer: dict[str, Any] = await reply
            return answer

    async def subscribe(self, channel: str, since: str = "") -> Subscription:
        """Subscribe to ``channel`` (resuming after ``since`` if given)."""
        return await self.dialect.subscribe(self, channel, since)

    async def close(self, within: float = 2.0) -> None:
        """Close handshake with 1000; the connection is cut if it takes longer than that."""
        if self.transport is None or self.closed.done():
            return
        if not self._closing:
            self._closing = True
            self._send_frame(0x8, (1000).to_bytes(2, "big"))
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self.closed)
        except TimeoutError:
            self.transport.abort()

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


def _client_frame(opcode: int, data: bytes) -> bytes:
    # A fresh mask per frame (RFC 6455 §5.3). It only has to defeat cache poisoning by
    # intermediaries, and the generator talks to loopback only, so a fast PRNG is enough.
    mask = random.randbytes(4)
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + mask + apply_mask(data, mask)


async def open_connection(
    target: Target,
    source: str,
    on_data: Callable[[bytes], None],
    within: float = 10.0,
    dialect: Dialect = DIALECTS["wspool"],
) -> WireConnection:
    """Connect from ``source`` (or the kernel's choice), upgrade, wait for ``connected``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    protocol: WireConnection | None = None
    try:
        sock.setblocking(False)
        # As every WebSocket client does (browsers, websockets). asyncio sets it only on
        # sockets it creates itself or made with proto=IPPROTO_TCP; without it, a frame
        # written while the one before is unacknowledged waits for the ACK, which the
        # server's kernel may delay up to 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            # Port chosen at connect time, per destination: each source address then offers
            # its whole ephemeral range to every target instead of once in all.
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        async with asyncio.timeout(within):
            await loop.sock_connect(sock, (target.host, target.port))
            _, protocol = await loop.create_connection(
                lambda: WireConnection(target, on_data, dialect), sock=sock
            )
            await protocol.opened
    except BaseException:
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()
        else:
            sock.close()
        raise
    return protocol
