"""Speaking WebSocket by hand, for the clients no library lets you be: a frame announced far
larger than it will ever be, a handshake sent half-way and left there."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import urllib.request

__all__ = [
    "frame_header",
    "half_sent_handshakes",
    "handshake",
    "metric",
    "open_websocket",
    "read_close_code",
]

_HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
)


def handshake() -> bytes:
    """An opening handshake for ``/ws``, with a fresh key."""
    return _HANDSHAKE.format(key=base64.b64encode(os.urandom(16)).decode()).encode()


async def open_websocket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection past its opening handshake (the 101 read), frames still unread."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(handshake())
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one final, masked client frame of ``length`` payload bytes (mask 0)."""
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | length) + bytes(4)
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length) + bytes(4)
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length) + bytes(4)


async def read_close_code(reader: asyncio.StreamReader) -> int:
    """Skip the server's data frames; the code of its close frame (1006 when there is none)."""
    try:
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(length)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
    except (asyncio.IncompleteReadError, ConnectionError):
        return 1006


async def half_sent_handshakes(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections that send the start of a request and then nothing, ever."""
    opened = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        opened.append((reader, writer))
    return opened


def metric(base_url: str, name: str) -> float:
    """One unlabelled sample of a Prometheus text page (``base_url`` + ``/metrics``)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in {base_url}/metrics")
