"""Channels on one node: who subscribes locally, and delivering frames to them.

The node holds one engine subscription per channel that has local subscribers (reference
counted), so Redis sends a node only what someone on it reads. Frames arrive already
encoded; each is written to every subscriber as the same bytes, and a subscriber gets a
whole batch in one socket write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from wspool.server.session import Session
from wspool.server.stats import NodeStats
from wspool.state.engine import StateEngine

__all__ = ["ChannelRouter"]

log = logging.getLogger(__name__)

SlowConsumerHandler = Callable[[Session], None]


class ChannelRouter:
    """Local subscriptions of one node, and fan-out of frames to them."""

    def __init__(
        self,
        engine: StateEngine,
        stats: NodeStats,
        send_buffer_limit: int,
        on_slow_consumer: SlowConsumerHandler,
    ) -> None:
        self._engine = engine
        self._stats = stats
        self._limit = send_buffer_limit
        self._on_slow_consumer = on_slow_consumer
        self._local: dict[str, dict[ServerConnection, Session]] = {}
        self._subscribing: dict[str, asyncio.Task[None]] = {}

    @property
    def channel_count(self) -> int:
        return len(self._local)

    async def add(self, channel: str, session: Session) -> None:
        """Subscribe a session; returns once frames published from now on will reach it.

        Raises ``EngineUnavailableError`` (and leaves nothing subscribed) when the engine
        cannot confirm the channel's subscription.
        """
        subscribers = self._local.get(channel)
        if subscribers is not None and channel not in self._subscribing:
            subscribers[session.websocket] = session
            return
        if subscribers is None:
            subscribers = self._local[channel] = {}
            self._subscribing[channel] = asyncio.create_task(self._engine.subscribe(channel))
        subscribers[session.websocket] = session
        pending = self._subscribing[channel]
        try:
            await asyncio.shield(pending)
        except Exception:
            self._discard(channel, session)
            raise
        finally:
            if pending.done() and self._subscribing.get(channel) is pending:
                del self._subscribing[channel]

    def remove(self, channel: str, session: Session) -> None:
        """Unsubscribe a session; the node leaves the channel with its last local subscriber."""
        if self._discard(channel, session):
            task = asyncio.create_task(self._engine.unsubscribe(channel))
            task.add_done_callback(_log_failure)

    def _discard(self, channel: str, session: Session) -> bool:
        subscribers = self._local.get(channel)
        if subscribers is None:
            return False
        subscribers.pop(session.websocket, None)
        if subscribers:
            return False
        del self._local[channel]
        return True

    def deliver(self, channel: str, frames: list[str]) -> None:
        """Write ``frames`` to every local subscriber of ``channel``, in order.

        Like ``websockets.broadcast`` (one encoding per frame, no awaiting), but a subscriber
        gets the whole batch in one write, and one whose unsent bytes pass the send-buffer
        limit is closed as a slow consumer instead of growing the node's memory.
        """
        subscribers = self._local.get(channel)
        if not subscribers:
            return
        encoded = [frame.encode() for frame in frames]
        slow: list[Session] = []
        delivered = 0
        for websocket, session in subscribers.items():
            if websocket.protocol.state is not State.OPEN:
                continue
            try:
                for data in encoded:
                    websocket.protocol.send_text(data)
                websocket.send_data()
            except Exception as error:  # the transport broke; its handler cleans up
                log.debug("delivery failed: %s", error, extra={"connectionId": session.id})
                continue
            delivered += 1
            transport = websocket.transport
            if transport is not None and transport.get_write_buffer_size() > self._limit:
                slow.append(session)
        self._stats.deliveries += delivered * len(encoded)
        for session in slow:
            self._on_slow_consumer(session)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("leaving a channel failed: %s", error)
