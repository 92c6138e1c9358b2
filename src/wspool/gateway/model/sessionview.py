"""What a relayed session holds on its node, read from the node's own frames.

To move a client to another node the gateway needs its subscriptions and, for each, the
offset of the last message that reached the client. The node writes its frames itself
(``wspool.core.protocol``), so their bytes have a fixed shape, and a :class:`SessionView`
reads them without parsing every frame as JSON:

- ``data``: ``{"type":"data","channel":"<channel>",...,"offset":"<epoch>:<n>"}``, the
  channel at a known place at the start, the offset the last member
  (:func:`wspool.core.history.with_offset`); found with a prefix test and a bounded search
  at each end. With one subscription (the common case) even that waits: only the last
  data frame's final bytes are kept, read when the view is asked.
- ``subscribed`` / ``unsubscribed``: rare, parsed. A ``subscribed`` names the channel's
  position when the subscription took effect; one answering ``since`` with
  ``recovered: true`` is followed by the history after ``since``, whose first frame gives
  the position (until it arrives the channel's position is unknown, and the session cannot
  be moved without a gap).
- ``authenticated``: rarer still, parsed; the token the client renewed holds
  (:class:`~wspool.gateway.model.renewal.Renewals`, which reads the client's side).

:class:`Resumption` is the other half: the subscribes that restore the session on the new
node, from the positions, and the reading of the new node's answers, which are the
gateway's and never reach the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from wspool.core.protocol import HANDOVER_NOTICE, ErrorCode, encode_error
from wspool.gateway.model.framing import CLOSE, PING, TEXT, frame_end
from wspool.gateway.model.renewal import Renewals

__all__ = [
    "RESUME_PREFIX",
    "Resumption",
    "SessionView",
    "Step",
    "channel_offset",
    "not_delivered",
]

_DATA = b'{"type":"data","channel":"'
_SUBSCRIBED = b'{"type":"subscribed",'
_UNSUBSCRIBED = b'{"type":"unsubscribed",'
_CONNECTED = b'{"type":"connected",'
_AUTHENTICATED = b'{"type":"authenticated",'
_OFFSET = b',"offset":"'
_TYPE = len(b'{"type":"')
_D = ord("d")
_TAIL = 72
"""Bytes at a data frame's end that hold its offset: ``,"offset":"`` (11), an epoch of at
most 32 characters, ``:``, at most 18 digits and ``"}``."""
_CHANNEL_END = len(_DATA) + 129
RESUME_PREFIX = "wspool-gateway-resume-"
"""The ``messageId`` of the gateway's own subscribes, whose answers it keeps to itself."""


class SessionView:
    """A session's subscriptions and, per channel, the last offset passed to its client;
    and its client's renewed token.

    :meth:`frame` is a :class:`~wspool.gateway.model.framing.FrameScanner`'s ``watch``.
    """

    __slots__ = ("_channels", "_single", "_tail", "greeted", "renewals")

    def __init__(self) -> None:
        self.renewals = Renewals()
        self.greeted = False
        """Whether the client has its ``connected`` (a new node's is then the gateway's)."""
        self._channels: dict[str, str | None] = {}
        self._single = False
        """Exactly one subscription: its data frames' ends are kept, not read."""
        self._tail = b""
        """The end of the last data frame, not read yet (one subscription: it is its)."""

    def frame(self, data: bytes, start: int, stop: int) -> None:
        """One text message from the node, ``data[start:stop]``, on its way to the client."""
        # Every frame of a node begins with {"type":" and only data's type begins with d:
        # one byte tells a data frame (the whole prefix is checked where it is read).
        if stop - start > _TYPE and data[start + _TYPE] == _D:
            if self._single:
                # The node sends a session only the data of its channels, so with one
                # subscription the channel is known: only the offset at the end is kept
                # (bytes before the frame, in a short one, are harmless: the offset is last).
                self._tail = data[stop - _TAIL if stop > _TAIL else 0 : stop]
            elif data.startswith(_DATA, start):
                self._data(data, start, stop)
        elif data.startswith(_SUBSCRIBED, start) or data.startswith(_UNSUBSCRIBED, start):
            self._settle()
            self.answer(orjson.loads(data[start:stop]))
        elif data.startswith(_CONNECTED, start):
            self.greeted = True
        elif data.startswith(_AUTHENTICATED, start):
            self.renewals.accepted(orjson.loads(data[start:stop]))

    def answer(self, frame: dict[str, Any]) -> None:
        """A ``subscribed`` or ``unsubscribed`` the client gets."""
        channel = frame.get("channel")
        offset = frame.get("offset")
        if not isinstance(channel, str):
            return
        if frame.get("type") == "unsubscribed":
            self._channels.pop(channel, None)
        elif isinstance(offset, str):  # without one: already subscribed, nothing changes
            self._channels[channel] = None if frame.get("recovered") is True else offset
        self._single = len(self._channels) == 1

    def positions(self) -> dict[str, str | None]:
        """Each subscribed channel and the offset of the last message its client got
        (None: not known, the history that follows ``since`` has not begun yet)."""
        self._settle()
        return dict(self._channels)

    def _settle(self) -> None:
        tail, self._tail = self._tail, b""
        if not tail or len(self._channels) != 1:
            return
        offset = _offset(tail, 0, len(tail))
        if offset is not None:
            (channel,) = self._channels
            self._channels[channel] = offset

    def _data(self, data: bytes, start: int, stop: int) -> None:
        found = channel_offset(data, start, stop)
        if found is not None and found[0] in self._channels:
            self._channels[found[0]] = found[1]


def channel_offset(data: bytes | bytearray, start: int, stop: int) -> tuple[str, str] | None:
    """The channel and offset of the data frame ``data[start:stop]`` (None if it is none)."""
    if not data.startswith(_DATA, start):
        return None
    head = start + len(_DATA)
    quote = data.find(b'"', head, min(stop, start + _CHANNEL_END))
    offset = _offset(data, head, stop)
    if quote < 0 or offset is None:
        return None
    return data[head:quote].decode(), offset


def _offset(data: bytes | bytearray, start: int, stop: int) -> str | None:
    """The offset a data frame ends with, ``data[start:stop]`` holding its end."""
    found = data.rfind(_OFFSET, max(start, stop - _TAIL), stop)
    return None if found < 0 else data[found + len(_OFFSET) : stop - 2].decode()


@dataclass(frozen=True, slots=True)
class Step:
    """What :meth:`Resumption.read` made of the new node's bytes so far."""

    passing: bytes
    """Whole frames for the client: history, live frames, the node's pings."""
    messages: int
    """Text messages among them."""
    closing: bytes | None
    """The payload of the closing frame the new node sent, if it did (nothing follows)."""
    rest: bytes
    """Once the session is restored: what followed, to relay as usual."""


class Resumption:
    """Restoring a session on a new node: the subscribes to send, and its answers.

    The new node's ``connected`` and the answers to these subscribes are the gateway's; the
    client already has its own. So is a handover notice, should the new node drain already
    (:attr:`noticed`). The session is restored once every subscribe is answered
    with ``recovered: true``; any other answer means it cannot be restored without a gap.
    """

    __slots__ = ("_unread", "_waiting", "failed", "greeted", "noticed")

    def __init__(self, positions: dict[str, str]) -> None:
        self._unread = bytearray()
        self._waiting = {
            f"{RESUME_PREFIX}{n}": (channel, since)
            for n, (channel, since) in enumerate(positions.items())
        }
        self.failed: str | None = None
        """Why the session cannot be restored, once known."""
        self.greeted = False
        self.noticed = False
        """Whether the new node sent a handover notice (it drains too): kept, not passed."""

    def subscribes(self) -> list[bytes]:
        """The subscribe frames' payloads, one per channel, from its last position."""
        return [
            orjson.dumps(
                {"type": "subscribe", "channel": channel, "since": since, "messageId": message_id}
            )
            for message_id, (channel, since) in self._waiting.items()
        ]

    @property
    def done(self) -> bool:
        return self.greeted and not self._waiting and self.failed is None

    def read(self, data: bytes, view: SessionView | None) -> Step:
        """The new node's next bytes: its answers kept, the rest passed (and shown to
        ``view``, if the client gets them now), up to the end of the last whole frame, a
        closing frame, a failure, or the answer that restores the session."""
        unread = self._unread
        unread += data
        pos = messages = 0
        passing = bytearray()
        while not self.done and self.failed is None:
            frame = frame_end(unread, pos)
            if frame is None:
                break
            opcode, start, end = frame
            payload = bytes(unread[start:end])
            if opcode == CLOSE:
                unread.clear()
                return Step(bytes(passing), messages, payload, b"")
            if opcode == PING and payload == HANDOVER_NOTICE:
                self.noticed = True
            elif opcode != TEXT or not self.keeps(payload):
                passing += unread[pos:end]
                if opcode == TEXT:
                    messages += 1
                    if view is not None:
                        view.frame(payload, 0, len(payload))
            pos = end
        del unread[:pos]
        rest = b""
        if self.done:
            rest, self._unread = bytes(unread), bytearray()
        return Step(bytes(passing), messages, None, rest)

    def keeps(self, payload: bytes) -> bool:
        """Whether this text message from the new node is the gateway's (not passed on)."""
        if not self.greeted:
            if payload.startswith(_CONNECTED):
                self.greeted = True
                return True
            self.failed = "the new node did not greet the session"
            return True
        if payload.startswith(_DATA):
            return False
        frame = orjson.loads(payload)
        message_id = frame.get("messageId") if isinstance(frame, dict) else None
        if not isinstance(message_id, str) or message_id not in self._waiting:
            return False
        channel, _ = self._waiting.pop(message_id)
        if frame.get("type") != "subscribed" or frame.get("recovered") is not True:
            self.failed = f"{channel} could not be resumed"
        return True


_NOT_DELIVERED = (
    "not delivered: the connection's server node went away; reconnect and send it again"
)


def not_delivered(texts: list[bytes]) -> list[bytes]:
    """The ``error`` messages that tell a client which of the messages it sent during a move
    that failed were not delivered: each one with a ``messageId`` (the protocol answers
    nothing else)."""
    errors = []
    for text in texts:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        message_id = frame.get("messageId") if isinstance(frame, dict) else None
        if isinstance(message_id, str):
            errors.append(encode_error(ErrorCode.INTERNAL, _NOT_DELIVERED, message_id).encode())
    return errors
