"""Opening the upstream connection to a node on behalf of a client, and how it can fail.

The gateway sends the client's upgrade request to the node itself, over a plain TCP (or
TLS, for ``wss://``) connection: the client's ``Sec-WebSocket-Key`` (so the node's
``Sec-WebSocket-Accept`` is the one the client expects), its subprotocols, query,
credentials and address (``X-Forwarded-For``), plus a ticket of the gateway's for this one
connection, and no extension (compression stays off end to end). A session that moves
presents the token its client renewed on the connection in the place of the first one
(:func:`~wspool.gateway.model.renewal.with_token`). A :class:`NodeLink` reads
the node's answer; after a 101 it carries the relayed bytes (``wspool.gateway.splice``).
Two failures are told apart:

- :class:`ClientRefusedError`: the node answered with a 4xx about the client (bad token,
  origin, too many attempts). The client gets the node's answer as it was written (status,
  body, ``WWW-Authenticate``, ``Retry-After``), and the node is not blamed.
- :class:`UpstreamError`: the node could not serve; the relay tries another one.

The request line carries the client's token and the ticket in its query, so no message
built here quotes it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ssl
import time
import uuid
from collections.abc import Callable
from typing import cast
from urllib.parse import urlencode

from wspool.core.auth import offered_subprotocols
from wspool.core.tickets import Ticket, issue_ticket
from wspool.gateway.model.nodeurls import NodeAddress, node_address
from wspool.gateway.model.renewal import Handshake, with_token
from wspool.gateway.model.upgrade import FORWARDED_HEADERS, UpgradeRequest
from wspool.gateway.pool import NodeState

__all__ = [
    "ClientRefusedError",
    "NodeLink",
    "UpstreamError",
    "client_handshake",
    "connect_upstream",
    "upstream_query",
    "websocket_accept",
]

_PASSED_BACK_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After")
_MAX_REFUSAL_BODY = 4096
_MAX_ANSWER_HEAD = 16 * 1024
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ClientRefusedError(Exception):
    """The node refused this client (bad token, origin, limits): the client gets the answer."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"the node refused the handshake with {status}")
        self.status = status
        self.body = body
        self.headers = headers


class UpstreamError(Exception):
    """Connecting to a node failed.

    ``conclusive`` when the failure alone shows the node cannot serve: the connection was
    refused (nothing listens), or the handshake got no answer within the budget (a node that
    answers in milliseconds when alive is hung or cut off). Other failures count towards
    the circuit's threshold.
    """

    def __init__(self, message: str, *, conclusive: bool = False) -> None:
        super().__init__(message)
        self.conclusive = conclusive


class _Answer:
    """The node's answer to the upgrade request: status, headers (names in lower case)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ValueError("not an HTTP/1.x status line")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError("malformed header line")
            self.headers[name.strip().lower()] = value.strip()
        self.body = b""

    @property
    def body_length(self) -> int:
        """How much of the body to read: its length, up to what a refusal passes on."""
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            length = 0
        return min(max(length, 0), _MAX_REFUSAL_BODY)


class NodeLink(asyncio.Protocol):
    """The TCP connection to a node: the handshake's answer first, then relayed bytes.

    Until :meth:`relay_to` names where the bytes go, what follows the answer's head is kept
    (a node may send its first frames right behind its 101).
    """

    __slots__ = (
        "_answer",
        "_buffer",
        "_on_data",
        "_on_lost",
        "_on_writable",
        "answered",
        "lost",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the node's answer is read (:meth:`take_answer`), or failed."""
        self._buffer = b""
        self._answer: _Answer | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] | None = None
        self._on_writable: Callable[[bool], None] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def relay_to(
        self,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[], None],
        on_writable: Callable[[bool], None],
    ) -> None:
        """Hand what the node sends (kept bytes first), its loss and its flow control on."""
        self._on_data = on_data
        self._on_lost = on_lost
        self._on_writable = on_writable
        kept, self._buffer = self._buffer, b""
        if kept:
            on_data(kept)
        if self.lost:
            on_lost()

    def take_answer(self) -> _Answer:
        """The node's answer, once :attr:`answered`; the link holds it no longer (a relayed
        connection does not keep its handshake)."""
        answer, self._answer = self._answer, None
        assert answer is not None
        return answer

    def detach(self) -> None:
        """Report nothing more (the session it carried went on elsewhere); what still
        arrives is dropped."""
        self.relay_to(_drop, _nothing, _drop)

    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
            return
        self._buffer += data
        if self.answered.done():
            self._read_body()
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_ANSWER_HEAD:
                self._fail(ValueError("answer head too long"))
            return
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        try:
            self._answer = _Answer(head)
        except ValueError as error:
            self._fail(error)
            return
        if self._answer.status == 101:
            self.answered.set_result(None)
        else:
            self._read_body()

    def _read_body(self, *, eof: bool = False) -> None:
        answer = self._answer
        if answer is None or (self.answered.done() and answer.status == 101):
            return
        if len(self._buffer) >= answer.body_length or eof:
            answer.body = self._buffer[: answer.body_length]
            self._buffer = b""
            if not self.answered.done():
                self.answered.set_result(None)

    def _fail(self, error: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.answered.done():
            if self._answer is not None:
                self._read_body(eof=True)
            else:
                self.answered.set_exception(ConnectionResetError("closed before answering"))
        if self._on_lost is not None:
            self._on_lost()

    def pause_writing(self) -> None:
        if self._on_writable is not None:
            self._on_writable(False)

    def resume_writing(self) -> None:
        if self._on_writable is not None:
            self._on_writable(True)


def client_handshake(request: UpgradeRequest, token: str | None = None) -> Handshake:
    """Where ``request``'s client carries its token, as the node should see it: with
    ``token`` (renewed since) in the place of its own, if given (any ``ticket`` query
    parameter is ours)."""
    headers = request.headers
    handshake = Handshake(
        headers.get("Authorization"),
        [(k, v) for k, v in request.query if k != "ticket"],
        offered_subprotocols(headers.getall("Sec-WebSocket-Protocol", ())),
    )
    return handshake if token is None else with_token(handshake, token)


def upstream_query(handshake: Handshake, ticket: str | None) -> str:
    """The client's query string as the node should see it, with our ``ticket``."""
    query = handshake.query
    if ticket is not None:
        query = [*query, ("ticket", ticket)]
    return urlencode(query)


def upgrade_request(
    request: UpgradeRequest, handshake: Handshake, address: NodeAddress, query: str
) -> bytes:
    """The client's upgrade request as the node at ``address`` gets it, with ``query``
    (header values as aiohttp's parser checked them, a renewed token as the node accepted it:
    no line breaks)."""
    headers = request.headers
    lines = [
        f"GET {address.target(query)} HTTP/1.1",
        f"Host: {address.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {headers['Sec-WebSocket-Key']}",
        "Sec-WebSocket-Version: 13",
    ]
    if handshake.subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(handshake.subprotocols)}")
    if handshake.authorization is not None:
        lines.append(f"Authorization: {handshake.authorization}")
    for name in FORWARDED_HEADERS:
        value = headers.get(name)
        if value is not None:
            lines.append(f"{name}: {value}")
    peer = request.remote or ""
    prior = headers.get("X-Forwarded-For")
    lines.append(f"X-Forwarded-For: {prior}, {peer}" if prior else f"X-Forwarded-For: {peer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def switching_protocols(answer: _Answer) -> bytes:
    """The 101 the client gets: the node's accept and the subprotocol it chose."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {answer.headers['sec-websocket-accept']}",
    ]
    protocol = answer.headers.get("sec-websocket-protocol")
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` that answers ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def connect_upstream(
    node: NodeState,
    request: UpgradeRequest,
    handshake: Handshake,
    *,
    secret: str,
    handshake_seconds: float,
    handover: bool = False,
) -> tuple[NodeLink, bytes]:
    """Open the WebSocket to ``node`` on behalf of ``request``'s client, whose credentials
    are ``handshake`` (:func:`client_handshake`): the link, and the 101 to answer the client
    with (``handover``: the ticket asks for a drain's notice)."""
    ticket = None
    if secret:
        # No client named: the node judges the client's own token and clientId, forwarded.
        ticket = issue_ticket(
            secret,
            Ticket(uuid.uuid4().hex, None, node.server_id or node.id, handover=handover),
            time.time(),
        )
    address = node_address(node.info.url)
    loop = asyncio.get_running_loop()
    link: NodeLink | None = None
    try:
        async with asyncio.timeout(handshake_seconds):
            _, link = await loop.create_connection(
                NodeLink, address.host, address.port, ssl=_tls() if address.secure else None
            )
            assert link.transport is not None
            query = upstream_query(handshake, ticket)
            link.transport.write(upgrade_request(request, handshake, address, query))
            await link.answered
            answer = link.take_answer()
    except TimeoutError:
        _abort(link)
        raise UpstreamError(
            f"{node.id} did not answer within {handshake_seconds}s", conclusive=True
        ) from None
    except ConnectionRefusedError as error:
        raise UpstreamError(
            f"connect to {node.id} failed: {error.strerror or type(error).__name__}",
            conclusive=True,
        ) from None
    except (OSError, ValueError) as error:
        _abort(link)
        raise UpstreamError(f"handshake with {node.id} failed: {type(error).__name__}") from None
    except BaseException:  # the client left meanwhile
        _abort(link)
        raise
    if answer.status != 101:
        _abort(link)
        if 400 <= answer.status < 500 and answer.status != 404:
            # About the client, not the node: pass the answer on, and count no failure.
            passed = {
                name: answer.headers[name.lower()]
                for name in _PASSED_BACK_HEADERS
                if name.lower() in answer.headers
            }
            raise ClientRefusedError(answer.status, answer.body, passed)
        raise UpstreamError(f"{node.id} answered the handshake with {answer.status}")
    accept = answer.headers.get("sec-websocket-accept")
    if accept != websocket_accept(request.headers["Sec-WebSocket-Key"]):
        _abort(link)
        raise UpstreamError(f"handshake with {node.id} failed: wrong Sec-WebSocket-Accept")
    return link, switching_protocols(answer)


def _abort(link: NodeLink | None) -> None:
    if link is not None and link.transport is not None:
        link.transport.abort()


def _drop(_: object) -> None:
    """What a detached link does with what it reads or learns."""


def _nothing() -> None:
    """What a detached link does when it is lost."""
