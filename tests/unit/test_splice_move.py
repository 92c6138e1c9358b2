"""A seamless splice over real sockets: its session moves to another node, the client stays.

The client's socket and two nodes' sockets are socket pairs. The first node is lost, or
drains; what the client reads must be one unbroken stream, what the second node reads the
subscribe that resumes the session and then what the client sent meanwhile. A drain's
handover notice moves the session while the first node still delivers: the client's stream
goes on from the first node's frames to the second's, without an overlap.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from websockets.frames import Close, Frame, Opcode

from tests.support.frames import parse_frames
from tests.support.splices import ClientSide, Counts, Pair, node_pair
from wspool.core.history import StreamPosition, with_offset
from wspool.core.protocol import (
    HANDOVER_BARRIER,
    HANDOVER_NOTICE,
    encode_connected,
    encode_data,
    encode_pong,
    encode_subscribed,
)
from wspool.gateway.splice import Ending, Splice
from wspool.gateway.upstream import NodeLink


@dataclass
class Moving:
    splice: Splice
    client: Pair
    node: Pair
    endings: list[Ending]
    moves: list[Ending] = field(default_factory=list)
    handovers: list[Splice] = field(default_factory=list)
    opened: list[asyncio.BaseTransport] = field(default_factory=list)
    handed_over: asyncio.Event = field(default_factory=asyncio.Event)

    async def node_pair(self) -> tuple[NodeLink, Pair]:
        link, node = await node_pair()
        assert link.transport is not None
        self.opened += [link.transport, node[1].transport]
        return link, node


@pytest.fixture
async def moving() -> AsyncIterator[Moving]:
    loop = asyncio.get_running_loop()
    client_ours, client_theirs = socket.socketpair()
    client_transport, client_side = await loop.connect_accepted_socket(ClientSide, client_ours)
    link, node = await node_pair()
    endings: list[Ending] = []
    moves: list[Ending] = []
    handovers: list[Splice] = []
    handed_over = asyncio.Event()

    def hand_over(splice: Splice) -> None:
        handovers.append(splice)
        handed_over.set()

    splice = Splice(
        client_transport,
        link,
        max_frame_bytes=1 << 16,
        send_buffer_limit=1 << 20,
        counts=Counts(),
        ended=endings.append,
        move=lambda _, why: moves.append(why),
        hand_over=hand_over,
    )
    client_side.splice = splice
    client = await asyncio.open_connection(sock=client_theirs)
    assert link.transport is not None
    opened: list[asyncio.BaseTransport] = [
        client_transport,
        link.transport,
        client[1].transport,
        node[1].transport,
    ]
    yield Moving(splice, client, node, endings, moves, handovers, opened, handed_over)
    for transport in opened:
        transport.close()
    await asyncio.sleep(0.01)


def _text(frame: str) -> bytes:
    return Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)


def _data(n: int) -> str:
    return with_offset(encode_data("news", {"n": n}, f"m{n}"), f"e1:{n}")


async def _read_texts(reader: asyncio.StreamReader, count: int) -> list[dict[str, object]]:
    texts: list[dict[str, object]] = []
    buffer = b""
    async with asyncio.timeout(5):
        while len(texts) < count:
            buffer += await reader.read(65536)
            frames = parse_frames(buffer, mask=False) if buffer else []
            texts = [json.loads(bytes(f.data)) for f in frames]
    return texts


async def _subscribed_and_two_messages(moving: Moving) -> None:
    connected = encode_connected("c1", "node-1", "client")
    subscribed = encode_subscribed("news", "s1", StreamPosition("e1", 0))
    moving.node[1].write(_text(connected) + _text(subscribed) + _text(_data(1)) + _text(_data(2)))
    assert [t.get("offset") for t in await _read_texts(moving.client[0], 4)] == [
        None,
        "e1:0",
        "e1:1",
        "e1:2",
    ]


async def _resume_on_a_new_node(moving: Moving) -> Pair:
    """Attach a new node; check it is asked to resume from e1:2; answer as a node does."""
    link, node = await moving.node_pair()
    moving.splice.attach(link)
    async with asyncio.timeout(5):
        head = await node[0].readexactly(2)
        length = head[1] & 0x7F
        rest = await node[0].readexactly(4 + length)
    (subscribe,) = parse_frames(head + rest, mask=True)
    asked = json.loads(bytes(subscribe.data))
    assert (asked["type"], asked["channel"], asked["since"]) == ("subscribe", "news", "e1:2")
    node[1].write(
        _text(encode_connected("c2", "node-2", "client"))
        + _text(encode_subscribed("news", asked["messageId"], StreamPosition("e1", 3), True))
        + _text(_data(3))
        + _text(_data(4))
    )
    return node


async def test_a_lost_nodes_session_continues_on_another_without_a_frame_of_its_own(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].close()
    await asyncio.sleep(0.05)
    assert moving.moves == [Ending.LOST]
    sent_meanwhile = Frame(Opcode.TEXT, b'{"type":"ping","messageId":"p"}').serialize(mask=True)
    moving.client[1].write(sent_meanwhile)
    await asyncio.sleep(0.05)
    node = await _resume_on_a_new_node(moving)
    # The client reads on where it stopped: no connected, no subscribed, no close.
    assert [t["offset"] for t in (await _read_texts(moving.client[0], 2))[-2:]] == ["e1:3", "e1:4"]
    async with asyncio.timeout(5):
        assert await node[0].readexactly(len(sent_meanwhile)) == sent_meanwhile
    assert moving.endings == []
    assert not moving.splice.finished.done()
    node[1].close()


async def test_a_draining_nodes_close_is_kept_from_the_client_and_answered(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    draining = Close(1012, "server draining").serialize()
    moving.node[1].write(Frame(Opcode.CLOSE, draining).serialize(mask=False))
    async with asyncio.timeout(5):
        answer = await moving.node[0].read()
    (closing,) = parse_frames(answer, mask=True)
    assert Close.parse(closing.data).code == 1000
    assert moving.moves == [Ending.CLOSED]
    node = await _resume_on_a_new_node(moving)
    assert [t["offset"] for t in (await _read_texts(moving.client[0], 2))[-2:]] == ["e1:3", "e1:4"]
    node[1].close()


async def test_a_close_that_is_not_a_drain_reaches_the_client_as_it_was_sent(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    interrupted = Frame(Opcode.CLOSE, Close(1012, "subscription interrupted").serialize())
    moving.node[1].write(interrupted.serialize(mask=False))
    async with asyncio.timeout(5):
        received = await moving.client[0].read(4096)
    (closing,) = parse_frames(received, mask=False)
    assert Close.parse(closing.data) == Close(1012, "subscription interrupted")
    assert moving.moves == []


async def test_a_session_no_node_takes_gets_the_1012_it_would_have_had(moving: Moving) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].close()
    await asyncio.sleep(0.05)
    publish = b'{"type":"data","channel":"news","payload":1,"messageId":"mine"}'
    moving.client[1].write(Frame(Opcode.TEXT, publish).serialize(mask=True))
    await asyncio.sleep(0.05)
    moving.splice.unmovable("no node could take it")
    async with asyncio.timeout(5):
        received = await moving.client[0].read()
    # What it sent meanwhile is answered as not delivered, then the close says why.
    answer, closing = parse_frames(received, mask=False)
    error = json.loads(bytes(answer.data))
    assert (error["type"], error["messageId"]) == ("error", "mine")
    assert error["payload"]["message"].startswith("not delivered")
    assert Close.parse(closing.data) == Close(1012, "server node lost")
    assert moving.endings == [Ending.LOST]
    await asyncio.wait_for(moving.splice.finished, 5)


async def test_a_session_whose_history_is_gone_is_not_moved_with_a_gap(moving: Moving) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].close()
    await asyncio.sleep(0.05)
    link, node = await moving.node_pair()
    moving.splice.attach(link)
    async with asyncio.timeout(5):
        head = await node[0].readexactly(2)
        rest = await node[0].readexactly(4 + (head[1] & 0x7F))
    asked = json.loads(bytes(parse_frames(head + rest, mask=True)[0].data))
    node[1].write(
        _text(encode_connected("c2", "node-2", "client"))
        + _text(encode_subscribed("news", asked["messageId"], StreamPosition("e9", 0), False))
    )
    async with asyncio.timeout(5):
        received = await moving.client[0].read()
    (closing,) = parse_frames(received, mask=False)
    assert Close.parse(closing.data) == Close(1012, "server node lost")
    assert moving.splice.unmoved == "news could not be resumed"
    node[1].close()


async def test_a_node_marked_down_is_left_and_its_session_moved(moving: Moving) -> None:
    await _subscribed_and_two_messages(moving)
    moving.splice.node_down()
    assert moving.moves == [Ending.DOWN]
    async with asyncio.timeout(5):
        left = await moving.node[0].read()  # our closing frame, then the connection dropped
    (closing,) = parse_frames(left, mask=True)
    assert Close.parse(closing.data).code == 1001
    node = await _resume_on_a_new_node(moving)
    assert [t["offset"] for t in (await _read_texts(moving.client[0], 2))[-2:]] == ["e1:3", "e1:4"]
    assert moving.endings == []
    node[1].close()


async def test_a_new_node_that_drains_before_the_session_is_restored_passes_it_on(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].close()
    await asyncio.sleep(0.05)
    link, second = await moving.node_pair()
    moving.splice.attach(link)
    draining = Frame(Opcode.CLOSE, Close(1012, "server draining").serialize())
    second[1].write(
        _text(encode_connected("c2", "node-2", "client")) + draining.serialize(mask=False)
    )
    await asyncio.sleep(0.05)
    assert moving.moves == [Ending.LOST, Ending.CLOSED]
    third = await _resume_on_a_new_node(moving)  # asked again from e1:2
    assert [t["offset"] for t in (await _read_texts(moving.client[0], 2))[-2:]] == ["e1:3", "e1:4"]
    assert moving.endings == []
    second[1].close()
    third[1].close()


_NOTICE = Frame(Opcode.PING, HANDOVER_NOTICE).serialize(mask=False)
_PING = Frame(Opcode.TEXT, b'{"type":"ping","messageId":"p"}').serialize(mask=True)


async def _barrier(moving: Moving, before: bytes = b"", answers: bytes = b"") -> None:
    """The draining node gets the gateway's ping behind what the client sent it (``before``),
    and answers it, as a node does, after its ``answers`` to those."""
    ping = json.dumps({"type": "ping", "messageId": HANDOVER_BARRIER}, separators=(",", ":"))
    async with asyncio.timeout(5):
        frames = parse_frames(
            await moving.node[0].readexactly(len(before) + 6 + len(ping)), mask=True
        )
    assert [bytes(f.data) for f in frames] == [
        *(bytes(f.data) for f in parse_frames(before, mask=True)),
        ping.encode(),
    ]
    assert moving.handovers == []  # no next node before the barrier's answer
    moving.node[1].write(answers + _text(encode_pong(HANDOVER_BARRIER)))
    await asyncio.wait_for(moving.handed_over.wait(), 5)  # once the pong is read
    assert moving.handovers == [moving.splice]


async def _asked(node: Pair) -> dict[str, str]:
    """The subscribe a new node is asked for."""
    async with asyncio.timeout(5):
        head = await node[0].readexactly(2)
        rest = await node[0].readexactly(4 + (head[1] & 0x7F))
    asked: dict[str, str] = json.loads(bytes(parse_frames(head + rest, mask=True)[0].data))
    return asked


async def test_a_handed_over_session_switches_after_its_node_s_last_frame_without_overlap(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].write(_NOTICE + _text(_data(3)))
    assert [t["offset"] for t in await _read_texts(moving.client[0], 1)] == ["e1:3"]
    await _barrier(moving)
    moving.client[1].write(_PING)  # kept for the node the session goes on on
    link, node = await moving.node_pair()
    switched = moving.splice.hand_over_to(link)
    asked = await _asked(node)
    assert (asked["channel"], asked["since"]) == ("news", "e1:3")
    moving.node[1].write(_text(_data(4)))  # the old node delivers on meanwhile
    await asyncio.sleep(0.05)
    node[1].write(
        _text(encode_connected("c2", "node-2", "client"))
        + _text(encode_subscribed("news", asked["messageId"], StreamPosition("e1", 3), True))
        + _text(_data(4))  # what the client has already
        + _text(_data(5))
        + _text(encode_pong("p"))
    )
    assert await asyncio.wait_for(switched, 5) is None
    moving.node[1].write(_text(_data(5)))  # the old node's frames after the switch: dropped
    await asyncio.sleep(0.05)
    texts = await _read_texts(moving.client[0], 3)
    assert [t.get("offset") for t in texts] == ["e1:4", "e1:5", None]
    assert texts[-1] == {"type": "pong", "messageId": "p"}
    async with asyncio.timeout(5):
        assert await node[0].readexactly(len(_PING)) == _PING
        (closing,) = parse_frames(await moving.node[0].read(), mask=True)
    assert Close.parse(closing.data).code == 1000
    assert (moving.moves, moving.endings) == ([], [])
    node[1].close()


async def test_a_handover_the_new_node_cannot_take_leaves_the_session_on_its_node(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    moving.node[1].write(_NOTICE)
    await _barrier(moving)
    moving.client[1].write(_PING)
    link, node = await moving.node_pair()
    switched = moving.splice.hand_over_to(link)
    asked = await _asked(node)
    node[1].write(
        _text(encode_connected("c2", "node-2", "client"))
        + _text(encode_subscribed("news", asked["messageId"], StreamPosition("e9", 0), False))
    )
    assert await asyncio.wait_for(switched, 5) == "news could not be resumed"
    async with asyncio.timeout(5):
        (closing,) = parse_frames(await node[0].read(), mask=True)
        assert await moving.node[0].readexactly(len(_PING)) == _PING  # kept, then passed
    assert Close.parse(closing.data).code == 1000
    moving.node[1].write(_text(_data(3)))
    assert [t["offset"] for t in await _read_texts(moving.client[0], 1)] == ["e1:3"]
    # The node's 1012 at the end of its drain moves the session as before.
    draining = Close(1012, "server draining").serialize()
    moving.node[1].write(Frame(Opcode.CLOSE, draining).serialize(mask=False))
    await asyncio.sleep(0.05)
    assert moving.moves == [Ending.CLOSED]
    node[1].close()


async def test_a_subscribe_answered_after_the_notice_is_handed_over_with_the_session(
    moving: Moving,
) -> None:
    await _subscribed_and_two_messages(moving)
    subscribe = Frame(
        Opcode.TEXT, b'{"type":"subscribe","channel":"sports","messageId":"s2"}'
    ).serialize(mask=True)
    moving.client[1].write(subscribe)  # reaches the node just before its notice
    await asyncio.sleep(0.05)
    moving.node[1].write(_NOTICE)
    subscribed = encode_subscribed("sports", "s2", StreamPosition("e1", 0))
    await _barrier(moving, before=subscribe, answers=_text(subscribed))
    assert (await _read_texts(moving.client[0], 1))[0]["messageId"] == "s2"
    link, node = await moving.node_pair()
    switched = moving.splice.hand_over_to(link)
    asked = [await _asked(node), await _asked(node)]
    assert sorted((a["channel"], a["since"]) for a in asked) == [
        ("news", "e1:2"),
        ("sports", "e1:0"),
    ]
    node[1].write(
        _text(encode_connected("c2", "node-2", "client"))
        + b"".join(
            _text(encode_subscribed(a["channel"], a["messageId"], StreamPosition("e1", 0), True))
            for a in asked
        )
    )
    assert await asyncio.wait_for(switched, 5) is None
    assert (moving.moves, moving.endings) == ([], [])
    node[1].close()
