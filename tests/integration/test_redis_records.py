"""What the Redis engine's connection records and presence promise beyond the store
contract, on one server and on a cluster: every key they write expires unless written
again, a Redis that forgot the engine's scripts (a restart, ``SCRIPT FLUSH``) is written to
all the same, and a channel left empty leaves its node's index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.integration.contracts.engines import record
from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord
from wspool.core.redisurl import parse_redis_url
from wspool.state.redis_client import Client, close, connect
from wspool.state.redis_engine import RedisEngine

TTL = 600.0


@pytest.fixture(params=["redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisEngine, Client, Keys]]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_session_url")
    else:
        url = request.getfixturevalue("redis_cluster").url
    engine = RedisEngine(url, Keys(f"records-{uuid.uuid4().hex[:8]}:"), session_ttl=TTL)
    keys = engine._keys  # (sharded on a cluster)
    redis = connect(parse_redis_url(url), socket_timeout=5.0)
    try:
        yield engine, redis, keys
    finally:
        await engine.close()
        await close(redis)


async def test_every_key_a_saved_record_writes_expires_within_the_session_ttl(
    store: tuple[RedisEngine, Client, Keys],
) -> None:
    engine, redis, keys = store
    await engine.save_connections([record("c1"), record("c2", client="u2")])
    written = [keys.conn("c1"), keys.conn("c2"), keys.server_connections("s1")]
    written += [keys.client_sessions("u1"), keys.client_sessions("u2")]
    for key in written:
        assert 0 < await redis.pttl(key) <= TTL * 1000, key


async def test_records_are_written_after_redis_forgot_the_scripts(
    store: tuple[RedisEngine, Client, Keys],
) -> None:
    engine, redis, _ = store
    await engine.save_connections([record("c1")])
    await _flush_scripts(redis)
    await engine.save_connections([record("c2")])
    assert await engine.get_connection("c2") == record("c2")
    await _flush_scripts(redis)
    moved_on = ConnectionRecord("c1", "s1", "u1", ("a",), 1.0, 9.0)
    await engine.update_connections([moved_on])
    assert await engine.get_connection("c1") == moved_on
    await _flush_scripts(redis)
    await engine.remove_connections([record("c2")])
    assert await engine.get_connection("c2") is None


async def _flush_scripts(redis: Client) -> None:
    await redis.script_flush()  # (on a cluster: on every node)


async def test_a_channel_its_last_member_left_is_dropped_from_the_nodes_index(
    store: tuple[RedisEngine, Client, Keys],
) -> None:
    # Left behind, every channel a node ever held would stay in its index until the node
    # stops, and the index would grow with every short-lived channel.
    engine, redis, keys = store
    await engine.update_presence("s1", {"news": {"c1": "u1", "c2": "u2"}, "chat": {"c1": "u1"}}, {})
    await engine.update_presence("s1", {}, {"news": ["c2"], "chat": ["c1"]})
    assert await redis.smembers(keys.server_channels("s1")) == {"news"}
    assert 0 < await redis.pttl(keys.presence("news", "s1")) <= TTL * 1000
    assert 0 < await redis.pttl(keys.server_channels("s1")) <= TTL * 1000
