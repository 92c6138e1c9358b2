"""A draining node hands a seamless gateway's sessions over: no close, no gap, no pause.

The node sends each relayed session, on its drain schedule, the handover notice instead of
its 1012; the gateway readies another node and switches there while the old one still
delivers (docs/gateway.md "Handover"). With no other node the session stays where it is to
the end of the drain window, and then gets the 1012 it would have had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.support.processes import running_farm
from tests.support.rawsocket import metric
from tests.support.wsclient import TestClient, open_clients

CHANNEL = "handover"


async def _publish(publisher: TestClient, stop: asyncio.Event, every: float) -> int:
    """Numbered messages until ``stop``; how many were sent."""
    sent = 0
    while not stop.is_set():
        await publisher.publish(CHANNEL, {"n": sent})
        sent += 1
        await asyncio.sleep(every)
    return sent


async def _read(client: TestClient, got: list[dict[str, Any]]) -> None:
    """Every frame the client receives, until its connection closes."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            assert client.ws is not None
            got.append({"at": time.monotonic(), **json.loads(await client.ws.recv())})


@contextlib.asynccontextmanager
async def _reading(clients: list[TestClient]) -> AsyncIterator[list[list[dict[str, Any]]]]:
    frames: list[list[dict[str, Any]]] = [[] for _ in clients]
    tasks = [asyncio.create_task(_read(c, f)) for c, f in zip(clients, frames, strict=True)]
    try:
        yield frames
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _numbers(frames: list[dict[str, Any]]) -> list[int]:
    return [f["payload"]["n"] for f in frames if f.get("type") == "data"]


async def test_a_drained_nodes_clients_are_handed_over_without_a_close_or_a_gap(
    redis_session_url: str,
) -> None:
    with running_farm(
        redis_session_url, nodes=2, node_args=("--drain-window", "1", "--node-ttl", "10")
    ) as farm:
        gateway = farm.gateway
        async with open_clients(gateway.url, 12) as clients:
            on_node_1 = [c for c in clients if c.connected["payload"]["serverId"] == "node-1"]
            publisher = next(c for c in clients if c.connected["payload"]["serverId"] == "node-2")
            assert on_node_1
            for client in on_node_1:
                await client.subscribe(CHANNEL)
            async with _reading(on_node_1) as frames:
                stop = asyncio.Event()
                publishing = asyncio.create_task(_publish(publisher, stop, 0.005))
                await asyncio.sleep(0.3)
                farm.nodes[0].signal(signal.SIGTERM)
                # During the drain, what a client sends reaches a node and is answered.
                await asyncio.sleep(0.5)
                for client in on_node_1:
                    await client.send(type="ping", messageId="during")
                assert await asyncio.to_thread(farm.nodes[0].wait, 15) == 0
                await asyncio.sleep(0.3)
                stop.set()
                sent = await publishing
                await asyncio.sleep(0.5)
            for got in frames:
                assert [f for f in got if f.get("type") not in ("data", "pong")] == []
                assert _numbers(got) == list(range(sent))  # every one, once, in order
                assert [f["messageId"] for f in got if f["type"] == "pong"] == ["during"]
            handed = metric(gateway.http, "wspool_gateway_sessions_handed_over_total")
            assert handed == len(on_node_1)
            for client in on_node_1:  # still open, now on node-2
                assert (await client.request(type="ping", messageId="after"))["type"] == "pong"


async def test_a_handover_with_no_other_node_leaves_the_session_to_its_1012_at_the_end(
    redis_session_url: str,
) -> None:
    with running_farm(
        redis_session_url, nodes=1, node_args=("--drain-window", "1", "--node-ttl", "10")
    ) as farm:
        async with open_clients(farm.gateway.url, 2) as (client, publisher):
            await client.subscribe(CHANNEL)
            async with _reading([client]) as (got,):
                stop = asyncio.Event()
                publishing = asyncio.create_task(_publish(publisher, stop, 0.02))
                began = time.monotonic()
                farm.nodes[0].signal(signal.SIGTERM)
                assert await asyncio.to_thread(farm.nodes[0].wait, 15) == 0
                stop.set()
                with contextlib.suppress(ConnectionClosed):
                    await publishing
            assert client.ws is not None
            closed = client.ws.protocol.close_rcvd
            assert closed is not None
            assert (closed.code, closed.reason) == (1012, "server draining")
            # The old node served the session on to the end of its window (and its grace).
            after = [f for f in got if f.get("type") == "data" and f["at"] > began + 1.0]
            assert after, "no message reached the client after the drain window began"
            numbers = _numbers(got)
            assert numbers == list(range(len(numbers)))
