"""Opening the upstream WebSocket to a node on behalf of a client, and how it can fail.

The node sees the client's query, credentials and address (``X-Forwarded-For``) plus a
ticket of the gateway's for this one connection. Two failures are told apart:

- :class:`ClientRefusedError`: the node answered with a 4xx about the client (bad token,
  origin, too many attempts). The client gets the node's answer as it was written (status,
  body, ``WWW-Authenticate``, ``Retry-After``), and the node is not blamed.
- :class:`UpstreamError`: the node could not serve; the relay tries another one.

The upstream URL carries the client's token and the ticket in its query, so no message
built here quotes it, or quotes an error that does.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from wspool.core.auth import offered_subprotocols
from wspool.core.tickets import Ticket, issue_ticket
from wspool.gateway.model.nodeurls import socket_url
from wspool.gateway.pool import NodeState

__all__ = [
    "ClientRefusedError",
    "UpstreamError",
    "connect_upstream",
    "refusal_trace",
    "upstream_query",
]

_FORWARDED_HEADERS = ("Authorization", "Origin", "User-Agent", "Cookie")
_PASSED_BACK_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After")
_MAX_REFUSAL_BODY = 4096


@dataclass
class _Refusal:
    """A node's answer to a handshake it refused, as read while the handshake failed."""

    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


_refusal: contextvars.ContextVar[_Refusal | None] = contextvars.ContextVar("refusal", default=None)


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


def refusal_trace() -> aiohttp.TraceConfig:
    """A trace for the gateway's client session that keeps a refused handshake's answer.

    aiohttp raises a handshake's failure with the status and headers only; the body, which
    says why (``token expired``), is read here, while the response is still open.
    """

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        refusal = _refusal.get()
        response = params.response
        if refusal is None or not 400 <= response.status < 500:
            return
        refusal.headers = {
            name: response.headers[name]
            for name in _PASSED_BACK_HEADERS
            if name in response.headers
        }
        body = b""
        while len(body) < _MAX_REFUSAL_BODY:
            chunk = await response.content.read(_MAX_REFUSAL_BODY - len(body))
            if not chunk:
                break
            body += chunk
        refusal.body = body

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


def upstream_query(request: web.Request, ticket: str | None) -> str:
    """The client's query string as the node should see it (any ``ticket`` is ours to set)."""
    query = [(k, v) for k, v in request.query.items() if k != "ticket"]
    if ticket is not None:
        query.append(("ticket", ticket))
    return urlencode(query)


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name in _FORWARDED_HEADERS:
        if name in request.headers:
            headers[name] = request.headers[name]
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    return headers


async def connect_upstream(
    session: aiohttp.ClientSession,
    node: NodeState,
    request: web.Request,
    *,
    secret: str,
    handshake_seconds: float,
) -> aiohttp.ClientWebSocketResponse[bool]:
    """Open the WebSocket to ``node`` on behalf of ``request``'s client."""
    connection_id = uuid.uuid4().hex
    ticket = None
    if secret:
        # No client named: the node judges the client's own token and clientId, forwarded.
        ticket = issue_ticket(
            secret, Ticket(connection_id, None, node.server_id or node.id), time.time()
        )
    url = socket_url(node.info.url, upstream_query(request, ticket))
    refusal = _Refusal()
    token = _refusal.set(refusal)
    try:
        async with asyncio.timeout(handshake_seconds):
            upstream = await session.ws_connect(
                url,
                headers=upstream_headers(request),
                protocols=offered_subprotocols(
                    request.headers.getall("Sec-WebSocket-Protocol", ())
                ),
                autoping=True,
                compress=0,
                max_msg_size=0,  # the node is trusted; the client's side is the one bounded
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
    except aiohttp.WSServerHandshakeError as error:
        if 400 <= error.status < 500 and error.status != 404:
            # About the client, not the node: pass the answer on, and count no failure.
            raise ClientRefusedError(error.status, refusal.body, refusal.headers) from None
        raise UpstreamError(
            f"{node.id} answered the handshake with {error.status} ({error.message})"
        ) from None
    except aiohttp.ClientConnectorError as error:
        cause = error.os_error
        raise UpstreamError(
            f"connect to {node.id} failed: {cause.strerror or type(cause).__name__}",
            conclusive=isinstance(cause, ConnectionRefusedError),
        ) from None
    except TimeoutError:
        raise UpstreamError(
            f"{node.id} did not answer within {handshake_seconds}s", conclusive=True
        ) from None
    except (aiohttp.ClientError, OSError) as error:
        # Named by kind only: aiohttp's messages may quote the URL, and with it the secrets.
        raise UpstreamError(f"handshake with {node.id} failed: {type(error).__name__}") from None
    finally:
        _refusal.reset(token)
    return upstream
