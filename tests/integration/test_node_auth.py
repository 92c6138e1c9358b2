"""A node with a key: who gets in, what each token allows, and what happens at expiry."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.nodes import running_node, ws_url
from tests.support.store import Store
from tests.support.tokens import SECRET, hs256, token_claims
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient
from wspool.core.options import Secret
from wspool.core.security import SecuritySettings

KEYED = SecuritySettings(jwt_secret=Secret(SECRET), jwt_leeway=0, messages_per_second=0)
READER = hs256(sub="reader", subscribe=["news.*"])
WRITER = hs256(sub="writer", subscribe=["news.*"], publish=["news.sports"])


def bearer(token: str) -> dict[str, object]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def refusal(url: str, **options: object) -> tuple[int, dict[str, str]]:
    with pytest.raises(InvalidStatus) as raised:
        async with connect(url, open_timeout=5, **options):  # type: ignore[arg-type]
            pass
    response = raised.value.response
    return response.status_code, json.loads(response.body)["error"]


async def test_a_client_without_a_token_is_refused_with_401(redis_url: str) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        status, error = await refusal(ws_url(node))
        assert (status, error["code"]) == (401, "UNAUTHORIZED")
        assert "token is required" in error["message"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (hs256(secret="another-secret-that-is-at-least-32-bytes"), "Signature"),
        (hs256(token_claims(ttl=-5)), "expired"),
        ("garbage", "invalid token"),
    ],
)
async def test_a_bad_token_is_refused_with_401_and_the_reason(
    redis_url: str, token: str, reason: str
) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        status, error = await refusal(ws_url(node, f"?token={token}"))
        assert status == 401
        assert reason in error["message"]


async def test_the_token_is_taken_from_header_query_or_subprotocol(redis_url: str) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        ways: list[tuple[str, dict[str, object]]] = [
            (ws_url(node, "?clientId=mallory"), bearer(READER)),
            (ws_url(node, f"?token={READER}"), {}),
            (ws_url(node), {"subprotocols": ["wspool", f"bearer.{READER}"]}),
        ]
        for url, options in ways:
            async with TestClient(url, **options) as client:
                assert client.connected["payload"]["clientId"] == "reader"
                assert client.ws is not None
                expected = "wspool" if "subprotocols" in options else None
                assert client.ws.subprotocol == expected


async def test_a_subprotocol_token_without_wspool_is_refused(redis_url: str) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        status, error = await refusal(ws_url(node), subprotocols=[f"bearer.{READER}"])
        assert status == 401
        assert "wspool" in error["message"]


async def test_denied_subscribe_and_publish_get_forbidden_and_change_nothing(
    redis_url: str, store: Store
) -> None:
    async with (
        running_node(redis_url, security=KEYED) as node,
        TestClient(ws_url(node), **bearer(READER)) as reader,
        TestClient(ws_url(node), **bearer(WRITER)) as writer,
    ):
        assert await reader.error_code(type="subscribe", channel="private") == "FORBIDDEN"
        await reader.subscribe("news.sports")
        assert await reader.error_code(type="data", channel="news.sports", payload=1) == (
            "FORBIDDEN"
        )
        await writer.publish("news.sports", "allowed")
        assert (await reader.recv())["payload"] == "allowed"

        async def recorded() -> bool:
            record = await store.hgetall(f"conn:{reader.connection_id}")
            return record.get("channels") == '["news.sports"]'

        await eventually(recorded, message="only the allowed channel recorded")
        assert (await reader.request(type="ping"))["type"] == "pong"  # nothing else arrived


async def test_the_connection_closes_with_1008_when_the_token_expires(redis_url: str) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        # Made once the node is up, so that a slow start does not spend the token's life.
        token = hs256(token_claims(ttl=2.0))
        async with TestClient(ws_url(node), **bearer(token)) as client:
            assert client.ws is not None
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(6):
                    await client.ws.recv()
            assert client.ws.close_code == 1008
            assert client.ws.close_reason == "token expired"


async def test_a_fresh_token_keeps_the_connection_open(redis_url: str) -> None:
    async with running_node(redis_url, security=KEYED) as node:
        # Made once the node is up; long enough for two subscribes and the renewal.
        first = token_claims(sub="reader", ttl=2.0, subscribe=["news.*", "chat"])
        async with TestClient(ws_url(node), **bearer(hs256(first))) as client:
            await client.subscribe("chat")
            await client.subscribe("news.a")
            fresh = hs256(token_claims(sub="reader", ttl=60, subscribe=["news.*"]))
            reply = await client.request(type="auth", payload={"token": fresh}, messageId="a1")
            assert reply["type"] == "authenticated"
            assert reply["messageId"] == "a1"
            assert reply["payload"]["clientId"] == "reader"
            assert reply["payload"]["expiresAt"] > first["exp"]

            async def past_first_expiry() -> bool:
                assert (await client.request(type="ping"))["type"] == "pong"
                return bool(time.time() > first["exp"] + 0.5)

            await eventually(past_first_expiry, within=6, interval=0.2, message="still open")
            # The fresh token no longer grants chat: that subscription ended with the renewal.
            assert await client.error_code(type="unsubscribe", channel="chat") == "NOT_SUBSCRIBED"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (hs256(sub="someone-else"), "FORBIDDEN"),
        (hs256(token_claims(sub="reader", ttl=-5)), "UNAUTHORIZED"),
        ("garbage", "UNAUTHORIZED"),
    ],
)
async def test_a_bad_fresh_token_is_refused_and_the_old_one_holds(
    redis_url: str, token: str, code: str
) -> None:
    async with (
        running_node(redis_url, security=KEYED) as node,
        TestClient(ws_url(node), **bearer(READER)) as client,
    ):
        assert await client.error_code(type="auth", payload={"token": token}) == code
        await client.subscribe("news.a")


async def test_browsers_from_other_origins_are_refused_with_403(redis_url: str) -> None:
    security = SecuritySettings(insecure=True, allowed_origins=("https://app.example",))
    async with running_node(redis_url, security=security) as node:
        status, error = await refusal(ws_url(node), origin="https://evil.example")
        assert (status, error["code"]) == (403, "FORBIDDEN")
        async with TestClient(ws_url(node), origin="https://app.example"):
            pass
        async with TestClient(ws_url(node)):  # not a browser: no Origin header
            pass


async def test_an_open_node_lets_everyone_in_and_declines_auth(redis_url: str) -> None:
    async with running_node(redis_url) as node, TestClient(ws_url(node)) as client:
        await client.subscribe("anything")
        assert await client.error_code(type="auth", payload={"token": READER}) == "BAD_REQUEST"
