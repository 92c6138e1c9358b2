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
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from websockets.exceptions import ConnectionClosed

from tests.support.processes import NodeProcess, running_farm
from tests.support.rawsocket import metric
from tests.support.redis_server import RedisServer
from tests.support.wsclient import TestClient, open_clients
from wspool.core.protocol import HANDOVER_BARRIER
from wspool.core.tickets import Ticket, issue_ticket

CHANNEL = "handover"
SECRET = "relay-ticket-secret-0123456789abcdef"


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


async def test_the_barrier_is_answered_after_a_publish_before_it_is_refused(
    own_redis: RedisServer,
) -> None:
    """The gateway switches a session once the old node answers the handover's barrier, and
    drops what that node sends after: a publish sent before the barrier and refused by
    Redis only later must have its error answered first, or the client never hears of it."""
    node = NodeProcess("node-1", own_redis.url, "--ticket-secret", SECRET)
    await node.start_async()
    store = redis.Redis.from_url(own_redis.url)
    # The relay ticket a seamless gateway opens its link with: it takes handover notices.
    ticket = issue_ticket(SECRET, Ticket(uuid.uuid4().hex, None, node.id, handover=True), 0, 1e10)
    try:
        async with TestClient(f"{node.url}?ticket={ticket}") as client:
            await store.config_set("min-replicas-to-write", 1)  # Redis now refuses writes
            own_redis.freeze()  # and answers nothing for a while
            try:
                publish = await client.send(type="data", channel=CHANNEL, payload={"n": 1})
                await client.send(type="ping", messageId=HANDOVER_BARRIER)
                await asyncio.sleep(0.5)
            finally:
                own_redis.thaw()
            answers: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not answers or answers[-1].get("type") != "pong":
                    answers.append(await client.recv())
    finally:
        await store.aclose()
        node.stop()
    assert [(a["type"], a.get("messageId")) for a in answers] == [
        ("error", publish),
        ("pong", HANDOVER_BARRIER),
    ], answers
