"""The load balancer path: ``ws://gateway/ws`` picked, connected and relayed to a node.

The upstream connection is opened *before* the client's handshake is answered, so a node
that refuses or stalls is retried on another one within ``connect_attempts`` and the
client never sees the failure. The node's handshake answers the client's, and from then on
the bytes are spliced both ways (``wspool.gateway.splice``): frames pass as they were sent,
closing frames with their codes included.
An upstream that vanishes without a closing handshake gets its node an immediate health
check. Its clients, the clients of a node that the health checks mark down while its
connections stay open (hung, frozen) and those of a node that drains are moved to another
node with their subscriptions and the token they renewed on the connection, their WebSockets
open (the pool's ``seamless``, on unless the pool turns it off: ``wspool.gateway.splice``); a
draining node's are handed over, the next node made ready before the old one is left
(``wspool.gateway.handover``). A client that cannot be moved, or every client when
``seamless`` is off, gets a 1012 (service restart: reconnect).

The node's limits hold here too, so that one client cannot spend the gateway's memory: a
client frame over ``--max-frame-bytes`` closes the client with 1009 as soon as its header
announces it, and a client that lets more than ``--send-buffer-limit`` bytes pile up is
closed with 1008 ``slow consumer`` (behind what was queued, as a node does), which blames
no node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from wspool.core.protocol import CloseCode
from wspool.gateway.admission import Admission, connection_closed
from wspool.gateway.model.renewal import Handshake, carries_token
from wspool.gateway.monitor import HealthMonitor
from wspool.gateway.pool import NodeState, PoolManager
from wspool.gateway.splice import Ending, Splice
from wspool.gateway.upstream import (
    ClientRefusedError,
    NodeLink,
    UpstreamError,
    client_handshake,
    connect_upstream,
)
from wspool.tasks import cancel_and_wait

__all__ = ["RelayStats", "relay_websocket"]

log = logging.getLogger(__name__)


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
    sessions_moved: int = 0
    sessions_handed_over: int = 0
    """Those of the moved sessions that a draining node handed over."""
    sessions_not_moved: int = 0
    move_seconds: float = 0.0
    """Time the moved sessions took to reach their new node, summed."""
    longest_move: float = 0.0


class _ClientSocket(web.WebSocketResponse):
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
MOVE_TIMEOUT = 20.0
"""Seconds a session has to find a new node once its turn comes; after that its client
gets its 1012."""
MOVE_HANDSHAKE = 8.0
"""Seconds a moving session waits for a node's handshake (``--connect-timeout`` for a new
client): the survivors of a node lost under load are busy taking its sessions, and a session
waiting a little longer is better off than one sent away."""


@dataclass
class _Placement:
    """The node a relayed session is on (None while it moves), and the signal of its loss
    that the session waits on."""

    node: NodeState | None
    lost: asyncio.Future[None] | None = None

    def watch(self, node: NodeState, pool: PoolManager, on_lost: Callable[[object], None]) -> None:
        self.node = node
        self.lost = pool.lost_signal(node)
        self.lost.add_done_callback(on_lost)

    def unwatch(self, on_lost: Callable[[object], None]) -> None:
        if self.lost is not None:
            self.lost.remove_done_callback(on_lost)
            self.lost = None


async def _refuse(request: web.Request, code: CloseCode, reason: str) -> web.WebSocketResponse:
    """Complete the handshake and close at once: browsers see close codes, not statuses."""
    client = _ClientSocket(compress=False)
    await client.prepare(request)
    await client.close(code=code, message=reason.encode())
    await connection_closed(request, LINGER)  # aiohttp ends the connection when we return
    return client


async def relay_websocket(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
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
        return await _relay(request, pool, monitor, stats)
    finally:
        admission.release_upstream()


async def _relay(
    request: web.Request,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
) -> web.StreamResponse:
    handshake = client_handshake(request)
    renewals = carries_token(handshake)
    try:
        chosen = await _open_upstream(request, handshake, pool, monitor, stats)
    except ClientRefusedError as refusal:
        stats.refused_by_node += 1
        return _client_refusal(refusal)
    del handshake  # not held for the connection's life
    if chosen is None:
        stats.refused_no_server += 1
        return await _refuse(request, CloseCode.TRY_AGAIN_LATER, "no healthy server")
    node, link, accept = chosen
    placement = _Placement(node)
    try:
        transport = request.transport
        if transport is None or transport.is_closing():  # the client left meanwhile
            assert link.transport is not None
            link.transport.abort()
            raise ConnectionResetError("the client left during the handshake")
        transport.write(accept)
        stats.connections_opened += 1
        stats.connections_open += 1
        try:
            await _splice(request, transport, link, placement, pool, monitor, stats, renewals)
        finally:
            stats.connections_open -= 1
    finally:
        if placement.node is not None:
            pool.closed(placement.node)
    await connection_closed(request, LINGER)
    return _Upgraded()


async def _splice(
    request: web.Request,
    transport: asyncio.Transport,
    link: NodeLink,
    placement: _Placement,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
    renewals: bool,
) -> None:
    """Relay until the node's socket is closed (the last node's, when the session moves);
    count how it ended, as soon as it is known. ``renewals``: the client presented a token,
    which a seamless session follows as the client renews it."""
    assert placement.node is not None
    first = placement.node

    def ended(ending: Ending) -> None:
        node_id = placement.node.id if placement.node is not None else first.id
        if splice.moving is not None:  # its loss was counted when the move began
            stats.sessions_not_moved += 1
            log.warning(
                "could not move a session (%s); its client reconnects",
                splice.unmoved,
                extra={"serverId": node_id},
            )
            return
        if ending is Ending.SLOW:
            stats.slow_consumers += 1
            log.warning("closing slow consumer", extra={"serverId": node_id})
        elif ending is Ending.LOST or ending is Ending.DOWN:
            # No closing handshake from the node: it died, the network cut, or it hangs.
            # The client reconnects elsewhere, and the node is checked now.
            stats.upstream_lost += 1
            if ending is Ending.LOST and placement.node is not None:
                monitor.check_now(placement.node)

    def move(splice: Splice, why: Ending) -> None:
        left = placement.node
        assert left is not None
        if why is Ending.LOST:
            stats.upstream_lost += 1
            monitor.check_now(left)
        placement.node = None
        pool.closed(left)
        placement.unwatch(on_lost)
        task = asyncio.create_task(
            _move(splice, left, request, placement, pool, monitor, stats, on_lost)
        )
        moves.add(task)
        task.add_done_callback(moves.discard)

    def hand_over(splice: Splice) -> None:
        left = placement.node
        assert left is not None
        task = asyncio.create_task(
            _hand_over(splice, left, request, placement, pool, monitor, stats, on_lost)
        )
        moves.add(task)
        task.add_done_callback(moves.discard)

    def on_lost(_: object) -> None:
        splice.node_down()

    settings = pool.settings
    splice = Splice(
        transport,
        link,
        max_frame_bytes=settings.max_frame_bytes,
        send_buffer_limit=settings.send_buffer_limit,
        counts=stats,
        ended=ended,
        move=move if pool.config.seamless else None,
        hand_over=hand_over if pool.config.seamless else None,
        renewals=renewals,
    )
    moves: set[asyncio.Task[None]] = set()
    placement.watch(first, pool, on_lost)
    # aiohttp hands each read after the upgrade to a payload parser: ours splices it.
    request.protocol.set_parser(splice.reader)  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    try:
        await splice.finished
    finally:
        placement.unwatch(on_lost)
        await cancel_and_wait(*moves)
        if splice.finished.cancelled():  # the gateway is stopping
            transport.abort()
            splice.abort_node()


async def _move(
    splice: Splice,
    left: NodeState,
    request: web.Request,
    placement: _Placement,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
    on_lost: Callable[[object], None],
) -> None:
    """Open the session's next node (any but the one it left) and continue there, presenting
    the token its client renewed on the connection, if it did."""
    began = time.monotonic()
    chosen = await _next_node(request, splice.renewed_token, left, pool, monitor, stats)
    if isinstance(chosen, str):
        splice.unmovable(chosen)
        return
    node, link = chosen
    placement.watch(node, pool, on_lost)
    splice.attach(link)
    _count_move(stats, time.monotonic() - began)


async def _hand_over(
    splice: Splice,
    left: NodeState,
    request: web.Request,
    placement: _Placement,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
    on_lost: Callable[[object], None],
) -> None:
    """Make the session's next node ready while ``left``, draining, still serves it, and
    switch there; if that fails, the session stays on ``left`` until its drain ends."""
    began = time.monotonic()
    chosen = await _next_node(request, splice.renewed_token, left, pool, monitor, stats)
    if isinstance(chosen, str):
        splice.hand_over_failed(chosen)
        outcome: str | None = chosen
    else:
        node, link = chosen
        outcome = "the session ended"
        try:
            outcome = await splice.hand_over_to(link)
        finally:
            if outcome is not None:
                pool.closed(node)
        if outcome is None:
            placement.unwatch(on_lost)
            pool.closed(left)
            placement.watch(node, pool, on_lost)
            _count_move(stats, time.monotonic() - began)
            stats.sessions_handed_over += 1
            return
    log.info(
        "could not hand a session over (%s); its node serves it to the end of its drain",
        outcome,
        extra={"serverId": left.id},
    )


async def _next_node(
    request: web.Request,
    renewed_token: str | None,
    left: NodeState,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
) -> tuple[NodeState, NodeLink] | str:
    """A link to a session's next node (any but the one it leaves), presenting the token its
    client renewed on the connection if it did, or why there is none."""
    try:
        async with pool.moves, asyncio.timeout(MOVE_TIMEOUT):
            chosen = await _open_upstream(
                request,
                client_handshake(request, renewed_token),
                pool,
                monitor,
                stats,
                leaving=left.id,
                handshake_seconds=MOVE_HANDSHAKE,
            )
    except ClientRefusedError as refusal:  # its token expired meanwhile, say
        return f"the node refused the client with {refusal.status}"
    except TimeoutError:
        chosen = None
    if chosen is None:
        return "no node could take it"
    node, link, _ = chosen
    return node, link


def _count_move(stats: RelayStats, took: float) -> None:
    stats.sessions_moved += 1
    stats.move_seconds += took
    stats.longest_move = max(stats.longest_move, took)


class _Upgraded(web.StreamResponse):
    """What the handler of a relayed connection returns: its 101 and everything after it
    were written by the relay, so aiohttp has nothing left to send."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _client_refusal(refusal: ClientRefusedError) -> web.Response:
    """The node's refusal, as the node wrote it: status, body and the headers that explain it."""
    return web.Response(status=refusal.status, body=refusal.body, headers=refusal.headers)


async def _open_upstream(
    request: web.Request,
    handshake: Handshake,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
    *,
    leaving: str | None = None,
    handshake_seconds: float | None = None,
) -> tuple[NodeState, NodeLink, bytes] | None:
    """Connect to the strategy's node, or the next one, within the attempt budget, with the
    client's credentials ``handshake`` (never to the node a session is ``leaving``; each
    handshake within ``handshake_seconds``, ``--connect-timeout`` unless given).

    The chosen node counts the connection from the moment it is chosen (as pending until
    the handshake ends), so a burst of handshakes in flight spreads instead of all going to
    the node that looked emptiest.
    """
    settings = pool.settings
    tried: set[str] = set() if leaving is None else {leaving}
    for _ in range(settings.connect_attempts):
        node = pool.select(frozenset(tried))
        if node is None:
            return None
        tried.add(node.id)
        if not node.circuit.begin(time.time()):
            continue
        pool.reserve(node)
        try:
            link, accept = await connect_upstream(
                node,
                request,
                handshake,
                secret=settings.ticket_secret,
                handshake_seconds=handshake_seconds or settings.connect_timeout,
                handover=pool.config.seamless,
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
        return node, link, accept
    return None
