"""A node speaks the wire protocol: replies, errors, and a connection that survives them."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.nodes import running_node, ws_url
from tests.support.wsclient import TestClient

BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("{not json", "BAD_REQUEST"),
    (b"\x00\x01binary", "BAD_REQUEST"),
    ("[1,2,3]", "BAD_REQUEST"),
    ('{"type":"shout","messageId":"x"}', "BAD_REQUEST"),
    ('{"type":"ping"}', "BAD_REQUEST"),
    ('{"type":"subscribe","messageId":"x"}', "BAD_REQUEST"),
    ('{"type":"data","messageId":"x","payload":1}', "BAD_REQUEST"),
    ('{"type":"subscribe","channel":"no spaces","messageId":"x"}', "BAD_REQUEST"),
    ('{"type":"unsubscribe","channel":"never-joined","messageId":"x"}', "NOT_SUBSCRIBED"),
    (
        json.dumps({"type": "data", "channel": "c", "messageId": "x", "payload": "x" * 70_000}),
        "TOO_LARGE",
    ),
]


async def test_first_frame_names_the_connection_the_node_and_the_client(redis_url: str) -> None:
    async with (
        running_node(redis_url, "node-a") as node,
        TestClient(ws_url(node, "?clientId=alice")) as client,
    ):
        payload = client.connected["payload"]
        assert payload["serverId"] == "node-a"
        assert payload["clientId"] == "alice"
        assert len(payload["connectionId"]) == 32


async def test_a_client_without_client_id_is_its_own_client(redis_url: str) -> None:
    async with running_node(redis_url) as node, TestClient(ws_url(node)) as client:
        assert client.connected["payload"]["clientId"] == client.connection_id


async def test_ping_gets_a_pong_with_the_same_message_id(redis_url: str) -> None:
    async with running_node(redis_url) as node, TestClient(ws_url(node)) as client:
        assert await client.request(type="ping", messageId="p-1") == {
            "type": "pong",
            "messageId": "p-1",
        }


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frame_gets_an_error_and_the_connection_lives(
    redis_url: str, frame: str | bytes, code: str
) -> None:
    async with running_node(redis_url) as node, TestClient(ws_url(node)) as client:
        await client.send_raw(frame)
        reply = await client.recv()
        assert reply["type"] == "error"
        assert reply["payload"]["code"] == code
        assert reply["payload"]["message"]
        assert (await client.request(type="ping", messageId="after"))["type"] == "pong"


async def test_a_frame_over_the_hard_limit_closes_with_1009(redis_url: str) -> None:
    async with (
        running_node(redis_url, max_frame_bytes=100_000) as node,
        connect(ws_url(node), max_size=None) as ws,
    ):
        await ws.recv()
        await ws.send("x" * 100_001)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1009


async def test_subscribe_is_confirmed_and_repeating_it_changes_nothing(redis_url: str) -> None:
    async with running_node(redis_url) as node, TestClient(ws_url(node)) as client:
        first = await client.request(type="subscribe", channel="c", messageId="s")
        # The channel's position when the subscription took effect (recovery extension).
        assert first.pop("offset").endswith(":0")
        assert first == {"type": "subscribed", "channel": "c", "messageId": "s"}
        again = await client.request(type="subscribe", channel="c", messageId="s")
        assert again == {"type": "subscribed", "channel": "c", "messageId": "s"}
        await client.publish("c", 1)
        assert (await client.recv())["payload"] == 1
        assert (await client.request(type="ping"))["type"] == "pong"  # exactly one copy came


async def test_after_unsubscribe_no_more_data_arrives(redis_url: str) -> None:
    async with (
        running_node(redis_url) as node,
        TestClient(ws_url(node)) as subscriber,
        TestClient(ws_url(node)) as publisher,
    ):
        await subscriber.subscribe("c")
        assert await subscriber.request(type="unsubscribe", channel="c", messageId="u") == {
            "type": "unsubscribed",
            "channel": "c",
            "messageId": "u",
        }
        await publisher.publish("c", "lost on purpose")
        await subscriber.subscribe("marker")
        await publisher.publish("marker", "m")
        assert (await subscriber.recv())["channel"] == "marker"


async def test_data_reaches_subscribers_with_channel_payload_and_message_id(
    redis_url: str,
) -> None:
    async with (
        running_node(redis_url) as node,
        TestClient(ws_url(node)) as subscriber,
        TestClient(ws_url(node)) as publisher,
    ):
        await subscriber.subscribe("prices")
        await publisher.send(type="data", channel="prices", payload={"eur": 1.08}, messageId="q-9")
        frame = await subscriber.recv()
        assert frame == {
            "type": "data",
            "channel": "prices",
            "payload": {"eur": 1.08},
            "messageId": "q-9",
            "offset": frame["offset"],
        }
        assert frame["offset"].endswith(":1")  # the channel's first message
