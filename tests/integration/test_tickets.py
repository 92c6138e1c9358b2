"""Direct-mode tickets against real processes: one connection, by its own client, in time.

A gateway and a node share a ticket secret; ``POST /api/v1/connections`` hands out a ticket
naming the node. The ticket opens one connection, for the client it was issued to; a second
try, or another client's, is refused at the handshake with 401 and the reason. The client id
a client asks for is checked by one rule, on a node and through the gateway alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.processes import Farm, http_request, running_farm
from tests.support.tokens import SECRET, hs256
from tests.support.wsclient import TestClient

TOKEN_SECURITY = ("--jwt-secret", SECRET, "--connection-attempts-per-ip", "0")


@pytest.fixture(scope="module")
def open_farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, nodes=1, gateway_id="gw-open") as farm:
        yield farm


@pytest.fixture(scope="module")
def token_farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        nodes=1,
        gateway_id="gw-tokens",
        node_security=TOKEN_SECURITY,
        gateway_security=("--jwt-secret", SECRET, "--admin-token", "admin-" + "x" * 40),
    ) as farm:
        yield farm


async def refusal(url: str, **options: Any) -> tuple[int, str]:
    """The status and error message of a handshake the node must refuse."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5, **options):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body)["error"]["message"]


def ticket_for(farm: Farm, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, answer = http_request(
        "POST", f"{farm.gateway.http}/api/v1/connections", body, headers=headers
    )
    assert status == 201, answer
    return dict(answer)


async def test_a_ticket_opens_one_connection_and_a_second_try_is_refused_with_the_reason(
    open_farm: Farm,
) -> None:
    answer = ticket_for(open_farm, {"clientId": "kiosk-1"})
    async with TestClient(answer["url"]) as first:
        assert first.connected["payload"]["connectionId"] == answer["id"]
        assert await refusal(answer["url"]) == (401, "ticket already used")
    assert await refusal(answer["url"]) == (401, "ticket already used")


async def test_a_ticket_is_refused_to_another_client_and_still_serves_its_own(
    open_farm: Farm,
) -> None:
    answer = ticket_for(open_farm, {"clientId": "kiosk-2"})
    assert await refusal(answer["url"] + "&clientId=mallory") == (
        401,
        "ticket is for another client",
    )
    async with TestClient(answer["url"] + "&clientId=kiosk-2") as own:
        assert own.connected["payload"]["clientId"] == "kiosk-2"


async def test_a_ticket_issued_to_one_user_does_not_open_a_connection_with_another_users_token(
    token_farm: Farm,
) -> None:
    answer = ticket_for(token_farm, {}, hs256(sub="alice"))
    mallory = {"Authorization": f"Bearer {hs256(sub='mallory')}"}
    assert await refusal(answer["url"], additional_headers=mallory) == (
        401,
        "ticket is for another client",
    )
    alice = {"Authorization": f"Bearer {hs256(sub='alice')}"}
    async with TestClient(answer["url"], additional_headers=alice) as own:
        assert own.connected["payload"]["clientId"] == "alice"
    assert await refusal(answer["url"], additional_headers=alice) == (401, "ticket already used")


async def test_through_the_gateway_a_malformed_client_id_is_refused_as_a_node_refuses_it(
    open_farm: Farm,
) -> None:
    rule = "clientId must be 1-128 characters of letters, digits and . _ : @ -"
    direct = ticket_for(open_farm, {})["url"] + "&"  # straight to the node
    for url in (open_farm.gateway.url + "?", direct):
        assert await refusal(url + "clientId=%3Cscript%3E") == (400, rule)
        assert await refusal(url + "clientId=" + "a" * 129) == (400, rule)
    status, body = http_request(
        "POST", f"{open_farm.gateway.http}/api/v1/connections", {"clientId": "bob smith"}
    )
    assert (status, body["error"]["message"]) == (400, rule)
    async with TestClient(open_farm.gateway.url + "?clientId=dashboard-7") as fine:
        assert fine.connected["payload"]["clientId"] == "dashboard-7"
