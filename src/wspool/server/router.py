"""Channels on one node: who subscribes locally, and delivering frames to them.

The node holds one engine subscription per channel that has local subscribers (reference
counted), so Redis sends a node only what someone on it reads. Frames arrive already
encoded; each is written to every subscriber as the same bytes, and a subscriber gets a
whole batch in one socket write.

A session joins a channel through :meth:`ChannelRouter.subscribe`, which sends it the
channel's history and then its live frames with no gap and no duplicate; how, step by step,
is told in :mod:`wspool.server.catchup`, which holds what a session is kept meanwhile. Live
subscribers cost nothing extra.

The engine's batches reach the subscribers through a :class:`FeedSequencer`, which fills
from history what the node's pub/sub link missed; when that cannot be done, the channel's
subscribers on this node are handed to ``on_interrupted`` (the node closes them, and they
resume with ``since``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from wspool.core.history import StreamPosition
from wspool.core.protocol import encode_subscribed
from wspool.server.catchup import CatchUp
from wspool.server.sequencer import FeedSequencer
from wspool.server.session import Session
from wspool.server.stats import NodeStats
from wspool.state.engine import MessageBus

__all__ = ["ChannelRouter"]

log = logging.getLogger(__name__)

SessionHandler = Callable[[Session], None]


class ChannelRouter:
    """Local subscriptions of one node, and fan-out of frames to them."""

    def __init__(
        self,
        bus: MessageBus,
        stats: NodeStats,
        send_buffer_limit: int,
        on_slow_consumer: SessionHandler,
        on_interrupted: SessionHandler,
    ) -> None:
        self._bus = bus
        self._stats = stats
        self._limit = send_buffer_limit
        self._on_slow_consumer = on_slow_consumer
        self._on_interrupted = on_interrupted
        self._sequencer = FeedSequencer(bus, self._fan_out, self._interrupt)
        self._local: dict[str, dict[ServerConnection, Session]] = {}
        self._catching_up: dict[str, dict[ServerConnection, CatchUp]] = {}
        self._joined: set[str] = set()
        self._subscribing: dict[str, asyncio.Task[None]] = {}

    @property
    def channel_count(self) -> int:
        return len(self._local.keys() | self._catching_up.keys())

    async def subscribe(
        self, channel: str, session: Session, message_id: str, since: StreamPosition | None
    ) -> None:
        """Subscribe ``session`` to ``channel``, answer ``subscribed`` and send what it missed
        since ``since``; live frames follow from where the history ends
        (:mod:`wspool.server.catchup`, steps 1 to 4).

        Raises ``EngineUnavailableError`` with nothing subscribed when the store cannot answer.
        """
        await self._join(channel, session)
        try:
            read = await self._bus.read_history(channel, since)
        except BaseException:
            self.remove(channel, session)
            raise
        recovered = read.recovered if since is not None else None
        if since is not None:
            self._stats.recoveries[bool(recovered)] += 1
        websocket = session.websocket
        try:
            await websocket.send(encode_subscribed(channel, message_id, read.top, recovered))
            # One frame at a time through websockets' flow control: a long replay waits for
            # the client to read it instead of piling up in the node's memory.
            for frame in read.frames or ():
                await websocket.send(frame)
        except BaseException:
            self.remove(channel, session)
            raise
        self._go_live(channel, session, read.top)

    async def _join(self, channel: str, session: Session) -> None:
        """Register a catching-up session; returns once every frame published from now on
        will reach it, kept in a :class:`CatchUp` until :meth:`_go_live`.

        Raises ``EngineUnavailableError`` (and leaves nothing subscribed) when the engine
        cannot confirm the channel's subscription.
        """
        self._catching_up.setdefault(channel, {})[session.websocket] = CatchUp(session)
        if channel in self._joined:
            return
        pending = self._subscribing.get(channel)
        if pending is None:
            self._sequencer.forget(channel)  # a feed left over from an earlier subscription
            pending = asyncio.create_task(self._bus.subscribe(channel))
            self._subscribing[channel] = pending
        try:
            await asyncio.shield(pending)
        except Exception:
            self._discard(channel, session)
            raise
        finally:
            if pending.done() and self._subscribing.get(channel) is pending:
                del self._subscribing[channel]
                held = channel in self._local or channel in self._catching_up
                if held and not pending.cancelled() and pending.exception() is None:
                    self._joined.add(channel)

    def _go_live(self, channel: str, session: Session, top: StreamPosition) -> None:
        """The session was sent the channel's history up to ``top``: it goes live as soon
        as the feed passes ``top`` (at once, if it already has)."""
        catch_up = self._catching_up.get(channel, {}).get(session.websocket)
        if catch_up is None:
            return  # it left meanwhile
        catch_up.top = top
        if catch_up.caught_up:
            self._promote(channel, catch_up)

    def _promote(self, channel: str, catch_up: CatchUp) -> None:
        """The feed has passed the session's history: write it the kept frames after that
        history and make it a plain subscriber, in this one step of the event loop."""
        session = catch_up.session
        websocket = session.websocket
        waiting = self._catching_up[channel]
        del waiting[websocket]
        if not waiting:
            del self._catching_up[channel]
        self._local.setdefault(channel, {})[websocket] = session
        if catch_up.overflowed:
            self._on_slow_consumer(session)
            return
        if websocket.protocol.state is not State.OPEN:
            return
        after_top = catch_up.frames_after_top()
        if after_top is None:
            self._on_interrupted(session)
        else:
            self._write({websocket: session}, after_top)

    def remove(self, channel: str, session: Session) -> None:
        """Unsubscribe a session; the node leaves the channel with its last local subscriber."""
        if self._discard(channel, session):
            task = asyncio.create_task(self._bus.unsubscribe(channel))
            task.add_done_callback(_log_failure)

    def _discard(self, channel: str, session: Session) -> bool:
        for table in (self._local, self._catching_up):
            members = table.get(channel)
            if members is not None:
                members.pop(session.websocket, None)
                if not members:
                    del table[channel]
        if channel in self._local or channel in self._catching_up:
            return False
        self._joined.discard(channel)
        self._sequencer.forget(channel)
        return True

    def deliver(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        """A batch from the engine: on to the subscribers once it follows the last one."""
        if channel in self._local or channel in self._catching_up:
            self._sequencer.feed(channel, start, frames)

    def link_restored(self) -> None:
        """The engine's link is back: fill what each channel missed meanwhile."""
        self._sequencer.link_restored()

    async def stop(self) -> None:
        await self._sequencer.stop()

    def _interrupt(self, channel: str) -> None:
        sessions = list(self._local.get(channel, {}).values())
        sessions += [c.session for c in self._catching_up.get(channel, {}).values()]
        for session in sessions:
            self._on_interrupted(session)

    def _fan_out(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        """Write ``frames`` to every local subscriber of ``channel``, in order.

        Like ``websockets.broadcast`` (no awaiting), but the batch is framed once for every
        subscriber (a server's frames are unmasked, and the node negotiates no extension, so
        they are the same bytes for all), each subscriber gets it in one write, and one whose
        unsent bytes pass the send-buffer limit is closed as a slow consumer instead of
        growing the node's memory. Sessions still catching up keep the batch with its
        position.
        """
        catching_up = self._catching_up.get(channel)
        if catching_up:
            for catch_up in catching_up.values():
                catch_up.keep(start, frames)
        subscribers = self._local.get(channel)
        if subscribers:
            self._write(subscribers, frames)
        if catching_up:
            # After the live writes, so a session promoted now gets this batch only once.
            for catch_up in [c for c in catching_up.values() if c.caught_up]:
                self._promote(channel, catch_up)

    def _write(self, subscribers: dict[ServerConnection, Session], frames: list[str]) -> None:
        wire = b"".join(
            Frame(Opcode.TEXT, frame.encode()).serialize(mask=False, extensions=[])
            for frame in frames
        )
        slow: list[Session] = []
        delivered = 0
        for websocket, session in subscribers.items():
            protocol = websocket.protocol
            if protocol.state is not State.OPEN:
                continue
            try:
                if protocol.writes:  # what websockets queued (a pong, say) goes first
                    websocket.send_data()
                websocket.transport.write(wire)
            except Exception as error:  # the transport broke; its handler cleans up
                log.debug("delivery failed: %s", error, extra={"connectionId": session.id})
                continue
            delivered += 1
            if websocket.transport.get_write_buffer_size() > self._limit:
                slow.append(session)
        self._stats.deliveries += delivered * len(frames)
        for session in slow:
            self._on_slow_consumer(session)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("leaving a channel failed: %s", error)
