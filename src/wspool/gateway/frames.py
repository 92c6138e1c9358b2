"""Frames from a node to one client, written to the client's socket in one send per batch.

A node's frames reach the gateway many to a read; written one by one, each would cost a
``send()`` of its own, the larger part of the gateway's CPU per relayed frame. A
:class:`ClientFrames` frames each message as a server does (unmasked, whole, no extension
bits) and keeps it until the event loop's next turn, or until :meth:`ClientFrames.flush`,
whichever comes first: what one read brought leaves in one write, in order, and no later
than the loop would have sent it anyway.
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp import ClientConnectionResetError

__all__ = ["ClientFrames"]

_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_FIN = 0x80


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final frame of ``length`` payload bytes (RFC 6455, 5.2)."""
    if length < 126:
        return bytes((_FIN | opcode, length))
    if length < 1 << 16:
        return _MEDIUM.pack(_FIN | opcode, 126, length)
    return _LONG.pack(_FIN | opcode, 127, length)


class ClientFrames:
    """Data frames for one client's ``transport``, sent together on the loop's next turn.

    Only data frames pass here; a closing frame goes through aiohttp's writer, after
    :meth:`flush`, so it leaves behind every frame queued before it.
    """

    __slots__ = ("_chunks", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes, opcode: int) -> None:
        """Queue one message as a frame; raises if the client's socket is closing."""
        if self._transport.is_closing():
            raise ClientConnectionResetError("Cannot write to closing transport")
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(frame_header(opcode, len(data)))
        self._chunks.append(data)
        self._size += len(data)

    @property
    def buffered(self) -> int:
        """Bytes the client's socket did not take: the transport's buffer, and once that
        holds anything (the socket is full), what is queued here behind it."""
        waiting = self._transport.get_write_buffer_size()
        return waiting + self._size if waiting else 0

    def flush(self) -> None:
        """Hand everything queued to the transport now (nothing when already sent)."""
        if not self._chunks:
            return
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)
