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
  checks (:meth:`Splice.node_down`): 1012 ``server node lost`` to the client.

The gateway's own closing frames go between two frames of the stream they join (a frame
already begun would otherwise be cut); where one cannot (a node gone in the middle of a
frame), the connection is dropped instead. Closing frames of either side pass through
untouched, with their codes and reasons; the gateway answers a node's closing frame itself
(1000, as its client would), so a node's connection ends when the node ends it, however
busy the client is. A node's socket that is full stops reading from
the client: a client can only slow itself down.

The client's side is fed by aiohttp's connection handler (:class:`ClientBytes` is the
"payload parser" it hands each read to, the way its own WebSocket reader is); the node's by
a :class:`~wspool.gateway.upstream.NodeLink`.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable
from typing import Protocol

from wspool.core.protocol import CloseCode
from wspool.gateway.model.framing import FrameScanner, close_frame
from wspool.gateway.upstream import NodeLink

__all__ = ["CLOSE_GRACE", "ClientBytes", "Ending", "MessageCounts", "Splice"]

CLOSE_GRACE = 5.0
"""Seconds a node has to close its socket after the closing handshake it was sent."""
ABORT_GRACE = 0.1
"""Seconds a hung node's connection gets to take our closing frame before it is dropped."""

_LOST = close_frame(CloseCode.SERVICE_RESTART, b"server node lost")
_SLOW = b"slow consumer"


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


class ClientBytes:
    """What aiohttp's connection handler feeds after the upgrade (its payload parser API)."""

    __slots__ = ("_splice",)

    def __init__(self, splice: Splice) -> None:
        self._splice = splice

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._splice.from_client(data)
        return False, b""

    def feed_eof(self) -> None:
        self._splice.client_gone()


class Splice:
    """Both directions of one relayed connection, and how it ends.

    ``ended`` is called once, as soon as the ending is known (for the relay's counters);
    :attr:`finished` completes when the node's socket is closed, after which only the
    client's side may linger.
    """

    def __init__(
        self,
        client: asyncio.Transport,
        node: NodeLink,
        *,
        max_frame_bytes: int,
        send_buffer_limit: int,
        counts: MessageCounts,
        ended: Callable[[Ending], None],
    ) -> None:
        assert node.transport is not None
        self._client = client
        self._node = node.transport
        self._limit = send_buffer_limit
        self._ended = ended
        self.ending: Ending | None = None
        self.up = FrameScanner(max_frame_bytes)
        self.down = FrameScanner()
        self._counts = counts
        self._client_close: bytes | None = None  # ours, waiting for the end of a frame
        self._client_done = False  # nothing more is sent to the client
        self._node_closing = False  # a closing frame went to the node, or will not
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reader = ClientBytes(self)
        node.relay_to(self.from_node, self.node_gone, self._node_writable)

    # client -> node -------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        up = self.up
        if up.stopped:
            return  # closing: what a client sends after it is discarded
        passing = up.feed(data)
        if passing and not self._node.is_closing():
            self._node.write(passing)
        if up.messages:
            self._counts.messages_to_server += up.messages
            up.messages = 0
        if up.oversized:
            self._end(Ending.TOO_BIG)
            self._close_node(CloseCode.MESSAGE_TOO_BIG)
            self._close_client(close_frame(CloseCode.MESSAGE_TOO_BIG))

    def client_gone(self) -> None:
        """The client's connection is lost: the node gets a closing frame, if none passed."""
        self._client_close = None
        self._client_done = True
        self.down.stop()
        self._end(Ending.CLOSED)
        self._close_node(CloseCode.NORMAL)

    def _node_writable(self, writable: bool) -> None:
        if self._client.is_closing():
            return
        if writable or self.up.stopped:
            self._client.resume_reading()
        else:
            self._client.pause_reading()

    # node -> client -------------------------------------------------------------------

    def from_node(self, data: bytes) -> None:
        down = self.down
        if down.stopped:
            return
        client = self._client
        passing = down.feed(data)
        if passing and not client.is_closing():
            client.write(passing)
        if down.messages:
            self._counts.messages_to_client += down.messages
            down.messages = 0
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

    def node_gone(self) -> None:
        """The node's socket closed: after its closing frame, or not (then: 1012 lost)."""
        if not self.down.closed and self.ending is None:
            self._end(Ending.LOST)
            self._close_client(_LOST, now=True)
        elif self._client_close is not None:
            self._close_client(self._client_close, now=True)
        else:
            self._finish_client()
        if not self.finished.done():
            self.finished.set_result(None)

    def node_down(self) -> None:
        """The health checks marked the node down while its socket is open: 1012 to the
        client now, and the node's connection dropped without waiting for its answer."""
        if self.finished.done():
            return
        if self.ending is None:
            self._end(Ending.DOWN)
            self._close_client(_LOST, now=True)
        self._close_node(CloseCode.GOING_AWAY)
        asyncio.get_running_loop().call_later(ABORT_GRACE, self._node.abort)

    # the gateway's own closes ---------------------------------------------------------

    def _end(self, ending: Ending) -> None:
        if self.ending is None:
            self.ending = ending
            self._ended(ending)

    def _close_node(self, code: int, reason: bytes = b"") -> None:
        """Send the node our closing frame (between two of the client's frames, or drop the
        connection), stop writing, and give it :data:`CLOSE_GRACE` to close its socket."""
        up = self.up
        up.stop()
        node = self._node
        if self._node_closing or node.is_closing():
            return
        self._node_closing = True
        asyncio.get_running_loop().call_later(CLOSE_GRACE, node.abort)
        if up.closed:
            return  # the client's own closing frame has passed
        if not up.between_frames:
            node.abort()
            return
        node.write(close_frame(code, reason, mask=os.urandom(4)))
        if node.can_write_eof():
            node.write_eof()
        if not self._client.is_closing():
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
