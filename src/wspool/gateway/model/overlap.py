"""The switch of a handed-over session from its draining node's stream to the new node's.

At the switch the client has had, per channel, every message up to an offset (the
session's :class:`~wspool.gateway.model.sessionview.SessionView` positions). The new node
replays each channel from an offset at or before that one (the ``since`` its subscribe
named, taken a little earlier) and goes on live, so the two streams overlap. An
:class:`Overlap` reads the new node's stream from the switch on and drops every data
message the client already has, until each channel has passed one it has not: nothing
twice, nothing missed, in order. Every other frame passes as it came.
"""

from __future__ import annotations

from wspool.core.history import StreamPosition
from wspool.gateway.model.framing import TEXT, frame_end
from wspool.gateway.model.sessionview import channel_offset

__all__ = ["Overlap"]


class Overlap:
    """The new node's frames, filtered until every channel is past what its client has."""

    __slots__ = ("_had", "_unread")

    def __init__(self, forwarded: dict[str, str]) -> None:
        self._had = {channel: StreamPosition.parse(offset) for channel, offset in forwarded.items()}
        """Per channel not caught up yet, the position of the last message its client has."""
        self._unread = bytearray()

    @property
    def done(self) -> bool:
        """Whether every channel is past the overlap: from here on, frames pass as they come."""
        return not self._had

    def filter(self, data: bytes) -> bytes:
        """The new node's next bytes without the messages the client already has. A frame
        not complete yet is kept until it is; once :attr:`done`, what is kept and ``data``
        pass whole."""
        if not self._had and not self._unread:
            return data
        unread = self._unread
        unread += data
        passing = bytearray()
        pos = 0
        while self._had and (frame := frame_end(unread, pos)) is not None:
            opcode, start, end = frame
            if opcode != TEXT or not self._had_already(unread, start, end):
                passing += unread[pos:end]
            pos = end
        if self._had:
            del unread[:pos]
        else:
            passing += unread[pos:]
            unread.clear()
        return bytes(passing)

    def _had_already(self, frame: bytearray, start: int, end: int) -> bool:
        """Whether the text message ``frame[start:end]`` is a data message its client has;
        the first one it has not ends the overlap of its channel."""
        found = channel_offset(frame, start, end)
        if found is None or found[0] not in self._had:
            return False
        channel, offset = found
        position = StreamPosition.parse(offset)
        had = self._had[channel]
        if position.epoch == had.epoch and position.offset <= had.offset:
            return True
        del self._had[channel]
        return False
