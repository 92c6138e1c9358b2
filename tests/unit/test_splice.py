"""One relayed connection over real sockets: what each side reads, and how it ends.

A :class:`Splice` joins two socket pairs, as the gateway joins a client's socket and its
node's: frames pass untouched both ways; the gateway's own closing frames (1009 to both, 1012
to the client, 1000 in answer to a node) are well-formed frames between the others; a node
gone in the middle of a frame drops its client rather than send it a cut frame.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import pytest
from websockets.frames import Close, Frame, Opcode

from tests.support.frames import parse_frames
from tests.support.splices import ClientSide, Counts, node_pair
from wspool.gateway.splice import Ending, Splice
from wspool.gateway.upstream import NodeLink


@dataclass
class Relay:
    splice: Splice
    counts: Counts
    endings: list[Ending]
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    node: tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    loop = asyncio.get_running_loop()
    client_ours, client_theirs = socket.socketpair()
    client_transport, client_side = await loop.connect_accepted_socket(ClientSide, client_ours)
    link, node = await node_pair()
    counts, endings = Counts(), list[Ending]()
    splice = Splice(
        client_transport,
        link,
        max_frame_bytes=1024,
        send_buffer_limit=1 << 20,
        counts=counts,
        ended=endings.append,
    )
    client_side.splice = splice
    client = await asyncio.open_connection(sock=client_theirs)
    yield Relay(splice, counts, endings, client, node)
    for _, writer in (client, node):
        writer.close()


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read()


async def test_frames_pass_both_ways_as_they_were_written_and_are_counted(relay: Relay) -> None:
    up = Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=True)
    down = b"".join(
        Frame(Opcode.TEXT, data).serialize(mask=False) for data in (b"a", b"b" * 300, b"c")
    )
    relay.client[1].write(up[:3])
    await asyncio.sleep(0.01)
    relay.client[1].write(up[3:])
    relay.node[1].write(down)
    async with asyncio.timeout(5):
        assert await relay.node[0].readexactly(len(up)) == up
        assert await relay.client[0].readexactly(len(down)) == down
    assert (relay.counts.messages_to_server, relay.counts.messages_to_client) == (1, 3)


async def test_a_client_frame_over_the_limit_closes_both_sides_with_1009(relay: Relay) -> None:
    relay.client[1].write(Frame(Opcode.BINARY, bytes(2000)).serialize(mask=True)[:500])
    (to_node,) = parse_frames(await _read_to_end(relay.node[0]), mask=True)
    assert Close.parse(to_node.data).code == 1009
    (to_client,) = parse_frames(await _read_to_end(relay.client[0]), mask=False)
    assert Close.parse(to_client.data).code == 1009
    assert relay.endings == [Ending.TOO_BIG]


async def test_a_node_gone_between_frames_sends_its_client_1012(relay: Relay) -> None:
    sent = Frame(Opcode.TEXT, b"last words").serialize(mask=False)
    relay.node[1].write(sent)
    await asyncio.sleep(0.01)
    relay.node[1].close()
    frames = parse_frames(await _read_to_end(relay.client[0]), mask=False)
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert Close.parse(frames[1].data) == Close(1012, "server node lost")
    assert relay.endings == [Ending.LOST]
    await asyncio.wait_for(relay.splice.finished, 5)


async def test_a_node_gone_in_the_middle_of_a_frame_drops_its_client(relay: Relay) -> None:
    cut = Frame(Opcode.TEXT, b"x" * 500).serialize(mask=False)[:100]
    relay.node[1].write(cut)
    await asyncio.sleep(0.01)
    relay.node[1].close()
    # The cut frame, then the end of the connection: no closing frame inside a frame.
    assert await _read_to_end(relay.client[0]) == cut
    assert relay.endings == [Ending.LOST]


async def test_a_nodes_closing_frame_reaches_the_client_and_is_answered_for_it(
    relay: Relay,
) -> None:
    closing = Frame(Opcode.CLOSE, Close(1012, "server draining").serialize()).serialize(mask=False)
    relay.node[1].write(closing)
    async with asyncio.timeout(5):
        assert await relay.client[0].readexactly(len(closing)) == closing
    (answer,) = parse_frames(await _read_to_end(relay.node[0]), mask=True)
    assert Close.parse(answer.data).code == 1000
    relay.node[1].close()
    await asyncio.wait_for(relay.splice.finished, 5)
    assert await _read_to_end(relay.client[0]) == b""  # then the end of the stream
    assert relay.endings == []


_ANSWER = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
_CONNECTED = Frame(Opcode.TEXT, b'{"type":"connected"}').serialize(mask=False)


class _CountedWrites:
    """A client transport that counts the writes made to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


def _ignore(_: object) -> None:
    pass


async def _spliced_after(answer: bytes, *, node_closed: bool = False) -> tuple[Relay, int]:
    """A splice whose node link read ``answer`` (its 101 and what came with it), the 101
    passed on as the splice's preface; the client's transport counts its writes."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    _, link = await loop.connect_accepted_socket(NodeLink, ours)
    link.data_received(answer)
    node = await asyncio.open_connection(sock=theirs)
    if node_closed:  # (the answer alone: nothing kept for the splice)
        gone = loop.create_future()
        link.relay_to(_ignore, lambda: gone.set_result(None), _ignore)
        node[1].close()
        await asyncio.wait_for(gone, 5)
    client_ours, client_theirs = socket.socketpair()
    client_transport, client_side = await loop.connect_accepted_socket(ClientSide, client_ours)
    counted = _CountedWrites(client_transport)
    counts, endings = Counts(), list[Ending]()
    splice = Splice(
        cast(asyncio.Transport, counted),
        link,
        max_frame_bytes=1024,
        send_buffer_limit=1 << 20,
        counts=counts,
        ended=endings.append,
        preface=_ANSWER,
    )
    client_side.splice = splice
    client = await asyncio.open_connection(sock=client_theirs)
    return Relay(splice, counts, endings, client, node), counted.writes


async def test_the_nodes_101_and_a_frame_that_came_with_it_leave_in_one_write() -> None:
    relay, writes = await _spliced_after(_ANSWER + _CONNECTED)
    async with asyncio.timeout(5):
        assert await relay.client[0].readexactly(len(_ANSWER + _CONNECTED)) == _ANSWER + _CONNECTED
    assert writes == 1
    assert relay.counts.messages_to_client == 1
    await _end(relay)


async def test_the_nodes_101_leaves_at_once_when_its_first_frame_is_still_on_its_way() -> None:
    relay, writes = await _spliced_after(_ANSWER)
    async with asyncio.timeout(5):
        assert await relay.client[0].readexactly(len(_ANSWER)) == _ANSWER
    assert writes == 1
    relay.node[1].write(_CONNECTED)
    async with asyncio.timeout(5):
        assert await relay.client[0].readexactly(len(_CONNECTED)) == _CONNECTED
    await _end(relay)


async def test_a_node_lost_before_the_splice_began_sends_its_client_101_then_1012() -> None:
    relay, _ = await _spliced_after(_ANSWER, node_closed=True)
    received = await _read_to_end(relay.client[0])
    assert received.startswith(_ANSWER)
    (closing,) = parse_frames(received[len(_ANSWER) :], mask=False)
    assert Close.parse(closing.data) == Close(1012, "server node lost")
    assert relay.endings == [Ending.LOST]
    await _end(relay)


async def _end(relay: Relay) -> None:
    relay.node[1].close()
    await asyncio.wait_for(relay.splice.finished, 5)
    relay.client[1].close()
    await relay.client[1].wait_closed()
