"""WebSocket frame headers (RFC 6455, 5.2), read from a byte stream the gateway passes on.

The relay moves bytes, not messages: a :class:`FrameScanner` per direction walks the stream
header by header, skipping payloads without copying them, and says how much of each chunk
may pass. That is enough for what the gateway enforces: where frames begin and end (so that
its own closing frame lands between two frames), how many messages passed, a frame that
announces more than the limit (refused before its payload is read), and the closing frame
(after which nothing more passes). Masked frames stay masked: the client's frames reach the
node as the client masked them.

Each frame's header is read at the point where its payload's offset in the chunk is known,
which is where a :class:`FrameScanner`'s ``watch`` hooks in: it is handed every complete
text message (in place when it lies in one chunk, copied together when it spans several),
which is how the gateway follows a session's subscriptions and offsets
(``wspool.gateway.model.sessionview``) without re-framing anything. With ``hold_close`` a
node's closing frame is kept back instead of passed, so the gateway can decide what the
client sees; with ``notice`` a ping carrying that payload (a draining node's handover notice)
is taken out of the stream and counted in :attr:`FrameScanner.noticed`, and so is a text
message equal to ``barrier`` (:attr:`FrameScanner.barred`). :func:`close_frame`
and :func:`text_frame` build the gateway's own frames; :func:`frame_end` finds where a
complete frame ends in a buffer, :func:`client_texts` reads back, unmasked, the messages a
client sent while its session was between two nodes, and :func:`masked` (un)masks a payload.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = [
    "CLOSE",
    "PING",
    "TEXT",
    "FrameScanner",
    "client_texts",
    "close_frame",
    "frame_end",
    "masked",
    "text_frame",
]

TEXT = 0x1
CLOSE = 0x8
PING = 0x9
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
    boundary once :meth:`stop` was called; what it did not pass from there on is kept for
    :meth:`take_rest`.
    """

    __slots__ = (
        "_capture",
        "_held",
        "_remaining",
        "_rest",
        "_stopping",
        "barred",
        "barrier",
        "closed",
        "held_close",
        "hold_close",
        "limit",
        "messages",
        "notice",
        "noticed",
        "oversized",
        "watch",
        "watch_limit",
    )

    def __init__(
        self,
        limit: int | None = None,
        *,
        watch: Callable[[bytes, int, int], None] | None = None,
        watch_limit: int | None = None,
        hold_close: bool = False,
        notice: bytes | None = None,
    ) -> None:
        self.limit = _UNLIMITED if limit is None else limit
        self.messages = 0
        """Messages whose last frame has passed (data frames with FIN set), to be collected."""
        self.closed = False
        self.oversized = False
        self.watch = watch
        """Called with ``(buffer, start, stop)`` for each unfragmented text message of at
        most ``watch_limit`` bytes; a masked one is handed with its 4-byte key in front."""
        self.watch_limit = _UNLIMITED if watch_limit is None else watch_limit
        self.hold_close = hold_close
        self.held_close: bytes | None = None
        """The payload of the closing frame kept back (with ``hold_close``)."""
        self.notice = notice
        self.noticed = 0
        """Pings with the ``notice`` payload taken out of the stream, to be collected."""
        self.barrier: bytes | None = None
        """A text message to take out of the stream when it comes (set while awaited)."""
        self.barred = 0
        """Text messages equal to ``barrier`` taken out of the stream, to be collected."""
        self._capture: bytearray | None = None
        self._held = b""
        self._remaining = 0
        self._rest = b""
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

    def resume(self) -> bytes:
        """Undo :meth:`stop`: frames pass again; returns what was kept, to feed again."""
        self._stopping = False
        return self.take_rest()

    def take_rest(self) -> bytes:
        """What was fed but not passed after :meth:`stop` took effect (frames not begun)."""
        rest, self._rest, self._held = self._rest + self._held, b"", b""
        return rest

    def feed(self, data: bytes) -> bytes:
        """Scan ``data``; return the part of it (with any header held back) that may pass."""
        if (self._stopping and self._remaining == 0) or self.oversized:
            return b""
        if self._held:
            data = self._held + data
            self._held = b""
        end = len(data)
        pos = self._remaining
        if self._capture is not None:
            self._capture += data[:pos]
            if pos <= end:
                self._watched()
        watch = self.watch
        while pos < end:
            if self._stopping:
                self._remaining = 0
                self._rest = data[pos:]
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
                if opcode == PING and self.notice is not None and length == len(self.notice):
                    if end - pos < head + length:
                        break  # kept back whole
                    if data[pos + head : pos + head + length] == self.notice:
                        self.noticed += 1
                        data = data[:pos] + data[pos + head + length :]
                        end = len(data)
                        continue
                if opcode == CLOSE:
                    if self.hold_close:
                        if end - pos < head + length:
                            break  # kept back whole
                        self.held_close = data[pos + head : pos + head + length]
                        self.closed = True
                        self._stopping = True
                        self._remaining = 0
                        return data[:pos]
                    self.closed = True
                    self._stopping = True
            elif first & _FIN:
                barrier = self.barrier
                if barrier is not None and opcode == TEXT and length == len(barrier):
                    if end - pos < head + length:
                        break  # kept back whole
                    if data[pos + head : pos + head + length] == barrier:
                        self.barred += 1
                        data = data[:pos] + data[pos + head + length :]
                        end = len(data)
                        continue
                self.messages += 1
                if watch is not None and opcode == TEXT and length <= self.watch_limit:
                    start = pos + head - 4 if second & _MASKED else pos + head
                    stop = pos + head + length
                    if stop <= end:
                        watch(data, start, stop)
                    else:
                        self._capture = bytearray(data[start:])
            pos += head + length
        else:
            self._remaining = pos - end
            if self._stopping and pos == end:
                self._remaining = 0
            return data
        self._remaining = 0
        self._held = data[pos:]
        return data[:pos]

    def _watched(self) -> None:
        captured, self._capture = bytes(self._capture or b""), None
        if self.watch is not None:
            self.watch(captured, 0, len(captured))


def frame_end(buffer: bytes | bytearray, pos: int = 0) -> tuple[int, int, int] | None:
    """The complete frame at ``pos``: ``(opcode, payload start, end)``, or None while it is
    not all in ``buffer`` yet (a masked frame's 4-byte key is just before its payload)."""
    end = len(buffer)
    if end - pos < 2:
        return None
    length = buffer[pos + 1] & 0x7F
    mask = 4 if buffer[pos + 1] & _MASKED else 0
    head = 2
    if length == 126:
        head = 4
        if end - pos < head:
            return None
        length = _MEDIUM.unpack_from(buffer, pos + 2)[0]
    elif length == 127:
        head = 10
        if end - pos < head:
            return None
        length = _LONG.unpack_from(buffer, pos + 2)[0]
    head += mask
    if end - pos < head + length:
        return None
    return buffer[pos] & 0x0F, pos + head, pos + head + length


def client_texts(buffer: bytes | bytearray) -> list[bytes]:
    """The unfragmented text messages among the complete client frames in ``buffer``,
    unmasked."""
    texts = []
    at = 0
    while (frame := frame_end(buffer, at)) is not None:
        opcode, start, end = frame
        if opcode == TEXT and buffer[at] & _FIN and buffer[at + 1] & _MASKED:
            texts.append(masked(bytes(buffer[start:end]), bytes(buffer[start - 4 : start])))
        at = end
    return texts


def close_frame(code: int, reason: bytes = b"", *, mask: bytes | None = None) -> bytes:
    """A closing frame with ``code`` and ``reason`` (at most 123 bytes): unmasked, as a
    server sends it, or masked with the 4-byte ``mask``, as a client must send it."""
    payload = code.to_bytes(2, "big") + reason[:123]
    if mask is None:
        return bytes((_FIN | CLOSE, len(payload))) + payload
    return bytes((_FIN | CLOSE, _MASKED | len(payload))) + mask + masked(payload, mask)


def text_frame(payload: bytes, mask: bytes | None = None) -> bytes:
    """A text frame: unmasked, as a server sends it, or as a client sends it, ``payload``
    masked with the 4-byte ``mask``."""
    length = len(payload)
    bit = 0 if mask is None else _MASKED
    if length < 126:
        head = bytes((_FIN | TEXT, bit | length))
    elif length < 1 << 16:
        head = bytes((_FIN | TEXT, bit | 126)) + _MEDIUM.pack(length)
    else:
        head = bytes((_FIN | TEXT, bit | 127)) + _LONG.pack(length)
    if mask is None:
        return head + payload
    return head + mask + masked(payload, mask)


def masked(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``mask`` repeated: masked, or unmasked if it was masked."""
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        len(payload), "big"
    )
