"""One relayed connection: bytes spliced between a client's socket and its node's.

After the handshake the gateway no longer frames anything: what the client sends is written
to the node as it arrives (still masked), what the node sends is written to the client as it
arrives, each read in one write. A :class:`~wspool.gateway.model.framing.FrameScanner` per
direction follows the frame headers, and the gateway steps in only where it must:

- a client frame announcing more than ``--max-frame-bytes``: the client gets 1009 before
  the payload is read, and so does the node;
- a client whose socket holds more than ``--send-buffer-limit`` unsent bytes: 1008 ``slow
  consumer`` to both, behind what was queued;
- a node gone without a closing frame (:attr:`Ending.LOST`), or marked down by the health
  checks (:meth:`Splice.node_down`): 1012 ``server node lost`` to the client, unless the
  session moves (below).

A *seamless* splice (given a ``move``) also follows the session's subscriptions and offsets
(:class:`~wspool.gateway.model.sessionview.SessionView`, reading the node's frames) and the
token its client renews on the connection (:attr:`Splice.renewed_token`: the
:class:`~wspool.gateway.model.renewal.Renewals` are the one reason to look into the
client's text frames), and holds back the node's closing frame. When the node is lost,
marked down, or closes with 1012 ``server draining``, and both streams are between frames,
the client stays connected: what it sends is kept, ``move`` opens a link to another node
(presenting the renewed token, if any) and :meth:`Splice.attach` restores the subscriptions
there from the last offsets (:class:`~wspool.gateway.model.sessionview.Resumption`), passes
on the new node's history and live frames, then what the client sent meanwhile. A session
that cannot be moved (a position unknown, history gone, no node) gets the 1012 it would have
had (:meth:`Splice.unmovable`).

A drain that hands the session over (given a ``hand_over``) moves it make-before-break
instead: the node's handover notice starts a :class:`~wspool.gateway.handover.Handover`,
and the old node serves on until the new one is ready (``wspool.gateway.handover``).

The gateway's own closing frames go between two frames of the stream they join (a frame
already begun would otherwise be cut); where one cannot (a node gone in the middle of a
frame), the connection is dropped instead. Closing frames of either side pass through
untouched, with their codes and reasons; the gateway answers a node's closing frame itself
(1000, as its client would), so a node's connection ends when the node ends it, however
busy the client is. A node's socket that is full stops reading from
the client: a client can only slow itself down.

The client's side is fed by its :class:`~wspool.gateway.front.ClientConnection`
(:meth:`Splice.from_client`, :meth:`Splice.client_gone`); the node's by a
:class:`~wspool.gateway.upstream.NodeLink`.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable
from typing import Protocol

from wspool.core.protocol import HANDOVER_BARRIER, HANDOVER_NOTICE, CloseCode, encode_pong
from wspool.gateway.handover import Handover
from wspool.gateway.model.framing import (
    CLOSE,
    FrameScanner,
    client_texts,
    close_frame,
    text_frame,
)
from wspool.gateway.model.overlap import Overlap
from wspool.gateway.model.renewal import AUTH_MESSAGE_LIMIT
from wspool.gateway.model.sessionview import Resumption, SessionView, not_delivered
from wspool.gateway.upstream import NodeLink

__all__ = ["CLOSE_GRACE", "Ending", "MessageCounts", "Splice"]

CLOSE_GRACE = 5.0
"""Seconds a node has to close its socket after the closing handshake it was sent."""
ABORT_GRACE = 0.1
"""Seconds a hung node's connection gets to take our closing frame before it is dropped."""

_LOST = close_frame(CloseCode.SERVICE_RESTART, b"server node lost")
_SLOW = b"slow consumer"
_DRAINING = CloseCode.SERVICE_RESTART.to_bytes(2, "big") + b"server draining"
_DRAINED = close_frame(CloseCode.SERVICE_RESTART, b"server draining")
_BARRIER = b'{"type":"ping","messageId":"%s"}' % HANDOVER_BARRIER.encode()
_BARRIER_PASSED = encode_pong(HANDOVER_BARRIER).encode()


class Ending(enum.Enum):
    """How a relayed connection ended, as the relay counts it."""

    CLOSED = "closed"  # a closing handshake (either side's), or the client left
    TOO_BIG = "too big"  # the client's frame was over the limit: 1009
    SLOW = "slow consumer"  # the client stopped reading: 1008
    LOST = "lost"  # the node's socket closed without a closing frame: 1012
    DOWN = "down"  # the health checks marked the node down: 1012


class MessageCounts(Protocol):
    """Where messages are counted as they pass: /metrics shows the relay's live rate, which
    `wspool bench` divides the gateway's CPU by."""

    messages_to_server: int
    messages_to_client: int


class Splice:
    """Both directions of one relayed connection, and how it ends.

    ``ended`` is called once, as soon as the ending is known (for the relay's counters);
    :attr:`finished` completes when the node's socket is closed, after which only the
    client's side may linger.
    """

    __slots__ = (
        "_barrier_due",
        "_client",
        "_client_close",
        "_client_done",
        "_counts",
        "_ended",
        "_hand_over",
        "_kept",
        "_limit",
        "_max_frame_bytes",
        "_move",
        "_node",
        "_node_closing",
        "_node_link",
        "_overlap",
        "_preface",
        "_renewals",
        "_resuming",
        "down",
        "ending",
        "finished",
        "handover",
        "moving",
        "unmoved",
        "up",
        "view",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        node: NodeLink,
        *,
        max_frame_bytes: int,
        send_buffer_limit: int,
        counts: MessageCounts,
        ended: Callable[[Ending], None],
        move: Callable[[Splice, Ending], None] | None = None,
        hand_over: Callable[[Splice], None] | None = None,
        renewals: bool = False,
        preface: bytes = b"",
    ) -> None:
        """``move``: the splice is seamless; ``hand_over``: a drain's notice hands the session
        over; ``renewals``: it also follows the token its client renews (the client presented
        one); ``preface``: what the client is sent first (the node's 101, passed on), in one
        write with the node's first frame when that came with the node's answer."""
        self._client = client
        self._max_frame_bytes = max_frame_bytes
        self._limit = send_buffer_limit
        self._ended = ended
        self._move = move
        self.ending: Ending | None = None
        self.view = SessionView() if move is not None else None
        self._renewals = renewals and self.view is not None
        self._counts = counts
        self._client_close: bytes | None = None  # ours, waiting for the end of a frame
        self._client_done = False  # nothing more is sent to the client
        self.moving: Ending | None = None
        """Why the session is between two nodes (LOST, DOWN, or CLOSED: drained)."""
        self.unmoved = ""
        """Why the session could not be moved, if it could not."""
        self._kept = bytearray()  # what the client sent while moving
        self._resuming: Resumption | None = None
        self._hand_over = hand_over
        self.handover: Handover | None = None
        """The next node being made ready while the draining one serves on."""
        self._barrier_due = False  # the handover's ping goes to the node at the next boundary
        self._overlap: Overlap | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._preface = preface
        self._link(node)
        self._pass_preface()  # the node's first frame is still on its way

    def _link(self, node: NodeLink) -> None:
        assert node.transport is not None
        self._node_link = node
        self._node = node.transport
        self._node_closing = False  # a closing frame went to the node, or will not
        view = self.view
        self.up = FrameScanner(
            self._max_frame_bytes,
            watch=view.renewals.sent if view is not None and self._renewals else None,
            watch_limit=AUTH_MESSAGE_LIMIT,
        )
        self.down = FrameScanner(
            watch=None if view is None else view.frame,
            hold_close=view is not None,
            notice=None if self._hand_over is None else HANDOVER_NOTICE,
        )
        node.relay_to(self.from_node, self.node_gone, self._node_writable)

    @property
    def renewed_token(self) -> str | None:
        """The newest token the client renewed on the connection and a node accepted (None:
        its handshake's token holds)."""
        return None if self.view is None else self.view.renewals.token

    # client -> node -------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        up = self.up
        if self.moving is not None or (self.handover is not None and up.stopped):
            self._keep(data)
            return
        if up.stopped:
            return  # closing: what a client sends after it is discarded
        passing = up.feed(data)
        if passing and not self._node.is_closing():
            self._node.write(passing)
        if up.messages:
            self._counts.messages_to_server += up.messages
            up.messages = 0
        if self._barrier_due and up.stopped:
            self._send_barrier()
        if self.handover is not None and self._switch():
            return
        if up.oversized:
            self._end(Ending.TOO_BIG)
            self._close_node(CloseCode.MESSAGE_TOO_BIG)
            self._close_client(close_frame(CloseCode.MESSAGE_TOO_BIG))

    def client_gone(self) -> None:
        """The client's connection is lost: the node gets a closing frame, if none passed."""
        self._client_close = None
        self._client_done = True
        self.down.stop()
        self._end(Ending.CLOSED)  # and any handover given up
        if self.moving is not None:
            if self._resuming is not None:
                self._node.abort()  # the new node's session has no client any more
            self._finish()
            return
        self._close_node(CloseCode.NORMAL)

    def _keep(self, data: bytes) -> None:
        self._kept += data
        if len(self._kept) > self._limit and not self._client.is_closing():
            self._client.pause_reading()

    def _node_writable(self, writable: bool) -> None:
        if self._client.is_closing():
            return
        if writable or self.up.stopped:
            self._client.resume_reading()
        else:
            self._client.pause_reading()

    # node -> client -------------------------------------------------------------------

    def from_node(self, data: bytes) -> None:
        if self._resuming is not None:
            self._resume(data)
            return
        if self._overlap is not None:
            data = self._overlap.filter(data)
            if self._overlap.done:
                self._overlap = None
        down = self.down
        if down.stopped:
            return
        client = self._client
        passing = down.feed(data)
        if self._preface:
            passing, self._preface = self._preface + passing, b""
        if passing and not client.is_closing():
            client.write(passing)
        if down.messages:
            self._counts.messages_to_client += down.messages
            down.messages = 0
        if down.noticed:
            down.noticed = 0
            self._noticed()
        if down.barred:
            down.barred = 0
            self._barrier_passed()
        if self.handover is not None and self._switch():
            return
        if down.held_close is not None:
            self._node_closed(down.held_close)
            return
        if down.closed and not self._node_closing:
            # Answered here, as the node's client would: the node's connection ends now
            # even while the client is busy, and the client's answer is not passed on.
            self._close_node(CloseCode.NORMAL)
        if self._client_close is not None:
            if down.stopped:
                self._send_client_close()
            return
        if client.get_write_buffer_size() > self._limit and self.ending is None:
            self._end(Ending.SLOW)
            self._close_node(CloseCode.POLICY_VIOLATION, _SLOW)
            self._close_client(close_frame(CloseCode.POLICY_VIOLATION, _SLOW))

    def _pass_preface(self) -> None:
        preface, self._preface = self._preface, b""
        if preface and not self._client.is_closing():
            self._client.write(preface)

    def node_gone(self) -> None:
        """The node's socket closed: after its closing frame, or not (then: 1012 lost)."""
        self._pass_preface()  # lost before the splice began, with nothing more to pass on
        self._give_up_handover("the node it leaves was lost")
        if self.moving is not None:
            if self._resuming is not None:
                self._move_again(Ending.LOST, "the new node was lost too")
            return
        if not self.down.closed and self.ending is None:
            if self._begin_move(Ending.LOST):
                return
            self._end(Ending.LOST)
            self._close_client(_LOST, now=True)
        elif self._client_close is not None:
            self._close_client(self._client_close, now=True)
        else:
            self._finish_client()
        self._finish()

    def node_down(self) -> None:
        """The health checks marked the node down while its socket is open: 1012 to the
        client now, and the node's connection dropped without waiting for its answer."""
        if self.finished.done() or self.moving is not None:
            return
        self._give_up_handover("the node it leaves is down")
        node = self._node
        moved = self.ending is None and self._begin_move(Ending.DOWN)
        if self.ending is None and not moved:
            self._end(Ending.DOWN)
            self._close_client(_LOST, now=True)
        self._close_node(CloseCode.GOING_AWAY, node=node if moved else None)
        asyncio.get_running_loop().call_later(ABORT_GRACE, node.abort)

    def _node_closed(self, payload: bytes) -> None:
        """The node's closing frame, held back: a drain moves the session, anything else
        reaches the client as it was sent."""
        self._give_up_handover("the node it leaves closed it")
        node = self._node
        if payload == _DRAINING and self.ending is None and self._begin_move(Ending.CLOSED):
            self._close_node(CloseCode.NORMAL, node=node)
            return
        self.down.held_close = None
        if self._client_close is not None:
            self._send_client_close()
        elif not self._client.is_closing():
            self._client.write(bytes((0x80 | CLOSE, len(payload))) + payload)
        if not self._node_closing:
            self._close_node(CloseCode.NORMAL)

    # moving to another node -------------------------------------------------------------

    def _begin_move(self, why: Ending) -> bool:
        """Start moving the session, if it can be: both streams between frames, the client
        greeted by its node, and the position of every subscription known."""
        if self._move is None or self.view is None or self._client_done:
            return False
        if not (self.up.between_frames and self.down.between_frames):
            return False
        if not self.view.greeted or None in self.view.positions().values():
            return False
        self.moving = why
        self._overlap = None  # the new node resumes from the client's positions
        self._node_link.detach()
        self._kept += self.up.take_rest()
        self._move(self, why)
        return True

    def attach(self, node: NodeLink) -> None:
        """Continue the session on ``node``: restore its subscriptions, then relay."""
        if self._client_done or self.view is None:
            assert node.transport is not None
            node.transport.abort()
            return
        positions = {c: p for c, p in self.view.positions().items() if p is not None}
        self._resuming = Resumption(positions)
        self._link(node)
        for payload in self._resuming.subscribes():
            self._node.write(text_frame(payload, os.urandom(4)))

    def unmovable(self, reason: str) -> None:
        """No node took the session (``reason``): the client gets the 1012 it would have had."""
        self.unmoved = reason
        why = self.moving or Ending.LOST
        self._resuming = None
        if self.ending is None:
            self._end(why)  # told while :attr:`moving` still says it was a move
            if not self._client.is_closing():
                errors = not_delivered(client_texts(self._kept))
                self._client.write(b"".join(text_frame(error) for error in errors))
            self._close_client(_DRAINED if why is Ending.CLOSED else _LOST, now=True)
        self._kept.clear()
        self.moving = None
        if not self._node_closing and not self._node.is_closing():
            self._node.abort()
        self._finish()

    def _move_again(self, why: Ending, reason: str) -> None:
        """The new node went (or drains) before the session was restored there: on to the
        next one, from the positions passed on so far."""
        self._resuming = None
        self.moving = None
        if not self._begin_move(why):
            self.moving = why
            self.unmovable(reason)

    def _resume(self, data: bytes) -> None:
        """The new node's frames until every subscribe is answered: its answers are kept,
        history and live frames pass; then the relay goes on from there."""
        resuming = self._resuming
        assert resuming is not None
        assert self.view is not None
        step = resuming.read(data, self.view)
        self._counts.messages_to_client += step.messages
        if step.passing and not self._client.is_closing():
            self._client.write(step.passing)
        if step.closing is not None:
            node = self._node
            self._node_link.detach()
            self._close_node(CloseCode.NORMAL, node=node)
            why = Ending.CLOSED if step.closing == _DRAINING else Ending.LOST
            self._move_again(why, "the new node closed the session")
        elif resuming.failed is not None:
            self.unmovable(resuming.failed)
        elif resuming.done:
            self._resuming = None
            self.moving = None
            kept, self._kept = bytes(self._kept), bytearray()
            if not self._client.is_closing():
                self._client.resume_reading()
            if kept:
                self.from_client(kept)
            if resuming.noticed:  # the new node drains already: on to the next one
                self._noticed()
            if step.rest:
                self.from_node(step.rest)

    # handing over to another node before leaving this one -------------------------------

    def _noticed(self) -> None:
        """The node drains and hands the session over: its next node is made ready, while
        this one serves on and what the client sends from its next frame on is kept."""
        if (
            self._hand_over is None
            or self.view is None
            or not self.view.greeted
            or self.handover is not None
            or self.ending is not None
            or self._client_done
        ):
            return
        self.up.stop()
        self.handover = Handover(self._switch, self.hand_over_failed)
        self.down.barrier = _BARRIER_PASSED
        self._barrier_due = True
        if self.up.stopped:
            self._send_barrier()

    def _send_barrier(self) -> None:
        """Behind the client's last frame to the draining node, our ``ping``: its ``pong``
        comes after the node's answers to everything the client sent it."""
        self._barrier_due = False
        if not self._node.is_closing():
            self._node.write(text_frame(_BARRIER, os.urandom(4)))

    def _barrier_passed(self) -> None:
        """Every answer of the draining node to the client is through (and the session's
        subscriptions with it): the next node is made ready now."""
        self.down.barrier = None
        if self.handover is not None and self._hand_over is not None:
            self._hand_over(self)

    def hand_over_to(self, node: NodeLink) -> asyncio.Future[str | None]:
        """Make ``node`` ready to take the session over; the future resolves with None once
        the session switched to it, or with why it did not."""
        handover = self.handover
        assert self.view is not None
        positions = {c: p for c, p in self.view.positions().items() if p is not None}
        if handover is not None and len(positions) == len(self.view.positions()):
            handover.attach(node, positions)
            return handover.outcome
        assert node.transport is not None
        node.transport.abort()
        if handover is None:
            ended: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            ended.set_result("the session moved on or ended")
            return ended
        self.hand_over_failed("the position of a subscription is not known")
        return handover.outcome

    def _switch(self) -> bool:
        """Go on on the new node, once it is ready and both streams are between frames:
        whether the session switched."""
        handover = self.handover
        if handover is None or not handover.ready or not self.up.stopped:
            return False
        self.down.stop()
        if not self.down.stopped:
            return False  # at the end of the node's frame under way
        assert self.view is not None
        positions = self.view.positions()
        forwarded = {c: p for c, p in positions.items() if p is not None}
        if set(forwarded) != handover.channels or len(forwarded) != len(positions):
            self.hand_over_failed("its subscriptions changed meanwhile")
            return False
        self.handover = None
        self._node_link.detach()
        self._kept[:0] = self.up.take_rest()
        self._close_node(CloseCode.NORMAL, node=self._node)
        node, held = handover.take()
        self._overlap = Overlap(forwarded)
        self._link(node)
        if held:
            self.from_node(held)
        kept, self._kept = bytes(self._kept), bytearray()
        if not self._client.is_closing():
            self._client.resume_reading()
        if kept:
            self.from_client(kept)
        return True

    def hand_over_failed(self, reason: str) -> None:
        """No node can take the session (``reason``): the old one serves on."""
        handover, self.handover = self.handover, None
        if handover is None:
            return
        self._barrier_due, self.down.barrier = False, None
        handover.abandon(reason)
        kept = self.up.resume() + bytes(self._kept)
        self._kept.clear()
        rest = self.down.resume()
        if not self._client.is_closing():
            self._client.resume_reading()
        if kept:
            self.from_client(kept)
        if rest:
            self.from_node(rest)

    def _give_up_handover(self, reason: str) -> None:
        """The old node's connection ends (or the session does) before the switch: the new
        node is given up, and what the client sent meanwhile waits for what follows."""
        handover, self.handover = self.handover, None
        if handover is not None:
            self._barrier_due, self.down.barrier = False, None
            handover.abandon(reason)
            self._kept[:0] = self.up.take_rest()

    # the gateway's own closes ---------------------------------------------------------

    def _end(self, ending: Ending) -> None:
        self._give_up_handover("the session ended")
        if self.ending is None:
            self.ending = ending
            self._ended(ending)

    def _close_node(
        self, code: int, reason: bytes = b"", *, node: asyncio.Transport | None = None
    ) -> None:
        """Send the node our closing frame (between two of the client's frames, or drop the
        connection), stop writing, and give it :data:`CLOSE_GRACE` to close its socket.

        ``node``: a node the session is leaving (the client stays)."""
        leaving = node is not None
        up = self.up
        if not leaving:
            up.stop()
            node = self._node
            if self._node_closing:
                return
            self._node_closing = True
        assert node is not None
        if node.is_closing():
            return
        asyncio.get_running_loop().call_later(CLOSE_GRACE, node.abort)
        if up.closed:
            return  # the client's own closing frame has passed
        if not up.between_frames:
            node.abort()
            return
        node.write(close_frame(code, reason, mask=os.urandom(4)))
        if node.can_write_eof():
            node.write_eof()
        if not leaving and not self._client.is_closing():
            self._client.resume_reading()  # what the client still sends is read and dropped

    def _close_client(self, frame: bytes, *, now: bool = False) -> None:
        """Send the client ``frame`` once the frame under way has passed, and nothing after.

        ``now``: the node sends no more, so the frame under way cannot end; if one is under
        way the connection is dropped instead.
        """
        self.down.stop()
        if self.down.between_frames:
            self._client_close = frame
            self._send_client_close()
        elif now:
            self._client_close = None
            self._client.abort()
        else:
            self._client_close = frame

    def _send_client_close(self) -> None:
        frame, self._client_close = self._client_close, None
        client = self._client
        if frame is None or client.is_closing():
            return
        client.write(frame)
        self._finish_client()

    def abort_node(self) -> None:
        """Drop the node's connection (the gateway is stopping)."""
        self._node.abort()

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def _finish_client(self) -> None:
        """Stop sending to the client (FIN) and read on until it closes: closing a socket
        with unread data resets it, which can destroy a closing frame before it is read."""
        client = self._client
        if self._client_done or client.is_closing():
            return
        self._client_done = True
        if client.can_write_eof():
            client.write_eof()
        client.resume_reading()
