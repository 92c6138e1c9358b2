"""The Python client against a node with tokens: a header, a provider, and a clear refusal.

The client shows its token as ``Authorization: Bearer``, asks its provider again for every
connection and before the token expires, never logs it, and stops with
:class:`AuthenticationError` when the node refuses it, instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.support.nodes import running_node, ws_url
from tests.support.tokens import SECRET, hs256
from tests.support.waiting import eventually
from wspool.client import AuthenticationError, Client, Error
from wspool.core.backoff import Backoff
from wspool.core.options import Secret
from wspool.core.protocol import CloseCode
from wspool.core.security import SecuritySettings
from wspool.server.node import close_promptly

KEYED = SecuritySettings(
    jwt_secret=Secret(SECRET), jwt_leeway=0, messages_per_second=0, connection_attempts_per_ip=0
)
FAST = Backoff(base=0.05, cap=0.2)


async def test_the_token_goes_in_a_header_is_asked_for_again_on_reconnect_and_never_logged(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []

    def provider() -> str:
        issued.append(hs256(sub="alice", subscribe=["*"], publish=["*"], n=len(issued)))
        return issued[-1]

    async with (
        running_node(redis_url, security=KEYED) as node,
        Client(ws_url(node), token=provider, backoff=FAST) as client,
    ):
        assert client.client_id == "alice"
        session = next(iter(node.sessions.values()))
        await close_promptly(session.websocket, CloseCode.SERVICE_RESTART, "restart")

        async def reconnected() -> bool:
            return client.connections == 2

        await eventually(reconnected, message="reconnected")
        assert len(issued) == 2
        await client.publish("prices", {"eur": 1.08})
    # The client's own lines, and websockets' log of its connections (handshake headers
    # at DEBUG); the node in this process logs through its own handlers, redacted there.
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("wspool.client")
    )
    assert "connection to" in logged  # the reconnect was logged, without the token
    assert "> Authorization: Bearer [redacted]" in logged
    assert not any(token in logged for token in issued)


async def test_a_token_about_to_expire_is_renewed_on_the_open_connection(
    redis_url: str,
) -> None:
    issued: list[str] = []

    async def provider() -> str:
        issued.append(hs256(sub="alice", subscribe=["*"], publish=["*"], ttl=7))
        return issued[-1]

    async with (
        running_node(redis_url, security=KEYED) as node,
        Client(ws_url(node), token=provider, backoff=FAST) as client,
    ):
        first_expiry = time.time() + 7

        async def past_first_expiry() -> bool:
            return time.time() > first_expiry + 1

        await eventually(past_first_expiry, within=10.0, interval=0.2, message="expiry passed")
        assert client.connections == 1  # never closed with 1008 "token expired"
        assert len(issued) >= 2
        assert await client.ping() < 1.0
        assert len(node.sessions) == 1


async def test_a_refused_token_stops_the_client_with_an_error_instead_of_retrying(
    redis_url: str,
) -> None:
    expired = hs256(sub="alice", ttl=-10)
    async with running_node(redis_url, security=KEYED) as node:
        client = Client(ws_url(node), token=expired, backoff=FAST, connect_timeout=5)
        with pytest.raises(AuthenticationError, match=r"401: .*expired"):
            await client.connect()
        async with asyncio.timeout(1):
            with pytest.raises(AuthenticationError):
                await client.publish("prices", 1)
            messages = [message async for message in client.messages()]
        assert [type(m) for m in messages] == [Error]
        assert isinstance(messages[0], Error)
        assert messages[0].code == "UNAUTHORIZED"
        assert client.connections == 0
        await client.close()


async def test_when_the_token_expires_and_no_fresh_one_comes_publish_raises_instead_of_hanging(
    redis_url: str,
) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        # Made once the node is up, so that a slow start does not spend the token's life.
        short = hs256(sub="alice", subscribe=["*"], publish=["*"], ttl=2)
        async with Client(ws_url(node), token=short, backoff=FAST) as client:
            assert client.connections == 1

            async def refused() -> bool:
                try:
                    async with asyncio.timeout(0.5):
                        await client.publish("prices", 1)
                except TimeoutError:
                    return False  # between connections: publish waits, as it should
                except AuthenticationError:
                    return True
                return False

            await eventually(refused, within=8.0, interval=0.1, message="publish raised")


async def test_a_resubscribe_the_new_token_no_longer_allows_ends_with_an_error_naming_it(
    redis_url: str,
) -> None:
    """After a reconnect the provider's token allows one channel less: the client stops
    resubscribing to it and says so, with the node's code and the channel's name."""
    channels = [["prices", "news"]]

    def provider() -> str:
        return hs256(sub="alice", subscribe=channels[-1], publish=["*"])

    async with (
        running_node(redis_url, security=KEYED) as node,
        Client(ws_url(node), token=provider, backoff=FAST) as client,
    ):
        await client.subscribe("prices")
        await client.subscribe("news")
        messages = client.messages()
        channels.append(["news"])
        session = next(iter(node.sessions.values()))
        await close_promptly(session.websocket, CloseCode.SERVICE_RESTART, "restart")
        async with asyncio.timeout(5):
            refused = await anext(m async for m in messages if isinstance(m, Error))
        assert (refused.code, refused.channel) == ("FORBIDDEN", "prices")
        assert client.positions.keys() == {"news"}
