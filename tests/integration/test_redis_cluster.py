"""Nodes on a real Redis Cluster (3 primaries, a replica each): fan-out over shards, a
primary killed under load, a slot moved; and a pool served through its gateway on a cluster
and on a Sentinel-watched primary.

The cluster is the session's (tests/conftest.py); each test keeps its keys under a prefix
of its own. The channels are chosen so that each lives on a different shard. The failover
test prints how long the clients of the killed shard's channels took to receive again and
how many of them resumed with ``recovered: false`` (docs/recovery.md records the figures).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.processes import NodeProcess, running_farm
from tests.support.redis_cluster import RedisCluster
from tests.support.waiting import eventually
from wspool.client import Client, Data, Error, Resubscribed
from wspool.core.backoff import Backoff
from wspool.core.keys import Keys
from wspool.operator.cleanup import delete_keys

pytestmark = pytest.mark.redis

RATE = 100
"""Messages per second on each channel."""
DURATION = 6.0
KILL_AT = 1.0
TICK = 0.02


def channels_on_each_shard(cluster: RedisCluster, keys: Keys) -> list[str]:
    """One channel name per primary, each hashing to a slot of a different one."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"room-{i}"
        found.setdefault(cluster.primary_port_of(keys.history(name)), name)
        if len(found) == 3:
            return list(found.values())
    raise AssertionError("no channel found on some shard")


@pytest.fixture
def prefix() -> str:
    return f"cluster-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def farm(redis_cluster: RedisCluster, prefix: str) -> Iterator[list[NodeProcess]]:
    extra = ("--key-prefix", prefix, "--log-level", "warning", "--history-size", "5000")
    nodes = [NodeProcess(f"node-{i}", redis_cluster.url, *extra) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@dataclass
class Subscriber:
    """One client subscribed to every channel, and what it saw on each."""

    client: Client
    seqs: dict[str, list[int]] = field(default_factory=dict)
    resumed: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    live_again: dict[str, float] = field(default_factory=dict)

    async def consume(self) -> None:
        async for message in self.client.messages():
            now = time.monotonic()
            if isinstance(message, Resubscribed):
                self.resumed.setdefault(message.channel, []).append((now, message.recovered))
            elif isinstance(message, Data):
                seq, published_at = message.payload
                self.seqs.setdefault(message.channel, []).append(seq)
                back = self.resumed.get(message.channel)
                if back and message.channel not in self.live_again and published_at >= back[-1][0]:
                    self.live_again[message.channel] = now


async def test_each_shard_carries_only_its_channels_and_every_node_gets_every_message(
    redis_cluster: RedisCluster, farm: list[NodeProcess], prefix: str
) -> None:
    keys = Keys(prefix, sharded=True)
    channels = channels_on_each_shard(redis_cluster, keys)
    subscribers = [Subscriber(Client([node.url])) for node in farm]
    for subscriber in subscribers:
        await subscriber.client.connect()
        for channel in channels:
            await subscriber.client.subscribe(channel)
    consumers = [asyncio.create_task(s.consume()) for s in subscribers]
    publisher = Client([farm[2].url])
    await publisher.connect()
    try:
        for seq in range(300):  # one burst over the three shards
            await publisher.publish(channels[seq % 3], [seq, 0.0])

        async def all_delivered() -> bool:
            return all(sum(len(s.seqs.get(c, [])) for c in channels) == 300 for s in subscribers)

        deadline = time.monotonic() + 10
        while not await all_delivered():
            assert time.monotonic() < deadline, "not every message arrived"
            await asyncio.sleep(0.05)
        for subscriber in subscribers:
            for i, channel in enumerate(channels):
                assert subscriber.seqs[channel] == list(range(i, 300, 3))
        # Sharded pub/sub: each primary knows only the channels of its own slots.
        for channel in channels:
            port = redis_cluster.primary_port_of(keys.channel(channel))
            listed = redis_cluster.node_at(port).command("PUBSUB", "SHARDCHANNELS")
            assert keys.channel(channel).encode() in listed
            assert all(
                keys.channel(other).encode() not in listed for other in channels if other != channel
            )
    finally:
        for consumer in consumers:
            consumer.cancel()
        for subscriber in subscribers:
            await subscriber.client.close()
        await publisher.close()


async def test_a_primary_killed_under_load_leaves_every_subscriber_whole_or_told(
    redis_cluster: RedisCluster, farm: list[NodeProcess], prefix: str
) -> None:
    keys = Keys(prefix, sharded=True)
    channels = channels_on_each_shard(redis_cluster, keys)
    doomed = channels[0]
    subscribers = [
        Subscriber(Client([farm[i % 3].url], backoff=Backoff(0.05, 0.5))) for i in range(9)
    ]
    for subscriber in subscribers:
        await subscriber.client.connect()
        for channel in channels:
            await subscriber.client.subscribe(channel)
    consumers = [asyncio.create_task(s.consume()) for s in subscribers]
    publisher = Client([farm[2].url])
    await publisher.connect()
    refused: set[str] = set()

    async def watch_refusals() -> None:
        async for message in publisher.messages():
            if isinstance(message, Error) and message.message_id:
                refused.add(message.message_id)

    watcher = asyncio.create_task(watch_refusals())
    total = int(RATE * DURATION)
    killed = None
    killed_at = 0.0
    started = time.monotonic()
    sent = 0
    try:
        while sent < total:
            elapsed = time.monotonic() - started
            if killed is None and elapsed >= KILL_AT:
                killed = redis_cluster.kill_primary_of(keys.history(doomed))
                killed_at = time.monotonic()
            due = min(total, int(elapsed * RATE) + 1)
            while sent < due:
                now = time.monotonic()
                for channel in channels:
                    await publisher.publish(channel, [sent, now], f"{channel}-{sent}")
                sent += 1
            await asyncio.sleep(TICK)

        def last_seen() -> dict[str, list[int]]:
            return {c: [(s.seqs.get(c) or [-1])[-1] for s in subscribers] for c in channels}

        def settled() -> bool:
            # Up to each channel's last message that was not refused.
            return all(
                min(seen) == max(n for n in range(-1, total) if f"{c}-{n}" not in refused)
                for c, seen in last_seen().items()
            )

        deadline = time.monotonic() + 20
        while not settled():
            assert time.monotonic() < deadline, f"never caught up: {last_seen()}, {refused}"
            await asyncio.sleep(0.1)
    finally:
        for task in (*consumers, watcher):
            task.cancel()
        for subscriber in subscribers:
            await subscriber.client.close()
        await publisher.close()
        if killed is not None:
            redis_cluster.restart(killed)

    for channel in channels:  # publishing works again on every channel before the end
        assert any(f"{channel}-{n}" not in refused for n in range(total - RATE, total)), channel
    told = 0
    for subscriber in subscribers:
        for channel in channels:
            seqs = subscriber.seqs[channel]
            assert seqs == sorted(set(seqs)), "a frame came twice or out of order"
            accepted = [n for n in range(total) if f"{channel}-{n}" not in refused]
            resumes = subscriber.resumed.get(channel, [])
            if all(recovered for _, recovered in resumes):
                assert [n for n in seqs if n in set(accepted)] == accepted, channel
            else:
                told += 1
                assert channel == doomed, "a channel of a healthy shard lost frames"
    affected = [s for s in subscribers if doomed in s.resumed]
    assert affected, "the failover went unnoticed"
    back = sorted(s.live_again[doomed] - killed_at for s in affected if doomed in s.live_again)
    print(
        f"\ncluster failover: {len(subscribers)} subscribers x {len(channels)} channels,"
        f" {RATE} msg/s each; {len(refused)} publishes refused;"
        f" {len(affected)} subscribers of the failed shard's channel resumed,"
        f" {told} with recovered: false; live again after median"
        f" {back[len(back) // 2] * 1000 if back else 0:.0f} ms, max"
        f" {back[-1] * 1000 if back else 0:.0f} ms"
    )


async def test_deleting_a_pools_keys_reaches_every_shard(
    redis_cluster: RedisCluster, farm: list[NodeProcess], prefix: str
) -> None:
    keys = Keys(prefix, sharded=True)
    channels = channels_on_each_shard(redis_cluster, keys)
    publisher = Client([farm[0].url])
    await publisher.connect()
    try:
        for channel in channels:
            await publisher.subscribe(channel)
            await publisher.publish(channel, [0, 0.0])
            async with asyncio.timeout(5):
                async for message in publisher.messages():
                    if isinstance(message, Data):
                        break
    finally:
        await publisher.close()
    for node in farm:
        node.stop()
    assert await delete_keys(redis_cluster.url, prefix) >= 2 * len(channels)
    assert await delete_keys(redis_cluster.url, prefix) == 0


async def test_subscribers_hear_a_channel_again_after_its_slot_moves_to_another_shard(
    redis_cluster: RedisCluster, farm: list[NodeProcess], prefix: str
) -> None:
    keys = Keys(prefix, sharded=True)
    channel = channels_on_each_shard(redis_cluster, keys)[0]
    subscribers = [Subscriber(Client([node.url], backoff=Backoff(0.05, 0.5))) for node in farm]
    for subscriber in subscribers:
        await subscriber.client.connect()
        await subscriber.client.subscribe(channel)
    consumers = [asyncio.create_task(s.consume()) for s in subscribers]
    publisher = Client([farm[2].url])
    await publisher.connect()

    async def heard(seq: int) -> bool:
        return all(seq in s.seqs.get(channel, []) for s in subscribers)

    try:
        await publisher.publish(channel, [0, 0.0])
        await eventually(lambda: heard(0), message="the first message")
        redis_cluster.move_slot_of(keys.history(channel))
        seq = 1

        async def heard_again() -> bool:
            nonlocal seq
            await publisher.publish(channel, [seq, time.monotonic()])
            seq += 1
            await asyncio.sleep(0.05)
            return await heard(seq - 1)

        await eventually(heard_again, within=10, message="a message after the move")
    finally:
        for consumer in consumers:
            consumer.cancel()
        for subscriber in subscribers:
            await subscriber.client.close()
        await publisher.close()
    for subscriber in subscribers:
        seqs = subscriber.seqs[channel]
        assert seqs == sorted(set(seqs)), "a frame came twice or out of order"


@pytest.mark.parametrize("topology", ["redis_cluster", "redis_sentinel"])
async def test_a_pool_serves_clients_through_its_gateway(
    request: pytest.FixtureRequest, topology: str
) -> None:
    url = request.getfixturevalue(topology).url
    with running_farm(url, nodes=2) as farm:
        subscriber = Client([farm.gateway.url])
        publisher = Client([farm.gateway.url])
        await subscriber.connect()
        await publisher.connect()
        try:
            await subscriber.subscribe("news")
            await publisher.publish("news", "hello")
            async with asyncio.timeout(5):
                async for message in subscriber.messages():
                    if isinstance(message, Data):
                        assert message.payload == "hello"
                        break
        finally:
            await subscriber.close()
            await publisher.close()
