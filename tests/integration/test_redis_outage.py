"""A Redis restart does not take a node down, and cross-node delivery resumes by itself."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.nodes import running_node, ws_url
from tests.support.processes import http_get
from tests.support.redis_server import RedisServer
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient
from wspool.server.node import ServerNode


async def _health(node: ServerNode) -> str:
    _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{node.port}/health")
    return str(body["status"])


async def test_nodes_survive_a_redis_restart_and_fan_out_again(own_redis: RedisServer) -> None:
    async with (
        running_node(own_redis.url, "node-a") as node_a,
        running_node(own_redis.url, "node-b") as node_b,
        TestClient(ws_url(node_a)) as subscriber,
        TestClient(ws_url(node_b)) as publisher,
    ):
        await subscriber.subscribe("feed")
        await publisher.publish("feed", "before")
        seen = await subscriber.recv()
        assert seen["payload"] == "before"

        own_redis.stop()

        async def degraded() -> bool:
            return await _health(node_a) == "degraded" and await _health(node_b) == "degraded"

        await eventually(degraded, message="nodes report degraded")
        # Clients stay connected and are told plainly that a publish did not go out.
        assert (await subscriber.request(type="ping"))["type"] == "pong"
        refused = await publisher.request(type="data", channel="feed", payload="lost")
        assert refused["type"] == "error"
        assert refused["payload"]["code"] == "INTERNAL"

        own_redis.start()

        async def recovered() -> bool:
            return await _health(node_a) == "ok" and await _health(node_b) == "ok"

        await eventually(recovered, within=10, message="nodes report ok")
        # The restarted Redis lost the channel's history, so the node cannot know what its
        # subscriber missed: it says so with 1012, and a resume with ``since`` confirms it.
        with pytest.raises(ConnectionClosed) as closed:
            await subscriber.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1012,
            "subscription interrupted",
        )
        async with TestClient(ws_url(node_a)) as back:
            reply = await back.request(type="subscribe", channel="feed", since=seen["offset"])
            assert (reply["type"], reply["recovered"]) == ("subscribed", False)
            await publisher.publish("feed", "after")
            assert (await back.recv())["payload"] == "after"

        # The restarted Redis lost everything; the nodes write their live state again.
        store = Store(own_redis.url)
        try:

            async def resynced() -> bool:
                return await store.smembers("server:node-b:connections") == {
                    publisher.connection_id
                }

            await eventually(resynced, message="connection state rewritten")
        finally:
            await store.close()
