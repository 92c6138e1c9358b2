"""One client cannot take a gateway down: the node's limits hold at the gateway too.

A real gateway in front of real nodes on one Redis: a frame larger than a node takes is
refused at the gateway before it fills its memory, handshakes left half-sent are closed when
their time is up while real clients keep connecting, a consumer that stops reading is closed
with the node's 1008 (and no node is blamed), and a node's refusal reaches the client as the
node wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.processes import (
    TICKET_SECRET,
    Farm,
    GatewayProcess,
    NodeProcess,
    http_get,
    running_farm,
)
from tests.support.rawsocket import (
    frame_header,
    half_sent_handshakes,
    metric,
    open_websocket,
    read_close_code,
)
from tests.support.tokens import hs256
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient, flood

MIB = 1024 * 1024
HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    """Two nodes with the default 1 MiB frame limit, a gateway with a short handshake time."""
    with running_farm(
        redis_session_url,
        nodes=2,
        gateway_id="gw-abuse",
        gateway_args=("--handshake-timeout", str(HANDSHAKE_TIMEOUT)),
    ) as farm:
        yield farm


def resident(gateway: GatewayProcess) -> float:
    return metric(gateway.http, "process_resident_memory_bytes")


async def test_a_frame_larger_than_a_node_takes_is_refused_at_the_gateway_with_1009(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    before = resident(gateway)
    reader, writer = await open_websocket(gateway.port)
    # It announces 300 MB and sends 64 MB of them as fast as the gateway takes them.
    writer.write(frame_header(0x2, 300 * MIB))
    code = asyncio.create_task(read_close_code(reader))
    chunk = bytes(MIB)
    with contextlib.suppress(ConnectionError):
        for _ in range(64):
            writer.write(chunk)
            async with asyncio.timeout(10):
                await writer.drain()
            if code.done():
                break
    async with asyncio.timeout(10):
        assert await code == 1009
    writer.close()
    assert resident(gateway) - before < 16 * MIB
    async with TestClient(gateway.url) as client:  # and the gateway serves on
        await client.subscribe("after-the-big-frame")


async def test_a_frame_of_exactly_the_nodes_limit_passes_through_the_gateway(
    farm: Farm,
) -> None:
    async with TestClient(farm.gateway.url, max_size=2 * MIB) as client:
        await client.send_raw(b"x" * MIB)  # binary: the node answers that it wants JSON
        reply = await client.recv()
        assert reply["type"] == "error"


async def test_handshakes_left_half_sent_are_closed_after_the_timeout_and_clients_still_connect(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    stalled = await half_sent_handshakes(gateway.port, 500)
    try:
        async with TestClient(gateway.url) as client:
            await client.subscribe("while-stalled")
        # Each one is read to its end: the gateway closes them all, or the deadline fails it.
        async with asyncio.timeout(HANDSHAKE_TIMEOUT + 5):
            await asyncio.gather(*(reader.read() for reader, _ in stalled), return_exceptions=True)
    finally:
        for _, writer in stalled:
            writer.close()


async def test_a_consumer_that_stops_reading_gets_1008_and_no_node_is_blamed(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    lost_before = metric(gateway.http, "wspool_gateway_upstream_lost_total")
    async with (
        TestClient(gateway.url) as slow,
        TestClient(gateway.url) as fast,
        TestClient(gateway.url) as publisher,
    ):
        await slow.subscribe("firehose")
        await fast.subscribe("firehose")
        assert slow.ws is not None
        slow.ws.transport.pause_reading()  # a client that stops reading
        await flood(publisher, fast, "firehose")

        async def dropped() -> bool:
            return metric(gateway.http, "wspool_gateway_slow_consumers_total") >= 1

        await eventually(dropped, within=10, message="slow consumer dropped")
        slow.ws.transport.resume_reading()  # it catches up: the frames sent, then the code
        with contextlib.suppress(ConnectionClosed):
            while True:
                await slow.ws.recv()
        assert (slow.ws.close_code, slow.ws.close_reason) == (1008, "slow consumer")
        await fast.subscribe("still-served")
    assert metric(gateway.http, "wspool_gateway_upstream_lost_total") == lost_before
    servers = gateway.api("GET", "/pool/health")[1]["servers"]
    assert all(s["isHealthy"] and s["circuit"] == "closed" for s in servers)


async def test_a_node_refusing_a_handshake_is_answered_with_its_status_body_and_header(
    redis_session_url: str,
) -> None:
    with running_farm(
        redis_session_url,
        nodes=1,
        gateway_id="gw-refused",
        node_security=("--jwt-secret", "a-node-secret-of-at-least-thirty-two-bytes"),
    ) as farm:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{farm.gateway.url}?token=forged", open_timeout=5)
        response = refused.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        error = json.loads(response.body)["error"]
        assert error["code"] == "UNAUTHORIZED"
        assert error["message"] != "Invalid response status"
        assert "token" in error["message"]


async def test_no_token_or_ticket_reaches_the_gateways_log_when_a_node_refuses_a_handshake(
    redis_session_url: str,
) -> None:
    prefix = f"secrets-{uuid.uuid4().hex[:8]}:"
    shared = ("--ticket-secret", TICKET_SECRET, "--key-prefix", prefix)
    node = NodeProcess("node-misrouted", redis_session_url, *shared)
    # It advertises a path it does not serve: every handshake the gateway tries gets a 404.
    node.args += ["--advertise-url", f"ws://127.0.0.1:{node.port}/elsewhere"]
    gateway = GatewayProcess("gw-secrets", redis_session_url, *shared, "--log-level", "debug")
    query_token = hs256(sub="alice")
    header_token = hs256(sub="bob")
    try:
        node.start()
        gateway.start()
        async with connect(
            f"{gateway.url}?token={query_token}",
            additional_headers={"Authorization": f"Bearer {header_token}"},
            open_timeout=5,
        ) as client:
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert client.close_code == 1013
    finally:
        gateway.stop()
        node.stop()
    log = gateway.output()
    assert "node-misrouted answered the handshake with 404" in log  # logged, and...
    assert query_token not in log  # ...without the client's tokens
    assert header_token not in log
    assert "ticket=ey" not in log


async def test_more_half_sent_handshakes_than_the_gateway_has_files_leave_it_serving(
    farm: Farm,
) -> None:
    gateway = farm.another_gateway("gw-few-files")
    gateway.file_limit = 1024
    await gateway.start_async()
    try:
        stalled = await half_sent_handshakes(gateway.port, 1500)
        try:
            async with TestClient(gateway.url) as client:
                await client.subscribe("past-the-flood")
            status, health = await asyncio.to_thread(http_get, f"{gateway.http}/health")
            assert (status, health["store"]) == (200, "up")
            held = metric(gateway.http, "wspool_gateway_open_files")
            assert held <= metric(gateway.http, "wspool_gateway_open_files_budget")
        finally:
            for _, writer in stalled:
                writer.close()
    finally:
        gateway.stop()
    errors = [line for line in gateway.output().splitlines() if '"level": "error"' in line]
    assert errors == []
