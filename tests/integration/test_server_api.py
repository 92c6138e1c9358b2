"""The server API as a backend uses it: publishing through the gateway's REST API reaches the
subscribers on every node, in order, with the offsets the API answered; the history reads
what clients recover; bad requests are refused whole.

Three real nodes and a gateway on one real Redis, subscribers connected through the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.processes import Farm, GatewayProcess, http_request, running_farm
from tests.support.redis_server import RedisServer
from tests.support.wsclient import TestClient
from wspool.client import Publisher, RequestError
from wspool.core.history import StreamPosition


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, gateway_id="gw-api") as farm:
        yield farm


@pytest.fixture
async def subscribers(farm: Farm) -> AsyncIterator[list[TestClient]]:
    """One client on each of the three nodes."""
    assert farm.gateway.api("POST", "/pool/config", {"strategy": "round-robin"})[0] == 200
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(TestClient(farm.gateway.url)) for _ in "abc"]
        assert {c.connected["payload"]["serverId"] for c in clients} == {
            "node-1",
            "node-2",
            "node-3",
        }
        yield clients


def messages(gateway: GatewayProcess, channel: str, query: str = "") -> dict[str, Any]:
    status, body = gateway.api("GET", f"/channels/{channel}/messages{query}")
    assert status == 200, body
    return dict(body)


async def test_a_backend_reaches_subscribers_on_every_node_in_order_with_the_answered_offsets(
    farm: Farm, subscribers: list[TestClient]
) -> None:
    for client in subscribers:
        await client.subscribe("orders")
    answered: list[str] = []
    for n in range(10):
        status, body = farm.gateway.api("POST", "/channels/orders/messages", {"payload": n})
        assert (status, body["channel"]) == (201, "orders")
        answered.append(body["offset"])
    batch = {"messages": [{"payload": n} for n in range(10, 50)]}
    status, body = farm.gateway.api("POST", "/channels/orders/messages", batch)
    assert status == 201
    answered += body["offsets"]
    first = StreamPosition.parse(answered[0])
    assert answered == [first.advanced(i).token for i in range(50)]
    for client in subscribers:
        received = [await client.recv() for _ in range(50)]
        assert [f["payload"] for f in received] == list(range(50))
        assert [f["offset"] for f in received] == answered
        assert {f["type"] for f in received} == {"data"}
        assert {f["channel"] for f in received} == {"orders"}


async def test_a_client_resumes_from_an_answered_offset_and_the_history_agrees(
    farm: Farm,
) -> None:
    gateway = farm.gateway
    offsets = [
        gateway.api("POST", "/channels/feed/messages", {"payload": f"m{n}"})[1]["offset"]
        for n in range(6)
    ]
    async with TestClient(gateway.url) as client:
        reply = await client.request(type="subscribe", channel="feed", since=offsets[2])
        assert reply["recovered"] is True
        replayed = [await client.recv() for _ in range(3)]
    assert [f["offset"] for f in replayed] == offsets[3:]
    assert [f["payload"] for f in replayed] == ["m3", "m4", "m5"]

    after = messages(gateway, "feed", f"?since={offsets[2]}")
    assert after["recovered"] is True
    assert after["position"] == offsets[-1]
    assert after["messages"] == replayed  # the very frames the client got
    page = messages(gateway, "feed", f"?since={offsets[0]}&limit=2")
    assert [m["offset"] for m in page["messages"]] == offsets[1:3]
    newest = messages(gateway, "feed", "?limit=2&reverse=true")
    assert [m["payload"] for m in newest["messages"]] == ["m5", "m4"]
    assert [m["payload"] for m in messages(gateway, "feed")["messages"]] == [
        f"m{n}" for n in range(6)
    ]
    other_epoch = messages(gateway, "feed", "?since=0000ffff:1")
    assert (other_epoch["recovered"], other_epoch["messages"]) == (False, [])


async def test_a_broadcast_reaches_each_channel_once(
    farm: Farm, subscribers: list[TestClient]
) -> None:
    a, b, both = subscribers
    await a.subscribe("alerts.a")
    await b.subscribe("alerts.b")
    await both.subscribe("alerts.a")
    await both.subscribe("alerts.b")
    body = {"channels": ["alerts.a", "alerts.b", "alerts.a"], "payload": {"level": "high"}}
    status, answer = farm.gateway.api("POST", "/broadcast", body)
    assert status == 201
    assert set(answer["offsets"]) == {"alerts.a", "alerts.b"}
    got_a, got_b = await a.recv(), await b.recv()
    assert (got_a["channel"], got_a["offset"]) == ("alerts.a", answer["offsets"]["alerts.a"])
    assert (got_b["channel"], got_b["offset"]) == ("alerts.b", answer["offsets"]["alerts.b"])
    assert {(await both.recv())["channel"] for _ in range(2)} == {"alerts.a", "alerts.b"}
    assert (await both.request(type="ping"))["type"] == "pong"  # nothing twice


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/channels/bad%20name/messages", {"payload": 1}, 400, "invalid channel name"),
        ("/channels/ok/messages", {"payload": 1, "extra": 2}, 400, "extra: unknown field"),
        ("/channels/ok/messages", {}, 400, '"payload" or "messages"'),
        ("/channels/ok/messages", [1], 400, "JSON object"),
        ("/channels/ok/messages", {"messages": []}, 400, "1-100 messages"),
        ("/channels/ok/messages", {"messages": [{"payload": 1}] * 101}, 400, "1-100 messages"),
        ("/channels/ok/messages", {"messages": [{"payload": 1}, {}]}, 400, "messages[1]"),
        ("/broadcast", {"channels": ["ok", "#node:x"], "payload": 1}, 400, "channel name"),
        ("/broadcast", {"channels": ["ok"]}, 400, "payload"),
        ("/channels/ok/messages", {"payload": "x" * 70_000}, 413, "exceeds"),
    ],
)
def test_a_bad_publish_is_refused_whole_with_a_clear_error(
    farm: Farm, path: str, body: Any, status: int, says: str
) -> None:
    before = messages(farm.gateway, "ok")["position"]
    answer_status, answer = farm.gateway.api("POST", path, body)
    assert answer_status == status
    assert says in answer["error"]["message"]
    assert messages(farm.gateway, "ok")["position"] == before


def test_a_body_that_is_not_json_is_a_bad_request(farm: Farm) -> None:
    url = f"{farm.gateway.http}/api/v1/channels/ok/messages"
    status, body = http_request("POST", url, raw=b'{"payload": ')
    assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "query", ["?since=yesterday", "?limit=0", "?limit=1001", "?reverse=yes", "?page=2"]
)
def test_a_bad_history_query_is_a_bad_request(farm: Farm, query: str) -> None:
    status, body = farm.gateway.api("GET", f"/channels/feed/messages{query}")
    assert (status, body["error"]["code"]) == (400, "BAD_REQUEST")


async def test_the_python_publisher_batches_keeps_order_and_answers_each_offset(
    farm: Farm, subscribers: list[TestClient]
) -> None:
    for client in subscribers:
        await client.subscribe("ticks")
    async with Publisher(farm.gateway.http, max_connections=4) as publisher:
        # 250 calls at once: they go in batches of at most 100, in the order of the calls.
        offsets = await asyncio.gather(*(publisher.publish("ticks", n) for n in range(250)))
        more = await publisher.publish_many("ticks", ["a", "b"])
        spread = await publisher.broadcast(["ticks", "other"], "all")
        page = await publisher.history("ticks", since=offsets[-1], limit=10)
        with pytest.raises(RequestError) as refused:
            await publisher.publish("bad name", 1)
    assert refused.value.code == "BAD_REQUEST"
    first = StreamPosition.parse(offsets[0])
    assert [*offsets, *more, spread["ticks"]] == [first.advanced(i).token for i in range(253)]
    assert [m["payload"] for m in page["messages"]] == ["a", "b", "all"]
    for client in subscribers:
        received = [await client.recv() for _ in range(253)]
        assert [f["payload"] for f in received] == [*range(250), "a", "b", "all"]


async def test_the_python_publisher_keeps_each_request_within_the_body_limit(farm: Farm) -> None:
    big = "x" * 20_000  # ten of them would be a 200 KB batch: sent in several requests
    async with Publisher(farm.gateway.http) as publisher:
        offsets = await asyncio.gather(*(publisher.publish("big", [n, big]) for n in range(10)))
        with pytest.raises(ValueError, match="JSON"):
            await publisher.publish("big", float("nan"))
    first = StreamPosition.parse(offsets[0])
    assert offsets == [first.advanced(i).token for i in range(10)]
    history = messages(farm.gateway, "big", f"?since={first.advanced(-1).token}")
    assert [m["payload"][0] for m in history["messages"]] == list(range(10))


def test_a_publish_while_redis_is_down_is_a_clear_503_and_works_again_after(
    own_redis: RedisServer,
) -> None:
    gateway = GatewayProcess("gw-outage", own_redis.url, nodes=0).start()
    try:
        assert gateway.api("POST", "/channels/c/messages", {"payload": 1})[0] == 201
        own_redis.stop()
        started = time.monotonic()
        status, body = gateway.api("POST", "/channels/c/messages", {"payload": 2})
        assert (status, body["error"]["code"]) == (503, "STORE_UNAVAILABLE")
        # The store went away under its connections: the bus cannot tell whether a request
        # left before, so the answer says the outcome is not known.
        assert body["error"]["message"].startswith("published or not, unknown: ")
        assert time.monotonic() - started < 5.0
        own_redis.start()
        status, body = gateway.api("POST", "/channels/c/messages", {"payload": 3})
        assert status == 201, body
    finally:
        gateway.stop()
