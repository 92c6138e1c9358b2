"""``DELETE /api/v1/connections/{id}`` against a frozen node: say what happened, and stick.

The node process is stopped with SIGSTOP for 10 s while the pool manager closes one of its
connections: the answer is 202 (accepted, pending), not ``closed: true``; when the node
wakes it closes the connection at once, and neither the connection nor its record returns
(before the tombstone, both did: the close command sent over pub/sub never reached it).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.processes import Farm, http_request, running_farm
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient

FREEZE = 10.0
"""Seconds the node stays stopped: long past its registration (1 s in tests), and long
enough that the command sent over pub/sub meanwhile does not reach it when it wakes."""


@pytest.fixture
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, nodes=1, gateway_id="gw-close") as farm:
        yield farm


async def api(farm: Farm, method: str, path: str) -> tuple[int, dict[str, object]]:
    return await asyncio.to_thread(http_request, method, f"{farm.gateway.http}/api/v1{path}", None)


async def _read_until_closed(client: TestClient) -> None:
    while True:
        await client.recv()


async def test_closing_a_connection_of_a_frozen_node_is_pending_and_sticks_when_it_wakes(
    farm: Farm,
) -> None:
    status, ticket = await api(farm, "POST", "/connections")
    assert status == 201
    node = farm.nodes[0]
    async with TestClient(str(ticket["url"])) as client:
        path = f"/connections/{client.connection_id}"

        async def stored() -> bool:
            return (await api(farm, "GET", path))[0] == 200

        await eventually(stored, message="connection stored")
        node.signal(signal.SIGSTOP)
        frozen = asyncio.get_running_loop().time()
        try:
            status, answer = await api(farm, "DELETE", path)
            # The fault's duration, not a wait for a condition: the node stays stopped.
            await asyncio.sleep(max(0.0, frozen + FREEZE - asyncio.get_running_loop().time()))
        finally:
            node.signal(signal.SIGCONT)
        assert (status, answer["closed"], answer["pending"]) == (202, False, True)
        assert answer["id"] == client.connection_id
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_read_until_closed(client), timeout=10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1000,
            "closed by the pool manager",
        )

        async def gone() -> bool:
            return (await api(farm, "GET", path))[0] == 404

        await eventually(gone, within=5.0, message="record removed")
