"""WebSocket frame headers (RFC 6455, 5.2), read from a byte stream the gateway passes on.

The relay moves bytes, not messages: a :class:`FrameScanner` per direction walks the stream
header by header, skipping payloads without copying them, and says how much of each chunk
may pass. That is enough for what the gateway enforces: where frames begin and end (so that
its own closing frame lands between two frames), how many messages passed, a frame that
announces more than the limit (refused before its payload is read), and the closing frame
(after which nothing more passes). Masked frames stay masked: the client's frames reach the
node as the client masked them.

Each frame's header is read at the point where its payload's offset in the chunk is known,
which is where a reader of chosen payloads (a subscription, a message's offset) would hook
in, without re-framing anything. :func:`close_frame` builds the gateway's own closing frames.
"""

from __future__ import annotations

import struct

__all__ = ["CLOSE", "FrameScanner", "close_frame"]

CLOSE = 0x8
_FIN = 0x80
_MASKED = 0x80
_CONTROL = 0x8
_MEDIUM = struct.Struct("!H")
_LONG = struct.Struct("!Q")
_UNLIMITED = 1 << 63


class FrameScanner:
    """One direction of a WebSocket stream, followed header by header.

    :meth:`feed` returns the part of each chunk that may pass on. It keeps back a header
    that is not complete yet (it passes with the next chunk), so whatever has passed always
    ends inside a payload or between frames, never inside a header. It stops, and passes
    nothing more, at the start of a frame announcing more than ``limit`` bytes
    (:attr:`oversized`), after a closing frame (:attr:`closed`), or at the first frame
    boundary once :meth:`stop` was called.
    """

    __slots__ = ("_held", "_remaining", "_stopping", "closed", "limit", "messages", "oversized")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = _UNLIMITED if limit is None else limit
        self.messages = 0
        """Messages whose last frame has passed (data frames with FIN set), to be collected."""
        self.closed = False
        self.oversized = False
        self._held = b""
        self._remaining = 0
        self._stopping = False

    @property
    def between_frames(self) -> bool:
        """Whether what has passed so far ends between two frames."""
        return self._remaining == 0

    @property
    def stopped(self) -> bool:
        """Whether nothing more passes: a closing frame passed, a frame was too large, or
        :meth:`stop` took effect."""
        return (self._stopping and self._remaining == 0) or self.oversized

    def stop(self) -> None:
        """Pass nothing beyond the end of the current frame."""
        self._stopping = True

    def feed(self, data: bytes) -> bytes:
        """Scan ``data``; return the part of it (with any header held back) that may pass."""
        if (self._stopping and self._remaining == 0) or self.oversized:
            return b""
        if self._held:
            data = self._held + data
            self._held = b""
        end = len(data)
        pos = self._remaining
        while pos < end:
            if self._stopping:
                self._remaining = 0
                return data[:pos]
            first = data[pos]
            if end - pos < 2:
                break
            second = data[pos + 1]
            length = second & 0x7F
            head = 6 if second & _MASKED else 2
            if length == 126:
                head += 2
                if end - pos < head:
                    break
                length = _MEDIUM.unpack_from(data, pos + 2)[0]
            elif length == 127:
                head += 8
                if end - pos < head:
                    break
                length = _LONG.unpack_from(data, pos + 2)[0]
            elif end - pos < head:
                break
            if length > self.limit:
                self.oversized = True
                self._remaining = 0
                return data[:pos]
            opcode = first & 0x0F
            if opcode & _CONTROL:
                if opcode == CLOSE:
                    self.closed = True
                    self._stopping = True
            elif first & _FIN:
                self.messages += 1
            pos += head + length
        else:
            self._remaining = pos - end
            if self._stopping and pos == end:
                self._remaining = 0
            return data
        self._remaining = 0
        self._held = data[pos:]
        return data[:pos]


def close_frame(code: int, reason: bytes = b"", *, mask: bytes | None = None) -> bytes:
    """A closing frame with ``code`` and ``reason`` (at most 123 bytes): unmasked, as a
    server sends it, or masked with the 4-byte ``mask``, as a client must send it."""
    payload = code.to_bytes(2, "big") + reason[:123]
    if mask is None:
        return bytes((_FIN | CLOSE, len(payload))) + payload
    key = mask
    hidden = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes((_FIN | CLOSE, _MASKED | len(payload))) + key + hidden
