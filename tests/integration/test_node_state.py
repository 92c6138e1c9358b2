"""A node keeps its records in Redis true: records appear, follow and disappear."""

from __future__ import annotations

import asyncio
import contextlib
import json

from websockets.exceptions import ConnectionClosed

from tests.support.nodes import running_node, ws_url
from tests.support.processes import http_get
from tests.support.store import Store
from tests.support.waiting import eventually
from tests.support.wsclient import TestClient, flood


async def test_connection_state_is_created_updated_and_removed(
    redis_url: str, store: Store
) -> None:
    async with running_node(redis_url, "node-a") as node:
        async with TestClient(ws_url(node, "?clientId=alice")) as client:
            key = f"conn:{client.connection_id}"

            async def stored() -> dict[str, str]:
                return await store.hgetall(key)

            record = await eventually(stored, message="conn record written")
            assert record["serverId"] == "node-a"
            assert record["clientId"] == "alice"
            assert json.loads(record["channels"]) == []
            assert float(record["createdAt"]) > 0
            assert await store.smembers("server:node-a:connections") == {client.connection_id}
            assert await store.smembers("client:alice:sessions") == {client.connection_id}

            await client.subscribe("news")
            await client.subscribe("alerts")

            async def channels_written() -> bool:
                channels: list[str] = json.loads((await stored())["channels"])
                return channels == ["alerts", "news"]

            await eventually(channels_written, message="channels written")

        async def gone() -> bool:
            return not await store.exists(key, "server:node-a:connections", "client:alice:sessions")

        await eventually(gone, message="state removed after close")


async def test_last_activity_advances_without_a_redis_write_per_message(
    redis_url: str, store: Store
) -> None:
    async with (
        running_node(redis_url, activity_flush_interval=0.3) as node,
        TestClient(ws_url(node)) as client,
    ):
        key = f"conn:{client.connection_id}"

        async def written() -> str | None:
            return await store.hget(key, "lastActivity")

        stamp = await eventually(written, message="record written")
        first = float(stamp or 0)
        await store.reset_stats()
        for _ in range(300):
            await client.request(type="ping")

        async def advanced() -> bool:
            return float(await written() or 0) > first

        await eventually(advanced, message="lastActivity advanced")
        hset_calls = await store.command_calls("hset")
        assert hset_calls <= 5, f"{hset_calls} HSETs for 300 messages"


async def test_a_silent_session_is_written_once(redis_url: str, store: Store) -> None:
    db = store.redis.connection_pool.connection_kwargs.get("db", 0)
    await store.redis.config_set("notify-keyspace-events", "Kh")  # every hash write, by key
    watch = store.redis.pubsub()
    try:
        async with (
            running_node(redis_url, activity_flush_interval=0.2) as node,
            TestClient(ws_url(node)) as client,
        ):
            key = f"conn:{client.connection_id}"

            async def written() -> str | None:
                return await store.hget(key, "lastActivity")

            await eventually(written, message="record written")
            await watch.subscribe(f"__keyspace@{db}__:{key}")

            async def writes(seconds: float) -> int:
                count, deadline = 0, asyncio.get_running_loop().time() + seconds
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    event = await watch.get_message(ignore_subscribe_messages=True, timeout=left)
                    count += event is not None
                return count

            assert await writes(1.0) == 0  # five activity flushes, nothing new to write
            await client.request(type="ping")
            assert await writes(1.0) >= 1  # new activity is written
    finally:
        await watch.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        await store.redis.config_set("notify-keyspace-events", "")


async def test_health_reports_counts_and_metrics_count_traffic(redis_url: str) -> None:
    async with running_node(redis_url, "node-h") as node:
        base = f"http://127.0.0.1:{node.port}"
        async with TestClient(ws_url(node)) as client:
            await client.subscribe("c")
            await client.publish("c", "hello")
            await client.recv()
            status, body = await asyncio.to_thread(http_get, f"{base}/health")
            assert status == 200
            assert body["status"] == "ok"
            assert (body["serverId"], body["connections"], body["channels"]) == ("node-h", 1, 1)
            metrics = await asyncio.to_thread(_text, f"{base}/metrics")
        assert "wspool_connections 1.0" in metrics
        assert "wspool_deliveries_total 1.0" in metrics
        assert "wspool_messages_received_total 2.0" in metrics


async def test_unknown_paths_get_404(redis_url: str) -> None:
    async with running_node(redis_url) as node:
        status = await asyncio.to_thread(_status, f"http://127.0.0.1:{node.port}/nope")
        assert status == 404


async def test_a_slow_consumer_is_closed_with_1008_and_others_keep_up(redis_url: str) -> None:
    async with (
        running_node(redis_url, send_buffer_limit=256 * 1024) as node,
        TestClient(ws_url(node)) as slow,
        TestClient(ws_url(node)) as fast,
        TestClient(ws_url(node)) as publisher,
    ):
        await slow.subscribe("firehose")
        await fast.subscribe("firehose")
        assert slow.ws is not None
        slow.ws.transport.pause_reading()  # a client that stops reading
        await flood(publisher, fast, "firehose")  # the fast one reads it, the slow one not

        async def dropped() -> bool:
            return node.stats.slow_consumers == 1

        await eventually(dropped, within=10, message="slow consumer dropped")
        slow.ws.transport.resume_reading()  # it catches up: the frames sent, then the code
        await read_until_closed(slow)
        assert slow.ws.close_code == 1008

        async def forgotten() -> bool:
            return len(node.sessions) == 2

        await eventually(forgotten, message="slow consumer's session removed")


async def read_until_closed(client: TestClient) -> None:
    assert client.ws is not None
    with contextlib.suppress(ConnectionClosed):
        while True:
            await client.ws.recv()


def _text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
