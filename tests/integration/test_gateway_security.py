"""Security through the gateway: tokens pass to the nodes, the REST API wants an admin, and
the per-address limits hold across two gateway replicas.

Nodes and gateways share an HS256 secret; nodes trust loopback as their proxies, so the
client address they count is the one the gateways forward in ``X-Forwarded-For``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.support.processes import Farm, GatewayProcess, http_request, running_farm
from tests.support.tokens import SECRET, hs256
from tests.support.wsclient import TestClient
from wspool.client import AuthenticationError, Publisher, RequestError

ADMIN_TOKEN = "static-admin-token-of-some-length-0123456789"
LIMIT = 3
NODE_SECURITY = (
    "--jwt-secret",
    SECRET,
    "--trusted-proxies",
    "127.0.0.0/8",
    "--max-connections-per-ip",
    str(LIMIT),
    "--connection-attempts-per-ip",
    "0",
    "--messages-per-second",
    "0",
)
GATEWAY_SECURITY = ("--jwt-secret", SECRET, "--admin-token", ADMIN_TOKEN)


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        nodes=2,
        gateway_id="gw-a",
        node_security=NODE_SECURITY,
        gateway_security=GATEWAY_SECURITY,
    ) as farm:
        yield farm


def user_token(**claims: Any) -> str:
    return hs256(sub="alice", subscribe=["prices.*"], publish=["prices.*"], **claims)


def api(
    gateway: GatewayProcess, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http_request(method, f"{gateway.http}/api/v1{path}", body, headers=headers)


def test_the_rest_api_wants_an_admin_credential_for_reads_and_changes(farm: Farm) -> None:
    gateway = farm.gateway
    status, body = api(gateway, "GET", "/pool/health", None)
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    status, body = api(gateway, "POST", "/pool/config", user_token(), {"maxConnections": 10})
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    status, body = api(gateway, "DELETE", "/connections/whatever", user_token())
    assert status == 403
    assert api(gateway, "GET", "/pool/config", user_token())[0] == 403
    assert api(gateway, "GET", "/pool/config", "not-a-token")[0] == 401
    assert api(gateway, "GET", "/pool/health", ADMIN_TOKEN)[0] == 200
    assert api(gateway, "GET", "/pool/config", hs256(sub="ops", roles=["admin"]))[0] == 200
    status, config = api(gateway, "POST", "/pool/config", ADMIN_TOKEN, {"slowStart": 5})
    assert (status, config["slowStart"]) == (200, 5.0)


def test_a_backend_publishes_with_a_token_allowed_to_publish_or_an_admin_credential(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    message = {"payload": {"price": 1}}
    status, body = api(gateway, "POST", "/channels/prices.eur/messages", None, message)
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    status, body = api(gateway, "POST", "/channels/prices.eur/messages", user_token(), message)
    assert status == 201, body
    status, body = api(gateway, "POST", "/channels/news/messages", user_token(), message)
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    # A broadcast is refused whole when one of its channels is not allowed.
    both = {"channels": ["prices.usd", "news"], "payload": 1}
    assert api(gateway, "POST", "/broadcast", user_token(), both)[0] == 403
    history = api(gateway, "GET", "/channels/prices.usd/messages", ADMIN_TOKEN)[1]
    assert history["messages"] == []
    assert api(gateway, "POST", "/broadcast", ADMIN_TOKEN, both)[0] == 201
    # Reading history is a read of the API: an admin's.
    assert api(gateway, "GET", "/channels/prices.eur/messages", user_token())[0] == 403


async def test_the_python_publisher_shows_its_token_and_hears_refusals(farm: Farm) -> None:
    async with Publisher(farm.gateway.http, token=user_token) as publisher:
        assert (await publisher.publish("prices.gbp", 1)).endswith(":1")
        with pytest.raises(RequestError) as refused:
            await publisher.publish("news", 1)
        assert refused.value.code == "FORBIDDEN"
    async with Publisher(farm.gateway.http, token="not-a-token") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.publish("prices.gbp", 1)


def test_a_client_asking_for_a_ticket_shows_its_token_and_gets_its_own_identity(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    assert api(gateway, "POST", "/connections", None, {})[0] == 401
    status, answer = api(gateway, "POST", "/connections", user_token(), {"clientId": "mallory"})
    assert (status, answer["clientId"]) == (201, "alice")


async def test_a_token_reaches_the_node_through_the_gateway_in_each_of_its_forms(
    farm: Farm,
) -> None:
    url = farm.gateway.url
    async with TestClient(f"{url}?token={user_token()}") as by_query:
        assert by_query.connected["payload"]["clientId"] == "alice"
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {user_token()}"}, open_timeout=5
    ) as by_header:
        assert json.loads(await by_header.recv())["payload"]["clientId"] == "alice"
    async with connect(
        url,
        subprotocols=[Subprotocol("wspool"), Subprotocol(f"bearer.{user_token()}")],
        open_timeout=5,
    ) as by_subprotocol:
        assert by_subprotocol.subprotocol == "wspool"
        assert json.loads(await by_subprotocol.recv())["type"] == "connected"


async def test_a_client_without_a_valid_token_gets_the_nodes_401_and_no_node_is_blamed(
    farm: Farm,
) -> None:
    for url in (farm.gateway.url, f"{farm.gateway.url}?token=forged"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401
    servers = api(farm.gateway, "GET", "/pool/health", ADMIN_TOKEN)[1]["servers"]
    assert all(s["isHealthy"] and s["circuit"] == "closed" for s in servers)


async def test_permissions_from_the_token_hold_through_the_gateway(farm: Farm) -> None:
    async with TestClient(f"{farm.gateway.url}?token={user_token()}") as client:
        reply = await client.request(type="subscribe", channel="secrets")
        assert (reply["type"], reply["payload"]["code"]) == ("error", "FORBIDDEN")
        await client.subscribe("prices.eur")


async def test_connections_per_address_are_counted_across_two_gateway_replicas(
    farm: Farm,
) -> None:
    second = farm.another_gateway("gw-b").start()
    try:
        address = {"X-Forwarded-For": "203.0.113.7"}
        token = user_token()
        held = []
        try:
            for gateway in (farm.gateway, second, farm.gateway):  # LIMIT = 3 pass
                ws = await connect(f"{gateway.url}?token={token}", additional_headers=address)
                held.append(ws)
                assert json.loads(await ws.recv())["type"] == "connected"
            async with connect(f"{second.url}?token={token}", additional_headers=address) as over:
                async with asyncio.timeout(5):
                    frame = json.loads(await over.recv())
                    with pytest.raises(ConnectionClosed):
                        await over.recv()
                assert frame["payload"]["code"] == "RATE_LIMITED"
                assert over.close_code == 1013
            other = {"X-Forwarded-For": "198.51.100.9"}
            async with connect(f"{second.url}?token={token}", additional_headers=other) as ws:
                assert json.loads(await ws.recv())["type"] == "connected"
        finally:
            await asyncio.gather(*(ws.close() for ws in held))
    finally:
        second.stop()


def test_reads_can_be_opened_to_everyone_while_changes_still_need_an_admin(farm: Farm) -> None:
    reader = farm.another_gateway("gw-open", "--api-open-reads").start()
    try:
        assert api(reader, "GET", "/pool/health", None)[0] == 200
        assert api(reader, "GET", "/pool/stats", None)[0] == 200
        assert api(reader, "POST", "/pool/config", None, {"slowStart": 1})[0] == 401
    finally:
        reader.stop()
