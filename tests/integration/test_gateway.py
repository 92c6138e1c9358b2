"""The gateway in front of a farm of real node processes, all on one real Redis.

What a user of the pool notices: connections spread by the configured strategy, a config
change made through one gateway replica is followed by the others, and errors (bad config,
unknown connections, a full pool, no node left) come back as clear answers.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.processes import Farm, GatewayProcess, http_get, running_farm
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient, open_clients


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    """Three nodes and a gateway on a key prefix of their own (tests reset its config)."""
    with running_farm(redis_session_url, gateway_id="gw-a") as farm:
        yield farm


@pytest.fixture
async def gateway(farm: Farm) -> AsyncIterator[GatewayProcess]:
    """The farm's gateway, with the pool config put back as it was after the test."""
    gateway = farm.gateway
    status, before = gateway.api("GET", "/pool/config")
    assert status == 200

    async def idle() -> bool:  # what earlier tests opened has closed, and the nodes said so
        return bool(gateway.api("GET", "/pool/stats")[1]["totalConnections"] == 0)

    await eventually(idle, message="an idle pool")
    yield gateway
    gateway.api("POST", "/pool/config", before)


def spread(connected: list[TestClient]) -> Counter[str]:
    return Counter(str(c.connected["payload"]["serverId"]) for c in connected)


async def test_round_robin_spreads_30_connections_over_3_nodes_10_each(
    gateway: GatewayProcess,
) -> None:
    assert gateway.api("POST", "/pool/config", {"strategy": "round-robin"})[0] == 200
    async with open_clients(gateway.url, 30) as connected:
        assert spread(connected) == {"node-1": 10, "node-2": 10, "node-3": 10}


async def test_weighted_strategy_follows_the_weights_5_1_1(gateway: GatewayProcess) -> None:
    weights = {"node-1": 5, "node-2": 1, "node-3": 1}
    assert (
        gateway.api("POST", "/pool/config", {"strategy": "weighted", "weights": weights})[0] == 200
    )
    async with open_clients(gateway.url, 14) as connected:
        assert spread(connected) == {"node-1": 10, "node-2": 2, "node-3": 2}


async def test_least_connections_sends_new_clients_to_the_node_that_lost_its_own(
    gateway: GatewayProcess,
) -> None:
    assert gateway.api("POST", "/pool/config", {"strategy": "least-connections"})[0] == 200
    async with open_clients(gateway.url, 9) as first:
        assert spread(first) == {"node-1": 3, "node-2": 3, "node-3": 3}
        for client in first:
            if client.connected["payload"]["serverId"] == "node-2":
                await client.__aexit__(None, None, None)

        async def node_2_emptied() -> bool:
            # The gateway's count of a node is the node's last heartbeat plus the gateway's
            # own opens and closes since. A close the node reported before the gateway
            # counted it is counted twice until the next heartbeat: wait until the counts
            # read what the clients hold on every node, not only on node-2.
            servers = gateway.api("GET", "/pool/stats")[1]["servers"]
            held = {s["id"]: s["activeConnections"] for s in servers}
            return held == {"node-1": 3, "node-2": 0, "node-3": 3}

        await eventually(node_2_emptied, message="the gateway counting node-2's closes")
        async with open_clients(gateway.url, 3) as refill:
            assert spread(refill) == {"node-2": 3}


async def test_frames_and_the_clients_id_pass_through_the_gateway_both_ways(
    gateway: GatewayProcess,
) -> None:
    async with (
        TestClient(gateway.url + "?clientId=dashboard-7") as subscriber,
        TestClient(gateway.url) as publisher,
    ):
        assert subscriber.connected["payload"]["clientId"] == "dashboard-7"
        await subscriber.subscribe("prices")
        await publisher.publish("prices", {"eur": 1.08})
        assert (await subscriber.recv())["payload"] == {"eur": 1.08}
        await publisher.send_raw("not json")
        assert (await publisher.recv())["payload"]["code"] == "BAD_REQUEST"


async def test_a_config_change_through_one_replica_is_applied_by_another_within_a_second(
    farm: Farm, gateway: GatewayProcess
) -> None:
    second = farm.another_gateway("gw-b").start()
    try:
        status, config = gateway.api("POST", "/pool/config", {"strategy": "round-robin"})
        assert (status, config["strategy"]) == (200, "round-robin")

        async def followed() -> bool:
            return bool(second.api("GET", "/pool/config")[1]["strategy"] == "round-robin")

        await eventually(followed, within=1.5, message="second replica on round-robin")
        async with open_clients(second.url, 6) as connected:
            assert spread(connected) == {"node-1": 2, "node-2": 2, "node-3": 2}
        assert second.api("GET", "/pool/stats")[1]["activeServers"] == 3
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"strategy": "random"}, "strategy"),
        ({"maxConnections": -1}, "maxConnections"),
        ({"healthCheck": {"timeout": "soon"}}, "healthCheck.timeout"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_a_bad_config_change_is_refused_with_400_naming_the_field_and_changes_nothing(
    gateway: GatewayProcess, patch: dict[str, Any], field: str
) -> None:
    before = gateway.api("GET", "/pool/config")[1]
    status, body = gateway.api("POST", "/pool/config", patch)
    assert status == 400
    assert body["error"]["code"] == "BAD_REQUEST"
    assert body["error"]["message"].startswith(f"{field}:")
    assert gateway.api("GET", "/pool/config")[1] == before


def test_a_body_that_is_not_json_is_refused_with_400(gateway: GatewayProcess) -> None:
    from tests.support.processes import http_request

    status, body = http_request("POST", f"{gateway.http}/api/v1/pool/config", raw=b"{nope")
    assert status == 400
    assert "JSON" in body["error"]["message"]


def test_pool_health_and_stats_describe_every_node(gateway: GatewayProcess) -> None:
    status, health = gateway.api("GET", "/pool/health")
    assert status == 200
    assert health["status"] == "ok"
    assert [s["id"] for s in health["servers"]] == ["node-1", "node-2", "node-3"]
    assert all(s["isHealthy"] and s["circuit"] == "closed" for s in health["servers"])
    assert {"id", "url", "weight", "activeConnections", "isHealthy", "lastHealthCheck"} <= set(
        health["servers"][0]
    )
    status, stats = gateway.api("GET", "/pool/stats")
    assert status == 200
    assert stats["activeServers"] == 3
    for figure in ("totalConnections", "messagesPerSecond", "averageLatency", "errorRate"):
        assert isinstance(stats[figure], int | float)


async def test_direct_mode_hands_out_a_ticket_for_one_node_only(gateway: GatewayProcess) -> None:
    status, answer = gateway.api("POST", "/connections", {"clientId": "kiosk-1"})
    assert status == 201
    assert answer["clientId"] == "kiosk-1"
    async with TestClient(answer["url"]) as direct:
        assert direct.connected["payload"]["connectionId"] == answer["id"]
        assert direct.connected["payload"]["serverId"] == answer["serverId"]
        await eventually(lambda: _known(gateway, answer["id"]), message="connection stored")
        assert gateway.api("GET", f"/connections/{answer['id']}")[1]["clientId"] == "kiosk-1"
    nodes = {s["id"]: s["url"] for s in gateway.api("GET", "/pool/health")[1]["servers"]}
    other = next(url for node_id, url in nodes.items() if node_id != answer["serverId"])
    for url in (f"{other}/ws?ticket={answer['ticket']}", f"{other}/ws"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401


def test_unknown_connections_are_404_with_a_json_error(gateway: GatewayProcess) -> None:
    for method in ("GET", "DELETE"):
        status, body = gateway.api(method, "/connections/no-such-connection")
        assert status == 404
        assert body["error"]["code"] == "NOT_FOUND"


async def test_deleting_a_connection_closes_it_on_its_node_and_removes_its_state(
    gateway: GatewayProcess,
) -> None:
    async with TestClient(gateway.url) as client:
        connection_id = client.connection_id
        await eventually(lambda: _known(gateway, connection_id), message="connection stored")
        status, body = gateway.api("DELETE", f"/connections/{connection_id}")
        assert (status, body["closed"]) == (200, True)
        assert client.ws is not None
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000
    assert gateway.api("GET", f"/connections/{connection_id}")[0] == 404


async def _known(gateway: GatewayProcess, connection_id: str) -> bool:
    return gateway.api("GET", f"/connections/{connection_id}")[0] == 200


async def test_beyond_max_connections_new_clients_are_refused_with_1013(
    gateway: GatewayProcess,
) -> None:
    assert gateway.api("POST", "/pool/config", {"maxConnections": 3})[0] == 200
    async with open_clients(gateway.url, 3):
        async with connect(gateway.url, open_timeout=5) as refused:
            with pytest.raises(ConnectionClosed) as closed:
                await refused.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "pool full")
        status, body = gateway.api("POST", "/connections", {})
        assert (status, body["error"]["code"]) == (503, "POOL_FULL")


def test_a_gateway_without_any_node_says_so_on_every_path(redis_session_url: str) -> None:
    prefix = f"empty-{uuid.uuid4().hex[:8]}:"
    lonely = GatewayProcess("gw-empty", redis_session_url, "--key-prefix", prefix, nodes=0)
    lonely.start()
    try:
        status, health = lonely.api("GET", "/pool/health")
        assert (status, health["status"], health["servers"]) == (503, "down", [])
        status, body = lonely.api("POST", "/connections", {})
        assert (status, body["error"]["code"]) == (503, "NO_HEALTHY_SERVER")
        assert http_get(f"{lonely.http}/health")[1]["status"] == "no healthy server"
    finally:
        lonely.stop()


async def test_a_websocket_client_of_an_empty_pool_is_closed_with_1013(
    redis_session_url: str,
) -> None:
    prefix = f"empty-{uuid.uuid4().hex[:8]}:"
    lonely = GatewayProcess("gw-empty", redis_session_url, "--key-prefix", prefix, nodes=0)
    lonely.start()
    try:
        async with connect(lonely.url, open_timeout=5) as refused:
            with pytest.raises(ConnectionClosed) as closed:
                await refused.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "no healthy server")
    finally:
        lonely.stop()


async def test_every_nodes_health_verdict_is_shared_in_redis(
    farm: Farm,
) -> None:
    prefix = farm.prefix
    store = Store(farm.redis_url)
    try:
        for node_id in ("node-1", "node-2", "node-3"):
            health = await store.hgetall(f"{prefix}server:{node_id}:health")
            assert health["healthy"] == "1"
            assert health["circuit"] == "closed"
            assert health["checkedBy"] in {"gw-a", "gw-b"}  # whichever replica checked last
            assert float(health["lastHealthCheck"]) > 0
    finally:
        await store.close()
