"""The load balancer path: ``ws://gateway/ws`` picked, connected and relayed to a node.

The upstream connection is opened *before* the client's handshake is answered, so a node
that refuses or stalls is retried on another one within ``connect_attempts`` and the
client never sees the failure. Then frames are relayed both ways untouched (text stays
undecoded bytes) until either side closes, and the close code travels to the other side.
An upstream that vanishes without a closing handshake gets its clients a 1012 (service
restart: reconnect) and its node an immediate health check; so do the clients of a node
that the health checks mark down while its connections stay open (hung, frozen).

The node's limits hold here too, so that one client cannot spend the gateway's memory: a
client frame over ``--max-frame-bytes`` closes the client with 1009 as soon as its header
announces it, and a client that lets more than ``--send-buffer-limit`` bytes pile up is
closed with 1008 ``slow consumer`` (behind what was queued, as a node does), which blames
no node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from wspool.core.protocol import CloseCode
from wspool.gateway.admission import Admission, connection_closed
from wspool.gateway.frames import ClientFrames
from wspool.gateway.monitor import HealthMonitor
from wspool.gateway.pool import NodeState, PoolManager
from wspool.gateway.upstream import ClientRefusedError, UpstreamError, connect_upstream
from wspool.tasks import cancel_and_wait

__all__ = ["RelayStats", "relay_websocket"]

log = logging.getLogger(__name__)

ABORT_GRACE = 0.1
"""Seconds a hung node's connection gets to answer our close before it is dropped."""

_CLOSE_TYPES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
_NEVER_DRAIN = 2**62
"""aiohttp's writer waits for the socket to drain every this many bytes: never, here. The
send-buffer limit, checked after each frame, bounds what a client's socket holds instead,
and a relay blocked on a client that stopped reading could not see its node's close."""


@dataclass
class RelayStats:
    connections_opened: int = 0
    connections_open: int = 0
    upstream_failures: int = 0
    refused_no_server: int = 0
    refused_pool_full: int = 0
    refused_by_node: int = 0
    refused_at_capacity: int = 0
    upstream_lost: int = 0
    slow_consumers: int = 0
    messages_to_server: int = 0
    messages_to_client: int = 0


class SlowConsumerError(Exception):
    """The client let more than the send-buffer limit pile up: closed with 1008."""


class _ClientSocket(web.WebSocketResponse):
    """aiohttp's server WebSocket, ending its TCP connection as a node does.

    aiohttp closes the socket right after the closing handshake, even when it refused a
    frame whose rest is still arriving; the kernel then answers with a reset, which can
    destroy the close frame (1009) before the client has read it. Here the gateway stops
    sending (FIN), lets what still arrives be discarded, and waits for the client to close,
    at most ``LINGER`` seconds (:func:`_linger` keeps the handler alive that long).
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


async def _linger(request: web.Request, client: web.WebSocketResponse) -> None:
    """Return only once the client is gone: aiohttp ends the connection when we return."""
    if client.closed:
        await connection_closed(request, LINGER)


def _client_socket(**options: Any) -> _ClientSocket:
    return _ClientSocket(compress=False, writer_limit=_NEVER_DRAIN, **options)


async def _refuse(request: web.Request, code: CloseCode, reason: str) -> web.WebSocketResponse:
    """Complete the handshake and close at once: browsers see close codes, not statuses."""
    client = _client_socket()
    await client.prepare(request)
    await client.close(code=code, message=reason.encode())
    await _linger(request, client)
    return client


async def relay_websocket(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
    session: aiohttp.ClientSession,
    stats: RelayStats,
    admission: Admission,
) -> web.StreamResponse:
    if pool.full:
        stats.refused_pool_full += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "pool full")
    if not admission.reserve_upstream():
        stats.refused_at_capacity += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "gateway at capacity")
    try:
        response = await _relay(request, pool, monitor, session, stats)
    finally:
        admission.release_upstream()
    if isinstance(response, web.WebSocketResponse):
        await _linger(request, response)
    return response


async def _relay(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
    session: aiohttp.ClientSession,
    stats: RelayStats,
) -> web.StreamResponse:
    try:
        chosen = await _open_upstream(request, pool, monitor, session, stats)
    except ClientRefusedError as refusal:
        stats.refused_by_node += 1
        return _client_refusal(refusal)
    if chosen is None:
        stats.refused_no_server += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "no healthy server")
    node, upstream = chosen
    settings = pool.settings
    try:
        client = _client_socket(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            autoping=True,
            heartbeat=20.0,
            # aiohttp refuses a frame of exactly max_msg_size; a node takes one of its limit.
            max_msg_size=settings.max_frame_bytes + 1,
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
            await _pump_both_ways(
                request,
                client,
                upstream,
                node,
                pool.lost_signal(node),
                monitor,
                stats,
                settings.send_buffer_limit,
            )
        finally:
            stats.connections_open -= 1
    finally:
        pool.closed(node)
    return client


def _client_refusal(refusal: ClientRefusedError) -> web.Response:
    """The node's refusal, as the node wrote it: status, body and the headers that explain it."""
    return web.Response(status=refusal.status, body=refusal.body, headers=refusal.headers)


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
) -> tuple[WSMsgType, str]:
    """Copy frames from the client to the node; returns how the stream ended, and why.

    Sending waits whenever the node's socket is full: a client cannot queue more than
    aiohttp's writer limit at the gateway, only slow itself down.
    """
    receive = source.receive
    send = sink.send_frame
    # Counted as they pass (not when the stream ends): /metrics shows the relay's live
    # rate, which `wspool bench` divides the gateway's CPU by.
    while True:
        message = await receive()
        kind = message.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            await send(message.data, kind)
            stats.messages_to_server += 1
        elif kind in _CLOSE_TYPES:
            return kind, message.extra if isinstance(message.extra, str) else ""


async def _pump_to_client(
    upstream: aiohttp.ClientWebSocketResponse[bool],
    frames: ClientFrames,
    stats: RelayStats,
    limit: int,
) -> tuple[WSMsgType, str]:
    """Copy frames from the node to the client, a read's worth in one write.

    :class:`SlowConsumerError` is raised when the client's socket holds more than ``limit``
    unsent bytes after a frame: the node's rule for its own clients, applied to the
    gateway's (the node sees the gateway read promptly, so it cannot). Whatever ends the
    stream, the frames queued so far leave first.
    """
    receive = upstream.receive
    write = frames.write
    try:
        while True:
            message = await receive()
            kind = message.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                write(message.data, kind)
                stats.messages_to_client += 1
                if frames.buffered > limit:
                    raise SlowConsumerError()
            elif kind in _CLOSE_TYPES:
                return kind, message.extra if isinstance(message.extra, str) else ""
    finally:
        frames.flush()


async def _pump_both_ways(
    request: web.Request,
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse[bool],
    node: NodeState,
    lost: asyncio.Future[None],
    monitor: HealthMonitor,
    stats: RelayStats,
    limit: int,
) -> None:
    transport = request.transport
    if transport is None:  # the client left during the handshake
        await upstream.close()
        return
    up = asyncio.create_task(_pump(client, upstream, stats))
    down = asyncio.create_task(_pump_to_client(upstream, ClientFrames(transport), stats, limit))
    try:
        done, _ = await asyncio.wait((up, down, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(up, down)
    if up in done and not up.cancelled() and up.exception() is None:
        # The client left, or broke a limit: tell the node with the client's code, or ours.
        error = client.exception()
        ours = error.code if isinstance(error, aiohttp.WebSocketError) else client.close_code
        with contextlib.suppress(ConnectionError, RuntimeError):
            await upstream.close(code=ours or CloseCode.NORMAL)
        return
    if down in done and isinstance(down.exception(), SlowConsumerError):
        stats.slow_consumers += 1
        log.warning("closing slow consumer", extra={"serverId": node.id})
        with contextlib.suppress(ConnectionError, RuntimeError):
            await upstream.close(code=CloseCode.POLICY_VIOLATION, message=b"slow consumer")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.close(code=CloseCode.POLICY_VIOLATION, message=b"slow consumer")
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
