"""The gateway's frames to a client: whole, unmasked, in order, one write per loop turn."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from wspool.gateway.frames import ClientFrames


def _parse(data: bytes, count: int) -> list[Frame]:
    """``count`` frames as a WebSocket client reads them (unmasked, from a server); raises
    if ``data`` holds fewer, or more."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    for _ in range(count):
        parser = Frame.parse(reader.read_exact, mask=False)
        with pytest.raises(StopIteration) as done:
            next(parser)
        frames.append(done.value.value)
    assert reader.buffer == b""
    return frames


@pytest.mark.parametrize("length", [0, 125, 126, 65_535, 65_536])
async def test_a_batch_reaches_the_client_as_the_frames_written_in_order(length: int) -> None:
    ours, theirs = socket.socketpair()
    with theirs:
        _, writer = await asyncio.open_connection(sock=ours)
        frames = ClientFrames(writer.transport)  # type: ignore[arg-type]
        payloads = [b"a" * length, b'{"type":"message"}', b"\x00\xff"]
        frames.write(payloads[0], Opcode.TEXT.value)
        frames.write(payloads[1], Opcode.TEXT.value)
        frames.write(payloads[2], Opcode.BINARY.value)
        assert frames.buffered == 0  # queued for the loop's next turn, the socket not full
        await asyncio.sleep(0)
        writer.close()
        await writer.wait_closed()
        received = b""
        while chunk := theirs.recv(1 << 20):
            received += chunk
    parsed = _parse(received, 3)
    assert [(f.opcode, f.data, f.fin) for f in parsed] == [
        (Opcode.TEXT, payloads[0], True),
        (Opcode.TEXT, payloads[1], True),
        (Opcode.BINARY, payloads[2], True),
    ]
