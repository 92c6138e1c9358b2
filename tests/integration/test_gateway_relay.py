"""The gateway passes frames on as they were sent, however they arrive, and compresses none.

A real gateway in front of one real node: a message sent in fragments, written a byte at a
time (so headers and payloads are split across the gateway's reads), reaches the node whole;
a ping goes to the node and its pong comes back; a client offering permessage-deflate gets
no extension, since the gateway does not negotiate one on the node's behalf. The gateway
reads a connection's first request itself: a handshake split across reads is relayed, frames
written right behind it reach the node, and an upgrade that follows other requests on a
keep-alive connection is relayed too.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from tests.support.processes import Farm, running_farm
from tests.support.rawsocket import handshake, metric, open_websocket
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, nodes=1, gateway_id="gw-relay") as farm:
        yield farm


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame from the server (unmasked): its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def _until(reader: asyncio.StreamReader, opcode: Opcode) -> bytes:
    """Skip frames up to the first of ``opcode``: its payload."""
    async with asyncio.timeout(10):
        while True:
            found, payload = await _read_frame(reader)
            if found == opcode.value:
                return payload


async def _reply_to(reader: asyncio.StreamReader, message_id: str) -> dict[str, object]:
    async with asyncio.timeout(10):
        while True:
            opcode, payload = await _read_frame(reader)
            if opcode == Opcode.TEXT.value:
                frame = json.loads(payload)
                if frame.get("messageId") == message_id:
                    return dict(frame)


async def test_a_fragmented_message_written_a_byte_at_a_time_reaches_the_node_whole(
    farm: Farm,
) -> None:
    reader, writer = await open_websocket(farm.gateway.port)
    text = json.dumps({"type": "subscribe", "channel": "in-pieces", "messageId": "m1"}).encode()
    pieces = [text[:10], text[10:30], text[30:]]
    stream = b"".join(
        Frame(Opcode.TEXT if i == 0 else Opcode.CONT, piece, i == len(pieces) - 1).serialize(
            mask=True
        )
        for i, piece in enumerate(pieces)
    )
    for byte in range(len(stream)):
        writer.write(stream[byte : byte + 1])
        await writer.drain()
        await asyncio.sleep(0.001)
    reply = await _reply_to(reader, "m1")
    assert reply["type"] == "subscribed"
    writer.close()


async def test_a_ping_reaches_the_node_and_its_pong_comes_back(farm: Farm) -> None:
    reader, writer = await open_websocket(farm.gateway.port)
    writer.write(Frame(Opcode.PING, b"are you there").serialize(mask=True))
    assert await _until(reader, Opcode.PONG) == b"are you there"
    writer.close()


async def test_a_client_offering_compression_gets_none_and_is_served(farm: Farm) -> None:
    async with connect(farm.gateway.url, open_timeout=5) as ws:  # offers permessage-deflate
        assert ws.protocol.extensions == []
        await ws.send(json.dumps({"type": "subscribe", "channel": "plain", "messageId": "m1"}))
        async with asyncio.timeout(10):
            while (reply := json.loads(await ws.recv())).get("messageId") != "m1":
                pass
        assert reply["type"] == "subscribed"


async def test_a_handshake_split_across_reads_with_frames_behind_it_is_relayed(
    farm: Farm,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", farm.gateway.port)
    request = handshake()
    subscribe = json.dumps({"type": "subscribe", "channel": "early", "messageId": "e1"})
    frames = Frame(Opcode.TEXT, subscribe.encode()).serialize(mask=True)
    # The head's end is split between two reads; the first frame rides in the second.
    writer.write(request[:20])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(request[20:-1])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(request[-1:] + frames)
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    reply = await _reply_to(reader, "e1")
    assert reply["type"] == "subscribed"
    writer.close()


async def test_an_upgrade_after_another_request_on_its_connection_is_relayed(farm: Farm) -> None:
    # Node's WebSocket shares its keep-alive pool with fetch: its upgrade can follow a call.

    async def idle() -> bool:  # the tests before have closed theirs: only /metrics' own
        return metric(farm.gateway.http, "wspool_gateway_open_files") == 1

    await eventually(idle, within=10, interval=0.1, message="no client connected")
    reader, writer = await asyncio.open_connection("127.0.0.1", farm.gateway.port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    writer.write(handshake())
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    subscribe = json.dumps({"type": "subscribe", "channel": "kept-alive", "messageId": "k1"})
    writer.write(Frame(Opcode.TEXT, subscribe.encode()).serialize(mask=True))
    assert (await _reply_to(reader, "k1"))["type"] == "subscribed"
    writer.write(Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True))
    assert await _until(reader, Opcode.CLOSE) == b"\x03\xe8"  # the node's answer
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # and the gateway ends the connection
    writer.close()

    # Both of its sockets (the client's, the node's) are released, each once.
    await eventually(idle, within=10, interval=0.1, message="the sockets released")
