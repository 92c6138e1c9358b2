"""A drained node's session moved make-before-break: its next node is made ready first.

A draining node does not close the connections of a seamless gateway with 1012: on the
same drain schedule it sends each one the handover notice, a ping carrying
:data:`~wspool.core.protocol.HANDOVER_NOTICE` that the splice's
:class:`~wspool.gateway.model.framing.FrameScanner` takes out of the stream (the client
never sees it), and serves on. The splice (``wspool.gateway.splice``) then:

1. keeps what the client sends from its next frame boundary on, sends the old node a
   ``ping`` of its own behind the client's last frame
   (:data:`~wspool.core.protocol.HANDOVER_BARRIER`), and once its ``pong`` is back (after
   the node's answers to everything the client sent it) has the relay open a link to
   another node (``wspool.gateway.relay``), while the old node goes on delivering;
2. a :class:`Handover` subscribes there from the session's positions at that moment
   (:class:`~wspool.gateway.model.sessionview.Resumption`) and holds every frame the new
   node sends until each subscribe is answered with ``recovered: true`` (:attr:`ready`);
3. at the next frame boundary of the old node's stream the splice switches: the old link
   is closed with 1000 and what it sends after is discarded; the held and later frames of
   the new node pass through an :class:`~wspool.gateway.model.overlap.Overlap`, which
   drops what the client already has; what the client sent meanwhile goes to the new node.

A handover that fails (no node, a refusal, the new node lost or unable to resume) leaves
the session on its old node, which serves it to the end of its drain window and then
closes it with 1012, which the splice turns into an ordinary move.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from wspool.core.protocol import CloseCode
from wspool.gateway.model.framing import close_frame, text_frame
from wspool.gateway.model.sessionview import Resumption
from wspool.gateway.upstream import NodeLink

__all__ = ["Handover"]

CLOSE_GRACE = 5.0
"""Seconds a new node given up has to close its socket after our closing frame."""


class Handover:
    """A session's next node, made ready while its draining node still serves it.

    :attr:`outcome` resolves once the handover ends: None when the session switched to the
    new node, otherwise why it did not.
    """

    __slots__ = ("_link", "_on_failed", "_on_ready", "_resumption", "channels", "held", "outcome")

    def __init__(self, on_ready: Callable[[], object], on_failed: Callable[[str], None]) -> None:
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._link: NodeLink | None = None
        self._resumption: Resumption | None = None
        self.channels: frozenset[str] = frozenset()
        """The channels subscribed on the new node."""
        self.held = bytearray()
        """The new node's frames for the client, held until the switch."""
        self.outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    @property
    def ready(self) -> bool:
        """Whether every subscription is restored on the new node."""
        return self._resumption is not None and self._resumption.done

    def attach(self, link: NodeLink, positions: dict[str, str]) -> None:
        """Subscribe on ``link`` from ``positions`` (per channel, the last offset passed on)."""
        assert link.transport is not None
        self._link = link
        self.channels = frozenset(positions)
        self._resumption = Resumption(positions)
        link.relay_to(self._read, self._lost, _ignore)
        for payload in self._resumption.subscribes():
            link.transport.write(text_frame(payload, os.urandom(4)))

    def take(self) -> tuple[NodeLink, bytes]:
        """The new node's link and its held frames: the session switches to it now."""
        assert self._link is not None
        assert self.ready
        link, self._link = self._link, None
        held, self.held = bytes(self.held), bytearray()
        link.detach()
        self._resolve(None)
        return link, held

    def abandon(self, reason: str) -> None:
        """Give the new node up (its session is closed with 1000): the session stays where
        it is, or moves on as the old node's end decides."""
        link, self._link = self._link, None
        self._resolve(reason)
        if link is None or link.transport is None:
            return
        link.detach()
        transport = link.transport
        if transport.is_closing():
            return
        transport.write(close_frame(CloseCode.NORMAL, mask=os.urandom(4)))
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)

    def _read(self, data: bytes) -> None:
        resumption = self._resumption
        assert resumption is not None
        if resumption.done:
            self.held += data
            return
        step = resumption.read(data, None)
        self.held += step.passing
        if step.closing is not None:
            self._on_failed("the new node closed the session")
        elif resumption.noticed:
            self._on_failed("the new node drains too")
        elif resumption.failed is not None:
            self._on_failed(resumption.failed)
        elif resumption.done:
            self.held += step.rest
            self._on_ready()

    def _lost(self) -> None:
        self._on_failed("the new node was lost")

    def _resolve(self, outcome: str | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


def _ignore(_: object) -> None:
    """The new node's flow control before the switch: it only answers subscribes."""
