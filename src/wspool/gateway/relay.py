"""The load balancer path: ``ws://gateway/ws`` picked, connected and relayed to a node.

The upstream connection is opened *before* the client's handshake is answered, so a node
that refuses or stalls is retried on another one within ``connect_attempts`` and the
client never sees the failure. Then frames are relayed both ways untouched (text stays
undecoded bytes) until either side closes, and the close code travels to the other side.
An upstream that vanishes without a closing handshake gets its clients a 1012 (service
restart: reconnect) and its node an immediate health check; so do the clients of a node
that the health checks mark down while its connections stay open (hung, frozen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from wspool.core.nodeurls import socket_url
from wspool.core.protocol import CloseCode
from wspool.core.tickets import Ticket, issue_ticket
from wspool.gateway.monitor import HealthMonitor
from wspool.gateway.pool import NodeState, PoolManager

__all__ = ["RelayStats", "UpstreamError", "connect_upstream", "relay_websocket"]

log = logging.getLogger(__name__)

_FORWARDED_HEADERS = ("Authorization", "Origin", "User-Agent", "Cookie")
ABORT_GRACE = 0.1
"""Seconds a hung node's connection gets to answer our close before it is dropped."""

_CLOSE_TYPES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class ClientRefusedError(Exception):
    """The node refused this client (bad token, origin, limits): the client gets the answer."""

    def __init__(self, status: int, message: str, retry_after: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


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


@dataclass
class RelayStats:
    connections_opened: int = 0
    connections_open: int = 0
    upstream_failures: int = 0
    refused_no_server: int = 0
    refused_pool_full: int = 0
    refused_by_node: int = 0
    upstream_lost: int = 0
    messages_to_server: int = 0
    messages_to_client: int = 0


def upstream_query(request: web.Request, ticket: str | None) -> str:
    """The client's query string as the node should see it (any ``ticket`` is ours to set)."""
    query = [(k, v) for k, v in request.query.items() if k != "ticket"]
    if ticket is not None:
        query.append(("ticket", ticket))
    return urlencode(query)


def offered_subprotocols(request: web.Request) -> list[str]:
    """The subprotocols the client offered (RFC 6455 §11.3.4: comma-separated, repeatable)."""
    return [
        name.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", ())
        for name in header.split(",")
        if name.strip()
    ]


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
        client_id = request.query.get("clientId") or connection_id
        ticket = issue_ticket(
            secret, Ticket(connection_id, client_id, node.server_id or node.id), time.time()
        )
    url = socket_url(node.info.url, upstream_query(request, ticket))
    try:
        async with asyncio.timeout(handshake_seconds):
            upstream = await session.ws_connect(
                url,
                headers=upstream_headers(request),
                protocols=offered_subprotocols(request),
                autoping=True,
                compress=0,
                max_msg_size=0,  # the node enforces the frame limits; the relay does not parse
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
    except aiohttp.WSServerHandshakeError as error:
        if 400 <= error.status < 500 and error.status != 404:
            # About the client, not the node: pass the answer on, and count no failure.
            retry_after = error.headers.get("Retry-After") if error.headers else None
            raise ClientRefusedError(error.status, error.message, retry_after) from None
        raise UpstreamError(f"handshake with {node.id} failed: {error}") from None
    except aiohttp.ClientConnectorError as error:
        refused = isinstance(error.os_error, ConnectionRefusedError)
        raise UpstreamError(f"connect to {node.id} failed: {error}", conclusive=refused) from None
    except TimeoutError:
        raise UpstreamError(
            f"{node.id} did not answer within {handshake_seconds}s", conclusive=True
        ) from None
    except (aiohttp.ClientError, OSError) as error:
        raise UpstreamError(f"handshake with {node.id} failed: {error}") from None
    return upstream


async def _refuse(request: web.Request, code: CloseCode, reason: str) -> web.WebSocketResponse:
    """Complete the handshake and close at once: browsers see close codes, not statuses."""
    client = web.WebSocketResponse()
    await client.prepare(request)
    await client.close(code=code, message=reason.encode())
    return client


async def relay_websocket(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
    session: aiohttp.ClientSession,
    stats: RelayStats,
) -> web.StreamResponse:
    if pool.full:
        stats.refused_pool_full += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "pool full")
    try:
        chosen = await _open_upstream(request, pool, monitor, session, stats)
    except ClientRefusedError as refusal:
        stats.refused_by_node += 1
        return _client_refusal(refusal)
    if chosen is None:
        stats.refused_no_server += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "no healthy server")
    node, upstream = chosen
    try:
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            autoping=True,
            heartbeat=20.0,
            compress=False,
            max_msg_size=0,
            decode_text=False,
        )
        try:
            await client.prepare(request)
        except (ConnectionError, RuntimeError):
            await upstream.close()
            raise
        stats.connections_opened += 1
        stats.connections_open += 1
        try:
            await _pump_both_ways(client, upstream, node, pool.lost_signal(node), monitor, stats)
        finally:
            stats.connections_open -= 1
    finally:
        pool.closed(node)
    return client


_REFUSAL_CODES = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 429: "RATE_LIMITED"}


def _client_refusal(refusal: ClientRefusedError) -> web.Response:
    code = _REFUSAL_CODES.get(refusal.status, "BAD_REQUEST")
    response = web.json_response(
        {"error": {"code": code, "message": str(refusal)}}, status=refusal.status
    )
    if refusal.retry_after:
        response.headers["Retry-After"] = refusal.retry_after
    return response


async def _open_upstream(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
    session: aiohttp.ClientSession,
    stats: RelayStats,
) -> tuple[NodeState, aiohttp.ClientWebSocketResponse[bool]] | None:
    """Connect to the strategy's node, or the next one, within the attempt budget.

    The chosen node counts the connection from the moment it is chosen (as pending until
    the handshake ends), so a burst of handshakes in flight spreads instead of all going to
    the node that looked emptiest.
    """
    settings = pool.settings
    tried: set[str] = set()
    for _ in range(settings.connect_attempts):
        node = pool.select(frozenset(tried))
        if node is None:
            return None
        tried.add(node.id)
        if not node.circuit.begin(time.time()):
            continue
        pool.reserve(node)
        try:
            upstream = await connect_upstream(
                session,
                node,
                request,
                secret=settings.ticket_secret,
                handshake_seconds=settings.connect_timeout,
            )
        except UpstreamError as error:
            pool.release(node, connected=False)
            stats.upstream_failures += 1
            log.warning("%s; trying another node", error, extra={"serverId": node.id})
            if error.conclusive:
                node.circuit.trip(time.time())
            else:
                node.circuit.failed(time.time())
            monitor.check_now(node)
            continue
        except ClientRefusedError:
            pool.release(node, connected=False)
            node.circuit.succeeded(time.time())  # the node answered: it is up
            raise
        except BaseException:  # the client left meanwhile
            pool.release(node, connected=False)
            raise
        pool.release(node, connected=True)
        node.circuit.succeeded(time.time())
        return node, upstream
    return None


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    stats: RelayStats,
    to_server: bool,
) -> tuple[WSMsgType, str]:
    """Copy frames from ``source`` to ``sink``; returns how the stream ended, and why."""
    receive = source.receive
    send = sink.send_frame
    # Counted as they pass (not when the stream ends): /metrics shows the relay's live
    # rate, which `wspool bench` divides the gateway's CPU by.
    while True:
        message = await receive()
        kind = message.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            data = message.data
            await send(data if isinstance(data, bytes) else data.encode(), kind)
            if to_server:
                stats.messages_to_server += 1
            else:
                stats.messages_to_client += 1
        elif kind in _CLOSE_TYPES:
            return kind, message.extra if isinstance(message.extra, str) else ""


async def _pump_both_ways(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse[bool],
    node: NodeState,
    lost: asyncio.Future[None],
    monitor: HealthMonitor,
    stats: RelayStats,
) -> None:
    up = asyncio.create_task(_pump(client, upstream, stats, to_server=True))
    down = asyncio.create_task(_pump(upstream, client, stats, to_server=False))
    try:
        done, _ = await asyncio.wait((up, down, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
    if up in done and not up.cancelled() and up.exception() is None:
        # The client left: tell the node with the client's own code.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await upstream.close(code=client.close_code or CloseCode.NORMAL)
        return
    if lost in done and up not in done and down not in done:
        # The node is down but its socket is open: do not wait for its closing handshake.
        stats.upstream_lost += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.close(code=CloseCode.SERVICE_RESTART, message=b"server node lost")
        await _abort(upstream)
        return
    code: int | None = upstream.close_code
    reason = b""
    if not down.cancelled() and down.exception() is None:
        kind, why = down.result()
        if kind is WSMsgType.CLOSE:
            reason = why.encode()
    if code is None or code == 1006 or upstream.exception() is not None:
        # No closing handshake from the node: it died or the network cut. Let the client
        # reconnect elsewhere, and have the node checked now rather than at the next interval.
        stats.upstream_lost += 1
        code, reason = CloseCode.SERVICE_RESTART, b"server node lost"
        monitor.check_now(node)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await client.close(code=code, message=reason)


async def _abort(upstream: aiohttp.ClientWebSocketResponse[bool]) -> None:
    """Close the connection to a hung node without waiting for an answer that never comes
    (a cancelled close drops the connection)."""
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        async with asyncio.timeout(ABORT_GRACE):
            await upstream.close(code=CloseCode.GOING_AWAY)
