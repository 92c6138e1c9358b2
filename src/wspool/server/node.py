"""A server node: accepts WebSocket clients, runs the wire protocol, fans out channels.

The node's parts, each in its own module: the :class:`ChannelRouter` (local subscribers,
delivery), the :class:`PublishBatcher` (client messages out to the engine), the
:class:`StateWriter` (connection records into the store), the :class:`Keepalive` (pings
to every connection), and plain HTTP for ``/health`` and ``/metrics`` on the same port.
This module wires them to websockets' server and owns the node's life: start, heartbeat,
drain, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from wspool.core import control
from wspool.core.auth import CLIENT_ID_RULE, is_client_id
from wspool.core.config import ServerSettings
from wspool.core.history import StreamPosition
from wspool.core.protocol import (
    HANDOVER_NOTICE,
    ClientMessage,
    CloseCode,
    ErrorCode,
    MessageType,
    ProtocolError,
    encode_connected,
    encode_data,
    encode_error,
    encode_pong,
    encode_subscribed,
    encode_unsubscribed,
    parse_client_frame,
)
from wspool.core.records import NodeInfo
from wspool.server.connection import NodeConnection
from wspool.server.guard import Guard, select_subprotocol
from wspool.server.http import (
    WEBSOCKET_PATHS,
    json_response,
    metrics_response,
    refusal,
    text_response,
)
from wspool.server.keepalive import Keepalive
from wspool.server.model.drain import HANDOVER_GRACE, drain_schedule
from wspool.server.publisher import PublishBatcher
from wspool.server.router import ChannelRouter
from wspool.server.session import Session
from wspool.server.statewriter import StateWriter
from wspool.server.stats import NodeStats, metrics_registry
from wspool.server.ticketgate import TicketGate
from wspool.state.engine import (
    AddressLimits,
    ConnectionStore,
    EngineUnavailableError,
    MessageBus,
    NodeRegistry,
)
from wspool.tasks import cancel_and_wait

__all__ = ["NodeEngine", "ServerNode", "close_promptly"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""Seconds a closing handshake may take before the connection is cut."""


class NodeEngine(MessageBus, ConnectionStore, NodeRegistry, AddressLimits, Protocol):
    """What a node needs of the state engine: the bus for its channels and control channel,
    its connection records, the registry it beats in, and the limits per client address."""


class ServerNode:
    """One member of the farm, bound to a state engine."""

    def __init__(self, settings: ServerSettings, engine: NodeEngine) -> None:
        self.settings = settings
        self.id = settings.id
        self.engine = engine
        self.stats = NodeStats()
        self.sessions: dict[str, Session] = {}
        self.draining = False
        self.router = ChannelRouter(
            engine,
            self.stats,
            settings.send_buffer_limit,
            self._close_slow_consumer,
            self._close_interrupted,
        )
        self.guard = Guard(settings, engine, self._close)
        self._keepalive = Keepalive(
            self.sessions, settings.ping_interval, settings.ping_timeout, self._close
        )
        self._publisher = PublishBatcher(engine, self.stats, settings.publish_delay)
        self._writer = StateWriter(
            engine, self.sessions, settings.activity_flush_interval, settings.session_ttl / 3
        )
        self.metrics = metrics_registry(
            self.stats,
            {
                "wspool_connections": ("open WebSocket connections", lambda: len(self.sessions)),
                "wspool_channels": (
                    "channels with local subscribers",
                    lambda: self.router.channel_count,
                ),
                "wspool_redis_up": (
                    "1 when the store is reachable",
                    lambda: float(self.engine.available),
                ),
                "wspool_draining": ("1 while the node drains", lambda: float(self.draining)),
            },
        )
        self._server: Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._drainer: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()
        """Set once :meth:`stop` has run: by a shutdown, or at the end of a drain the pool
        manager asked for."""
        self._started_at = 0.0
        self._degraded_since = 0.0
        self._control = control.channel(self.id)
        self._missed_commands = False
        """Whether close commands may have been missed (frozen, cut off) since tombstones
        were last read; the heartbeat reads them then."""
        self._tickets = (
            TicketGate(settings.ticket_secret, self.id, engine) if settings.ticket_secret else None
        )
        self.url = settings.advertise_url

    # lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "node not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Connect the engine, clear what a previous life of this id left, and listen."""
        self._started_at = time.time()
        await self.engine.start(self._on_message, self._on_engine_status)
        try:
            await self.engine.purge_node(self.id)
            await self.engine.subscribe(self._control)
        except EngineUnavailableError as error:
            log.warning("store unreachable at start: %s", error, extra={"serverId": self.id})
        self._writer.start()
        self._publisher.start()
        self.guard.start()
        self._keepalive.start()
        s = self.settings
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._process_request,
            select_subprotocol=select_subprotocol,
            create_connection=NodeConnection,
            compression=None,  # per-message deflate costs CPU and memory per connection
            max_size=s.max_frame_bytes,
            max_queue=16,
            ping_interval=None,  # one keepalive for the node, not a task per connection
            close_timeout=CLOSE_TIMEOUT,
        )
        if not self.url:
            host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
            self.url = f"ws://{host}:{self.port}"
        with contextlib.suppress(EngineUnavailableError):  # the heartbeat keeps trying
            await self.engine.register_node(self.node_info(), self.settings.node_ttl)
        self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
        log.info("server node listening on %s", self.url, extra={"serverId": self.id})

    async def drain(self) -> None:
        """Refuse new clients, then close every client with 1012, spread over the drain window;
        a client whose gateway moves it gets the handover notice instead, and the 1012 only
        if it is still here :data:`HANDOVER_GRACE` seconds after the window."""
        if self.draining or self._server is None:
            return
        self.draining = True
        log.info(
            "draining %d connections over %.1fs",
            len(self.sessions),
            self.settings.drain_window,
            extra={"serverId": self.id},
        )
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.register_node(self.node_info(), self.settings.node_ttl)
        # It listens on, for its /health (503 draining: the gateways keep it as draining, not
        # down, while it serves the sessions it hands over); new clients get 503.
        sessions = list(self.sessions.values())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for session, offset in zip(
            sessions, drain_schedule(len(sessions), self.settings.drain_window), strict=True
        ):
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            if session.handover:
                hand_over(session.websocket)
            else:
                self._spawn(close_promptly(session.websocket, *_DRAINING))
        handed = [s for s in sessions if s.handover]
        if handed:
            await self._handed_over(handed, HANDOVER_GRACE)
        await self.stop()

    async def _handed_over(self, sessions: list[Session], grace: float) -> None:
        """Wait up to ``grace`` seconds for the gateways to move ``sessions`` away; close
        the ones left with 1012."""
        waits = [asyncio.create_task(s.websocket.wait_closed()) for s in sessions]
        await asyncio.wait(waits, timeout=grace)
        await cancel_and_wait(*waits)
        for session in sessions:
            self._spawn(close_promptly(session.websocket, *_DRAINING))

    async def stop(self) -> None:
        """Close every connection (1001 unless already draining), flush state, deregister;
        once."""
        if self.stopped.is_set():
            return
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None
        await cancel_and_wait(self._heartbeat)
        self._heartbeat = None
        await self._keepalive.stop()
        await self.guard.stop()
        await self.router.stop()
        await self._publisher.stop()
        await self._writer.stop()
        await cancel_and_wait(*self._background)
        try:
            await self.engine.purge_node(self.id)
        except EngineUnavailableError:
            log.warning(
                "could not deregister; survivors will sweep this node", extra={"serverId": self.id}
            )
        log.info("server node stopped", extra={"serverId": self.id})
        self.stopped.set()

    def node_info(self) -> NodeInfo:
        return NodeInfo(
            id=self.id,
            url=self.url,
            weight=self.settings.weight,
            active_connections=len(self.sessions),
            draining=self.draining,
            redis_ok=self.engine.available,
            started_at=self._started_at,
        )

    async def _beat(self) -> None:
        failing = False
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            # A beat far behind its time means the node was frozen (SIGSTOP, a stalled VM):
            # close commands sent meanwhile may be lost, so the tombstones are read instead.
            if loop.time() - last > 2 * self.settings.heartbeat_interval + 1.0:
                self._missed_commands = True
            last = loop.time()
            try:
                if await self.engine.register_node(self.node_info(), self.settings.node_ttl):
                    # Survivors took this node for dead (it was frozen, or cut off for longer
                    # than its TTL) and swept its records: write them again.
                    log.warning(
                        "registration had lapsed; restoring %d connection records",
                        len(self.sessions),
                        extra={"serverId": self.id},
                    )
                    self._writer.resync()
                    self._missed_commands = True
                if self._missed_commands:
                    await self._close_tombstoned()
                    self._missed_commands = False
                for dead in await self.engine.sweep_dead_nodes():
                    log.info("swept the state of dead node %s", dead, extra={"serverId": self.id})
                failing = False
            except EngineUnavailableError as error:
                if not failing:
                    log.warning("heartbeat failed: %s", error, extra={"serverId": self.id})
                failing = True
                self._missed_commands = True
            await asyncio.sleep(self.settings.heartbeat_interval)

    def _on_engine_status(self, available: bool) -> None:
        if available:
            if self._degraded_since:
                log.info(
                    "store reachable again after %.1fs; resyncing connection state",
                    time.time() - self._degraded_since,
                    extra={"serverId": self.id},
                )
            self._degraded_since = 0.0
            self._missed_commands = True  # the pub/sub link was down: read the tombstones
            self._writer.resync()
            self.router.link_restored()
        else:
            log.warning("store unreachable; node degraded", extra={"serverId": self.id})
            self._degraded_since = time.time()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # HTTP --------------------------------------------------------------------------------

    def health(self) -> tuple[HTTPStatus, dict[str, Any]]:
        """The node's ``/health``: 200 when serving (even degraded), 503 while draining."""
        if self.draining:
            status = "draining"
        elif self.engine.available:
            status = "ok"
        else:
            status = "degraded"
        return (
            HTTPStatus.SERVICE_UNAVAILABLE if self.draining else HTTPStatus.OK,
            {
                "status": status,
                "serverId": self.id,
                "url": self.url,
                "connections": len(self.sessions),
                "channels": self.router.channel_count,
                "draining": self.draining,
                "store": "up" if self.engine.available else "down",
                "uptimeSeconds": round(time.time() - self._started_at, 3),
                "connectionsOpened": self.stats.connections_opened,
                "messagesIn": self.stats.messages_received,
                "messagesOut": self.stats.deliveries,
                "errors": sum(self.stats.errors.values()),
            },
        )

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            return json_response(connection, *self.health())
        if path == "/metrics":
            return metrics_response(connection, self.metrics)
        if path not in WEBSOCKET_PATHS:
            return text_response(connection, HTTPStatus.NOT_FOUND, "not found")
        if self.draining:
            return text_response(connection, HTTPStatus.SERVICE_UNAVAILABLE, "server draining")
        if self._tickets is not None:
            refused = self._tickets.check(connection, request)
            if refused is not None:
                return refused
        asked = _asked_client_id(request.path)
        if asked is not None and not is_client_id(asked):
            return refusal(
                connection,
                HTTPStatus.BAD_REQUEST,
                ErrorCode.BAD_REQUEST,
                f"clientId must be {CLIENT_ID_RULE}",
            )
        refused = await self.guard.check_handshake(connection, request)
        if refused is not None or self._tickets is None:
            return refused
        # Last, once the client is known: a ticket is used up only by a connection it opens.
        return await self._tickets.use(connection, self.guard.token_client(connection) or asked)

    # commands from the pool manager ------------------------------------------------------

    def _on_message(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        if channel == self._control:
            for frame in frames:
                self._on_command(frame)
        else:
            self.router.deliver(channel, start, frames)

    def _on_command(self, frame: str) -> None:
        try:
            command = control.decode(frame)
        except control.ControlError as error:
            log.warning(
                "ignoring malformed command %r: %s", frame[:200], error, extra={"serverId": self.id}
            )
            return
        match command:
            case control.DrainNode():
                if self._drainer is None:
                    log.info("draining on request of the pool manager", extra={"serverId": self.id})
                    self._drainer = asyncio.create_task(self.drain(), name="drain")
            case control.CloseConnection(connection_id):
                session = self.sessions.get(connection_id)
                if session is not None:
                    self._close_by_manager(session)

    async def _close_tombstoned(self) -> None:
        """Close the connections the pool manager closed while this node did not listen."""
        for connection_id in await self.engine.closed_connections(list(self.sessions)):
            session = self.sessions.get(connection_id)
            if session is not None:
                self._close_by_manager(session)

    def _close_by_manager(self, session: Session) -> None:
        if session.closing:
            return
        session.closing = True
        log.info(
            "closing connection on request of the pool manager",
            extra={"connectionId": session.id, "serverId": self.id},
        )
        self._spawn(
            close_promptly(session.websocket, CloseCode.NORMAL, "closed by the pool manager")
        )

    # WebSocket ---------------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        now = time.time()
        ticket = self._tickets.take(websocket) if self._tickets is not None else None
        # websockets draws a random UUID for every connection (Connection.id): it is ours too.
        connection_id = ticket.connection_id if ticket else websocket.id.hex
        assert websocket.request is not None
        claims = await self.guard.admit(
            websocket,
            connection_id,
            (ticket and ticket.client_id)
            or _asked_client_id(websocket.request.path)
            or connection_id,
        )
        if claims is None:
            return
        _forget_handshake(websocket)
        session = Session(
            id=connection_id,
            server_id=self.id,
            client_id=claims.client_id,
            websocket=websocket,
            created_at=now,
            last_activity=now,
            handover=ticket is not None and ticket.handover,
        )
        self.sessions[connection_id] = session
        self.stats.connections_opened += 1
        self._writer.save(session)
        self.guard.attach(session)
        try:
            await websocket.send(encode_connected(connection_id, self.id, session.client_id))
            await self._serve(session)
        except ConnectionClosed:
            pass
        finally:
            for channel in session.channels:
                self.router.remove(channel, session)
            del self.sessions[connection_id]
            self._writer.remove(session)
            await self.guard.release(session)

    async def _serve(self, session: Session) -> None:
        websocket = session.websocket
        max_bytes = self.settings.max_message_bytes
        stats = self.stats
        async for frame in websocket:
            session.last_activity = time.time()
            stats.messages_received += 1
            try:
                self.guard.meter(session)
                message = parse_client_frame(frame, max_bytes)
                answer = self.guard.screen(session, message)
                if answer is None:
                    await self._dispatch(session, message)
                else:
                    for channel in answer.revoked:
                        self._leave(session, channel)
                    await websocket.send(answer.frame)
            except ProtocolError as error:
                stats.errors[error.code] += 1
                await websocket.send(encode_error(error.code, error.message, error.message_id))

    async def _dispatch(self, session: Session, message: ClientMessage) -> None:
        websocket = session.websocket
        message_id = message.message_id
        match message.type:
            case MessageType.DATA:
                assert message.channel is not None
                if not self.engine.available:
                    raise ProtocolError(
                        ErrorCode.INTERNAL,
                        "message not delivered: message bus unavailable",
                        message_id,
                    )
                frame = encode_data(message.channel, message.payload, message_id)
                await self._publisher.publish(message.channel, frame, websocket, message_id)
            case MessageType.PING:
                await websocket.send(encode_pong(message_id))
            case MessageType.SUBSCRIBE:
                assert message.channel is not None
                if message.channel in session.channels:
                    await websocket.send(encode_subscribed(message.channel, message_id))
                    return
                try:
                    await self.router.subscribe(message.channel, session, message_id, message.since)
                except EngineUnavailableError:
                    raise ProtocolError(
                        ErrorCode.INTERNAL,
                        "could not subscribe: message bus unavailable",
                        message_id,
                    ) from None
                session.channels.add(message.channel)
                self._writer.update(session)
            case MessageType.UNSUBSCRIBE:
                assert message.channel is not None
                if message.channel not in session.channels:
                    raise ProtocolError(
                        ErrorCode.NOT_SUBSCRIBED,
                        f"not subscribed to {message.channel}",
                        message_id,
                    )
                self._leave(session, message.channel)
                await websocket.send(encode_unsubscribed(message.channel, message_id))

    def _leave(self, session: Session, channel: str) -> None:
        session.channels.discard(channel)
        self.router.remove(channel, session)
        self._writer.update(session)

    def _close(self, session: Session, code: CloseCode, reason: str) -> None:
        session.closing = True
        self._spawn(close_promptly(session.websocket, code, reason))

    def _close_slow_consumer(self, session: Session) -> None:
        if self._close_once(session, CloseCode.POLICY_VIOLATION, "slow consumer"):
            self.stats.slow_consumers += 1

    def _close_interrupted(self, session: Session) -> None:
        """A channel of ``session`` lost messages the node cannot replay: closed with 1012,
        the client resumes with ``since`` and learns ``recovered: false``."""
        if self._close_once(session, CloseCode.SERVICE_RESTART, "subscription interrupted"):
            self.stats.interrupted += 1

    def _close_once(self, session: Session, code: CloseCode, reason: str) -> bool:
        """Close a subscriber the router gives up on; False if it is closing already."""
        if session.websocket.protocol.state is not State.OPEN or session.closing:
            return False
        log.warning(
            "closing subscriber: %s",
            reason,
            extra={"connectionId": session.id, "serverId": self.id},
        )
        self._close(session, code, reason)
        return True


_DRAINING = (CloseCode.SERVICE_RESTART, "server draining")


def hand_over(websocket: ServerConnection) -> None:
    """Tell a session's gateway to move it to another node (the notice, a ping, is the
    gateway's: docs/gateway.md "Handover"); the session is served until the gateway closes it."""
    if websocket.protocol.state is State.OPEN:
        websocket.protocol.send_ping(HANDOVER_NOTICE)
        websocket.send_data()


async def close_promptly(
    websocket: ServerConnection, code: CloseCode, reason: str, grace: float = CLOSE_TIMEOUT
) -> None:
    """Send a close frame behind whatever is queued, and cut the connection after ``timeout``.

    ``websocket.close()`` first waits, without a deadline, for the send buffer to drain,
    which a client that stopped reading never lets happen. Here the close frame is queued at
    once (a client that catches up still reads every frame, then the code), and the
    transport is aborted if the closing handshake has not finished within ``grace`` seconds.
    """
    if websocket.protocol.state is not State.OPEN:
        return
    websocket.protocol.send_close(code, reason)
    websocket.send_data()
    try:
        async with asyncio.timeout(grace):
            await websocket.wait_closed()
    except TimeoutError:
        websocket.transport.abort()


def _forget_handshake(websocket: ServerConnection) -> None:
    """Drop the opening handshake's request and response headers once the connection is
    admitted: nothing reads them after, and kept for the connection's life they are the
    largest part of its memory (about 2 KB, more behind a browser's cookies).

    The request itself stays (websockets tells the handshake from later frames by it, and
    its parser holds on to it), without its headers.
    """
    assert websocket.request is not None
    websocket.request.headers.clear()
    websocket.response = None


def _asked_client_id(path: str) -> str | None:
    """The ``?clientId=`` of a handshake (checked against the rule before it is used)."""
    values = parse_qs(urlsplit(path).query).get("clientId")
    return values[0] if values else None
