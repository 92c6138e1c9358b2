"""Seamless failover: the gateway moves live sessions when a node is killed or drains.

A farm of three real nodes behind two real gateways on a real Redis. 300 clients (150
through each gateway) are subscribed to one channel; a publisher on the node that no fault
touches sends a numbered message every 10 ms for the whole run. One node is
SIGKILLed, then another drains (SIGTERM). Every client must see every message published,
fault or not, exactly once and in order, and no closing frame; the longest pause in any
client's stream around each fault is reported.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from tests.support.processes import Farm, GatewayProcess, running_farm
from tests.support.rawsocket import frame_header, metric
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient
from wspool.gateway.model.framing import frame_end

CLIENTS = 300
RATE = 100.0
CHANNEL = "seamless"


@pytest.fixture
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        # A node busy taking the moved sessions of a test machine's whole farm may miss a
        # heartbeat or two; the registry's 1 s of the other farm tests would drop it.
        node_args=("--drain-window", "1", "--node-ttl", "10"),
        gateway_args=("--strategy", "round-robin"),
    ) as farm:
        yield farm


@pytest.fixture
def second_gateway(farm: Farm) -> Iterator[GatewayProcess]:
    gateway = farm.another_gateway("gw-2", "--strategy", "round-robin").start()
    try:
        yield gateway
    finally:
        gateway.stop()


class Subscriber(asyncio.Protocol):
    """One client's stream, read with as little work as possible (300 of them share the
    test's process with a message every 10 ms each): what it received, when, and how it
    ended (if it did)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.numbers: list[int] = []
        self.times: list[float] = []
        self.closed: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, frame: dict[str, Any], opcode: int = 0x1) -> None:
        assert self.transport is not None
        payload = json.dumps(frame).encode()
        self.transport.write(frame_header(opcode, len(payload)) + payload)  # mask 0

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos = 0
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            assert buffer.startswith(b"HTTP/1.1 101"), bytes(buffer)
            self.upgraded = True
            pos = end + 4
        now = time.monotonic()
        while (frame := frame_end(buffer, pos)) is not None:
            opcode, start, pos = frame
            payload = bytes(buffer[start:pos])
            if opcode == 0x1 and payload.startswith(b'{"type":"data"'):
                self.numbers.append(json.loads(payload)["payload"]["n"])
                self.times.append(now)
            elif opcode == 0x1:
                self.replies.put_nowait(json.loads(payload))
            elif opcode == 0x9:  # ping: pong
                assert self.transport is not None
                self.transport.write(frame_header(0xA, len(payload)) + payload)
            elif opcode == 0x8:
                self.closed = f"closed with {payload[:2].hex()} {payload[2:].decode()}"
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is None:
            self.closed = "dropped"

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time between two messages, over the pauses that began in the span."""
        pauses = [
            later - earlier
            for earlier, later in itertools.pairwise(self.times)
            if start <= earlier < end
        ]
        return max(pauses, default=0.0)


async def _subscribe(port: int) -> tuple[Subscriber, str]:
    """A client through the gateway on ``port``, subscribed; and the node it landed on."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(Subscriber, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write(_HANDSHAKE.format(key=key).encode())
    async with asyncio.timeout(10):
        connected = await client.replies.get()
        client.send({"type": "subscribe", "channel": CHANNEL, "messageId": "s"})
        reply = await client.replies.get()
    assert reply["type"] == "subscribed", reply
    return client, connected["payload"]["serverId"]


_HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
)


async def _publisher(gateway: str, node: str) -> TestClient:
    """A publishing client through ``gateway`` on ``node`` (which no fault touches)."""
    others: list[TestClient] = []
    try:
        while True:
            client = await TestClient(gateway).__aenter__()
            if client.connected["payload"]["serverId"] == node:
                return client
            others.append(client)
    finally:
        for other in others:
            await other.__aexit__(None, None, None)


async def _publish(publisher: TestClient, stop: asyncio.Event, sent: list[float]) -> None:
    """One numbered message every 1/RATE s (on schedule, not after each send)."""
    start = time.monotonic()
    for n in itertools.count():
        if stop.is_set():
            return
        await publisher.publish(CHANNEL, {"n": n})
        sent.append(time.monotonic())
        await asyncio.sleep(max(0.0, start + (n + 1) / RATE - time.monotonic()))


async def test_clients_of_a_killed_and_a_drained_node_keep_every_message_and_their_socket(
    farm: Farm, second_gateway: GatewayProcess
) -> None:
    nodes = farm.nodes
    gateways = (farm.gateway.port, second_gateway.port)
    placed = [await _subscribe(gateways[i % 2]) for i in range(CLIENTS)]
    assert {node for _, node in placed} == {"node-1", "node-2", "node-3"}
    subscribers = [client for client, _ in placed]
    stop, sent = asyncio.Event(), list[float]()
    publisher = await _publisher(farm.gateway.url, "node-3")
    publishing = asyncio.create_task(_publish(publisher, stop, sent))
    await asyncio.sleep(2)
    killed_at = time.monotonic()
    nodes[0].signal(signal.SIGKILL)
    await asyncio.sleep(3)
    drained_at = time.monotonic()
    nodes[1].signal(signal.SIGTERM)
    assert await asyncio.to_thread(nodes[1].wait, 20) == 0
    await asyncio.sleep(2)
    stop.set()
    await publishing
    published = len(sent)

    async def all_in() -> bool:
        return all(len(s.numbers) >= published or s.closed for s in subscribers)

    with contextlib.suppress(AssertionError):  # what is missing is counted below
        await eventually(all_in, within=15, interval=0.1)
    closed = [s.closed for s in subscribers if s.closed is not None]
    lost = sum(len(set(range(published)) - set(s.numbers)) for s in subscribers)
    duplicated = sum(len(s.numbers) - len(set(s.numbers)) for s in subscribers)
    out_of_order = sum(s.numbers != sorted(s.numbers) for s in subscribers)
    kill_pause = max(s.longest_pause(killed_at - 0.05, drained_at) for s in subscribers)
    # By the node each client was first on: node-2 drains; node-3's never move; node-1's
    # moved at the kill, to node-2 (then drained) or node-3.
    drain_pauses = {
        first: max(
            s.longest_pause(drained_at - 0.05, drained_at + 10)
            for s, node in placed
            if node == first
        )
        for first in ("node-1", "node-2", "node-3")
    }
    drain_pause = max(drain_pauses.values())
    print(
        f"\n{CLIENTS} clients, {published} messages at {RATE:.0f}/s: {len(closed)} closed,"
        f" {lost} lost, {duplicated} duplicated, {out_of_order} out of order;"
        f" longest pause: {kill_pause * 1000:.0f} ms after the kill,"
        f" {drain_pause * 1000:.0f} ms during the drain"
        f" (clients first on {', '.join(f'{n}: {p * 1000:.0f}' for n, p in drain_pauses.items())})"
    )
    both = (farm.gateway, second_gateway)
    moved = sum(metric(g.http, "wspool_gateway_sessions_moved_total") for g in both)
    took = sum(metric(g.http, "wspool_gateway_session_move_seconds_total") for g in both)
    longest = max(metric(g.http, "wspool_gateway_longest_session_move_seconds") for g in both)
    handed = sum(metric(g.http, "wspool_gateway_sessions_handed_over_total") for g in both)
    print(
        f"{moved:.0f} sessions moved ({handed:.0f} handed over by the drained node) in"
        f" {took / max(moved, 1) * 1000:.0f} ms on average, the longest in {longest * 1000:.0f} ms"
    )
    why = [
        line
        for gateway in both
        for line in gateway.output().splitlines()
        if "could not move" in line or "trying another node" in line
    ]
    assert closed == [], why[:10]
    # Every client of the two nodes moved (those of the killed node may have moved twice);
    # the drained node's were handed over (moved before it was left).
    assert moved >= sum(node != "node-3" for _, node in placed)
    assert handed >= sum(node == "node-2" for _, node in placed)
    assert (lost, duplicated, out_of_order) == (0, 0, 0)
    # The targets are 1 s (kill) and 100 ms (drain), met on a quiet machine (355-575 and
    # 50-68 ms, docs/benchmarks.md); under CI the whole farm shares two busy cores with other
    # work, so the bounds here only catch a hang or a 10x regression.
    assert kill_pause < 10.0
    assert drain_pause < 10.0
    for s in subscribers:
        assert s.transport is not None
        s.transport.close()
    await publisher.__aexit__(None, None, None)
