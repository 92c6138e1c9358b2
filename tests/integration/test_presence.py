"""Presence through the gateway's REST API: who is subscribed to a channel across every node,
the active channels, and closing every connection of a client id. Presence stays true when a
node is killed: its subscribers leave it as soon as its registration lapses.

Three real nodes and a gateway on one real Redis (a farm of its own: a node dies here).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.processes import Farm, running_farm
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient


@pytest.fixture
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, gateway_id="gw-presence") as farm:
        # Seamless moves off: a killed node's subscribers stay gone rather than resubscribing
        # through another node, so what is seen is presence forgetting them.
        config = {"strategy": "round-robin", "seamless": False}
        assert farm.gateway.api("POST", "/pool/config", config)[0] == 200
        yield farm


@contextlib.asynccontextmanager
async def clients(farm: Farm, *names: str) -> AsyncIterator[list[TestClient]]:
    """One client per name, by that client id, spread over the nodes in turn."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(TestClient(f"{farm.gateway.url}?clientId={name}"))
            for name in names
        ]


def presence(farm: Farm, channel: str) -> dict[str, Any]:
    status, body = farm.gateway.api("GET", f"/channels/{channel}/presence")
    assert status == 200, body
    return dict(body)


def expect_presence(farm: Farm, channel: str, count: int, client_ids: list[str]) -> Any:
    async def probe() -> bool:
        return presence(farm, channel) == {
            "channel": channel,
            "subscribers": count,
            "clientIds": client_ids,
        }

    return eventually(probe, message=f"{count} subscribers of {channel}: {client_ids}")


async def test_presence_counts_subscribers_on_every_node_and_forgets_a_killed_one(
    farm: Farm,
) -> None:
    async with clients(farm, "alice", "bob", "carol") as (alice, bob, carol):
        nodes = [c.connected["payload"]["serverId"] for c in (alice, bob, carol)]
        assert nodes == ["node-1", "node-2", "node-3"]
        for client in (alice, bob, carol):
            await client.subscribe("room")
        await alice.subscribe("lobby")
        await expect_presence(farm, "room", 3, ["alice", "bob", "carol"])
        await expect_presence(farm, "lobby", 1, ["alice"])
        status, active = farm.gateway.api("GET", "/channels")
        assert status == 200
        assert active["channels"] == [
            {"channel": "lobby", "subscribers": 1},
            {"channel": "room", "subscribers": 3},
        ]

        await alice.request(type="unsubscribe", channel="lobby")
        await expect_presence(farm, "lobby", 0, [])

        farm.nodes[1].signal(signal.SIGKILL)  # bob's node
        await expect_presence(farm, "room", 2, ["alice", "carol"])
        assert farm.gateway.api("GET", "/channels")[1]["channels"] == [
            {"channel": "room", "subscribers": 2}
        ]


async def test_every_connection_of_a_client_id_is_closed_wherever_it_is(farm: Farm) -> None:
    async with clients(farm, "dave", "erin", "dave") as (first, other, second):
        assert first.connected["payload"]["serverId"] != second.connected["payload"]["serverId"]
        for client in (first, other, second):
            await client.subscribe("room")
        await expect_presence(farm, "room", 3, ["dave", "erin"])
        status, answer = farm.gateway.api("DELETE", "/clients/dave/connections")
        assert status == 200
        assert answer["clientId"] == "dave"
        assert sorted(answer["closed"]) == sorted([first.connection_id, second.connection_id])
        assert answer["pending"] == []
        for client in (first, second):
            assert client.ws is not None
            await client.ws.wait_closed()
            assert client.ws.close_code == 1000
        await expect_presence(farm, "room", 1, ["erin"])
        assert (await other.request(type="ping"))["type"] == "pong"
    assert farm.gateway.api("DELETE", "/clients/nobody/connections") == (
        200,
        {"clientId": "nobody", "closed": [], "pending": []},
    )
    status, body = farm.gateway.api("DELETE", "/clients/not%20an%20id/connections")
    assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")
