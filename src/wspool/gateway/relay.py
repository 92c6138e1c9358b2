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
no node. What a client is answered with besides its node's 101 (refusals, a node's refusal)
is in ``wspool.gateway.answers``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wspool.core.protocol import CloseCode
from wspool.gateway.admission import Admission
from wspool.gateway.answers import node_refusal, refusal
from wspool.gateway.model.renewal import Handshake, carries_token
from wspool.gateway.model.upgrade import UpgradeRequest
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

if TYPE_CHECKING:
    from wspool.gateway.front import ClientConnection

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


MOVE_TIMEOUT = 20.0
"""Seconds a session has to find a new node once its turn comes; after that its client
gets its 1012."""
MOVE_HANDSHAKE = 8.0
"""Seconds a moving session waits for a node's handshake (``--connect-timeout`` for a new
client): the survivors of a node lost under load are busy taking its sessions, and a session
waiting a little longer is better off than one sent away."""


class _Session:
    """One relayed session as the relay follows it: the node it is on (None while it moves)
    and the node whose loss it watches; how it ended, counted as soon as it is known; its
    moves to other nodes."""

    __slots__ = (
        "admission",
        "client",
        "first",
        "monitor",
        "moves",
        "node",
        "pool",
        "request",
        "splice",
        "stats",
        "watched",
    )

    def __init__(
        self,
        request: UpgradeRequest,
        node: NodeState,
        pool: PoolManager,
        monitor: HealthMonitor,
        stats: RelayStats,
    ) -> None:
        self.request = request
        self.node: NodeState | None = node
        self.first = node
        self.watched: NodeState | None = None
        self.pool = pool
        self.monitor = monitor
        self.stats = stats
        self.splice: Splice | None = None
        self.moves: list[asyncio.Task[None]] = []  # a list: nearly always empty
        self.client: ClientConnection | None = None
        self.admission: Admission | None = None

    def splice_to(
        self,
        client: ClientConnection,
        link: NodeLink,
        accept: bytes,
        renewals: bool,
        admission: Admission,
    ) -> None:
        """Answer ``client`` with ``accept`` (the node's 101) and relay between it and
        ``link`` until the node's socket is closed (the last node's, when the session moves).
        ``renewals``: the client presented a token, which a seamless session follows as the
        client renews it."""
        pool = self.pool
        settings = pool.settings
        self.client, self.admission = client, admission
        splice = self.splice = Splice(
            client.transport,
            link,
            max_frame_bytes=settings.max_frame_bytes,
            send_buffer_limit=settings.send_buffer_limit,
            counts=self.stats,
            ended=self.ended,
            move=self.move if pool.config.seamless else None,
            hand_over=self.hand_over if pool.config.seamless else None,
            renewals=renewals,
            preface=accept,
        )
        self.watch(self.first)
        splice.finished.add_done_callback(self.finished)
        client.attach(splice)

    def finished(self, _: object) -> None:
        """The node's socket is closed: the session is over, but for the client's side,
        which lingers until the client closes it."""
        self.stats.connections_open -= 1
        if self.node is not None:
            self.pool.closed(self.node)
        self.unwatch()
        for task in self.moves:
            task.cancel()
        assert self.admission is not None
        assert self.client is not None
        self.admission.release_upstream()
        self.client.linger()

    def watch(self, node: NodeState) -> None:
        self.node = self.watched = node
        self.pool.watch(node, self.lost)

    def unwatch(self) -> None:
        if self.watched is not None:
            self.pool.unwatch(self.watched, self.lost)
            self.watched = None

    def lost(self) -> None:
        """The health checks marked the node down."""
        if self.splice is not None:
            self.splice.node_down()

    def ended(self, ending: Ending) -> None:
        """The splice's ``ended``: count it (and say why a move failed)."""
        stats, splice = self.stats, self.splice
        node_id = (self.node or self.first).id
        if splice is not None and splice.moving is not None:  # counted when the move began
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
            if ending is Ending.LOST and self.node is not None:
                self.monitor.check_now(self.node)

    def move(self, splice: Splice, why: Ending) -> None:
        """The splice's ``move``: leave the node, and find the session another one."""
        left = self.node
        assert left is not None
        if why is Ending.LOST:
            self.stats.upstream_lost += 1
            self.monitor.check_now(left)
        self.node = None
        self.pool.closed(left)
        self.unwatch()
        task = asyncio.create_task(_move(self, splice, left))
        self.moves.append(task)
        task.add_done_callback(self.moves.remove)

    def hand_over(self, splice: Splice) -> None:
        """The splice's ``hand_over``: make the next node ready while this one drains."""
        left = self.node
        assert left is not None
        task = asyncio.create_task(_hand_over(self, splice, left))
        self.moves.append(task)
        task.add_done_callback(self.moves.remove)


async def relay_websocket(
    client: ClientConnection,
    request: UpgradeRequest,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
    admission: Admission,
) -> None:
    """Open ``client``'s node and pass on its 101, or refuse the client; once it is open, the
    session lives on in its splice's callbacks (no task follows it)."""
    key = request.headers["Sec-WebSocket-Key"]
    if pool.full:
        stats.refused_pool_full += 1
        client.answer(refusal(key, CloseCode.TRY_AGAIN_LATER, "pool full"))
        return
    if not admission.reserve_upstream():
        stats.refused_at_capacity += 1
        client.answer(refusal(key, CloseCode.TRY_AGAIN_LATER, "gateway at capacity"))
        return
    try:
        opened = await _open(client, request, pool, monitor, stats)
    except BaseException:
        admission.release_upstream()
        raise
    if isinstance(opened, bytes):
        admission.release_upstream()
        client.answer(opened)
        return
    session, link, accept, renewals = opened
    stats.connections_opened += 1
    stats.connections_open += 1
    session.splice_to(client, link, accept, renewals, admission)


async def _open(
    client: ClientConnection,
    request: UpgradeRequest,
    pool: PoolManager,
    monitor: HealthMonitor,
    stats: RelayStats,
) -> tuple[_Session, NodeLink, bytes, bool] | bytes:
    """Open the client's node: the session, the node's link, the node's 101 to pass on (it
    leaves with the node's first frame, :meth:`_Session.splice_to`) and whether the session
    follows the client's renewals (it presented a token); or the answer that refuses the
    client."""
    handshake = client_handshake(request)
    try:
        chosen = await _open_upstream(request, handshake, pool, monitor, stats)
    except ClientRefusedError as error:
        stats.refused_by_node += 1
        return node_refusal(error)
    if chosen is None:
        stats.refused_no_server += 1
        return refusal(
            request.headers["Sec-WebSocket-Key"], CloseCode.TRY_AGAIN_LATER, "no healthy server"
        )
    node, link, accept = chosen
    if client.transport.is_closing():  # the client left meanwhile
        pool.closed(node)
        assert link.transport is not None
        link.transport.abort()
        raise ConnectionResetError("the client left during the handshake")
    session = _Session(request, node, pool, monitor, stats)
    return session, link, accept, carries_token(handshake)


async def _move(session: _Session, splice: Splice, left: NodeState) -> None:
    """Open the session's next node (any but the one it left) and continue there, presenting
    the token its client renewed on the connection, if it did."""
    began = time.monotonic()
    chosen = await _next_node(session, splice, left)
    if isinstance(chosen, str):
        splice.unmovable(chosen)
        return
    node, link = chosen
    session.watch(node)
    splice.attach(link)
    _count_move(session.stats, time.monotonic() - began)


async def _hand_over(session: _Session, splice: Splice, left: NodeState) -> None:
    """Make the session's next node ready while ``left``, draining, still serves it, and
    switch there; if that fails, the session stays on ``left`` until its drain ends."""
    began = time.monotonic()
    chosen = await _next_node(session, splice, left)
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
                session.pool.closed(node)
        if outcome is None:
            session.unwatch()
            session.pool.closed(left)
            session.watch(node)
            _count_move(session.stats, time.monotonic() - began)
            session.stats.sessions_handed_over += 1
            return
    log.info(
        "could not hand a session over (%s); its node serves it to the end of its drain",
        outcome,
        extra={"serverId": left.id},
    )


async def _next_node(
    session: _Session, splice: Splice, left: NodeState
) -> tuple[NodeState, NodeLink] | str:
    """A link to a session's next node (any but the one it leaves), presenting the token its
    client renewed on the connection if it did, or why there is none."""
    request, pool = session.request, session.pool
    try:
        async with pool.moves, asyncio.timeout(MOVE_TIMEOUT):
            chosen = await _open_upstream(
                request,
                client_handshake(request, splice.renewed_token),
                pool,
                session.monitor,
                session.stats,
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


async def _open_upstream(
    request: UpgradeRequest,
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
