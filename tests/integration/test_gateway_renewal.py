"""Seamless moves of sessions whose clients renewed their token on the connection.

Two real nodes that check tokens (no leeway) behind a real gateway on a real Redis. Three
clients, one per place a token travels in a handshake (the ``Authorization`` header, the
``token`` query parameter, the ``bearer.<token>`` subprotocol), connect to node-1 with a
token that expires within seconds, renew it with an ``auth`` message and wait past the first
token's ``exp``. Then node-1 is SIGKILLed, or drains (SIGTERM): every client must stay
connected, its session on node-2, and receive every message published meanwhile (a
numbered message every 20 ms, through the gateway's REST API), each once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.support.processes import OPEN, Farm, running_farm
from tests.support.rawsocket import metric
from tests.support.tokens import SECRET, hs256
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient

CHANNEL = "renewed"
FIRST_TTL = 5
"""Seconds the clients' first token lives: time to connect and renew, not much more."""
NODE_SECURITY = (
    *("--jwt-secret", SECRET, "--jwt-leeway", "0"),
    *(flag for flag in OPEN if flag != "--insecure"),  # unthrottled
)


def _token(ttl: float) -> str:
    return hs256(sub="alice", subscribe=[CHANNEL], ttl=ttl)


PLACES: dict[str, Callable[[str, str], TestClient]] = {
    "header": lambda url, token: TestClient(
        url, additional_headers={"Authorization": f"Bearer {token}"}
    ),
    "query": lambda url, token: TestClient(f"{url}?token={token}"),
    "subprotocol": lambda url, token: TestClient(
        url, subprotocols=[Subprotocol("wspool"), Subprotocol(f"bearer.{token}")]
    ),
}


@pytest.fixture
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        nodes=2,
        node_args=("--drain-window", "1", "--node-ttl", "10"),
        gateway_args=("--strategy", "round-robin"),
        node_security=NODE_SECURITY,
    ) as farm:
        yield farm


class Reader:
    """A connected, subscribed client's stream: the numbers it received, its other frames,
    and how its connection ended (if it did)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.numbers: list[int] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: str | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self.client.ws
        assert ws is not None
        try:
            async for text in ws:
                frame = json.loads(text)
                if frame["type"] == "data":
                    self.numbers.append(frame["payload"]["n"])
                else:
                    self.replies.put_nowait(frame)
        except ConnectionClosed:
            pass
        self.closed = f"closed with {ws.close_code} {ws.close_reason}"

    async def request(self, **frame: Any) -> dict[str, Any]:
        await self.client.send(**frame)
        async with asyncio.timeout(5):
            return await self.replies.get()


@contextlib.asynccontextmanager
async def _clients_on(farm: Farm, node: str, token: str) -> AsyncIterator[dict[str, Reader]]:
    """One subscribed client per place of the token, each relayed to ``node``."""
    async with contextlib.AsyncExitStack() as stack:
        readers = {}
        for place, client_with in PLACES.items():
            while True:
                client = await stack.enter_async_context(client_with(farm.gateway.url, token))
                if client.connected["payload"]["serverId"] == node:
                    break
            await client.subscribe(CHANNEL)
            readers[place] = Reader(client)
        yield readers


async def _publish(farm: Farm, stop: asyncio.Event) -> int:
    """A numbered message every 20 ms until ``stop``; how many were published."""
    n = 0
    while not stop.is_set():
        status, _ = await asyncio.to_thread(
            farm.gateway.api, "POST", f"/channels/{CHANNEL}/messages", {"payload": {"n": n}}
        )
        assert status == 201
        n += 1
        await asyncio.sleep(0.02)
    return n


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "drained"])
async def test_a_session_moves_with_the_token_its_client_renewed(
    farm: Farm, fault: signal.Signals
) -> None:
    first = _token(FIRST_TTL)
    expires = jwt.decode(first, options={"verify_signature": False})["exp"]
    async with _clients_on(farm, "node-1", first) as readers:
        stop = asyncio.Event()
        publishing = asyncio.create_task(_publish(farm, stop))
        for reader in readers.values():
            reply = await reader.request(type="auth", payload={"token": _token(3600)})
            assert reply["type"] == "authenticated", reply
        await asyncio.sleep(expires + 1 - time.time())  # the first token has expired
        assert {place: r.closed for place, r in readers.items() if r.closed} == {}
        farm.nodes[0].signal(fault)
        if fault is signal.SIGTERM:
            assert await asyncio.to_thread(farm.nodes[0].wait, 20) == 0
        await asyncio.sleep(2)
        stop.set()
        published = await publishing

        async def all_in() -> bool:
            return all(len(r.numbers) >= published or r.closed for r in readers.values())

        await eventually(all_in, within=10, interval=0.1)
        assert {place: r.closed for place, r in readers.items() if r.closed} == {}
        for place, reader in readers.items():
            assert reader.numbers == list(range(published)), place
            assert (await reader.request(type="ping"))["type"] == "pong", place
    assert metric(farm.gateway.http, "wspool_gateway_sessions_moved_total") >= len(PLACES)
