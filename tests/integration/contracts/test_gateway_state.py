"""The ``GatewayState`` contract: replica registrations, health verdicts on nodes, and the
pool config, shared by every gateway replica (and read by the operator)."""

from __future__ import annotations

from tests.integration.contracts.engines import MakeEngine
from tests.support.waiting import eventually
from wspool.core.records import NodeHealth, NodeInfo


async def test_replicas_count_each_other_until_they_lapse_or_leave(
    make_engine: MakeEngine,
) -> None:
    first, _ = await make_engine(start=False)
    second, _ = await make_engine(start=False)
    assert await first.register_gateway("gw-a", ttl=30) == 1
    # Long enough to outlive the next call on a busy machine, short enough to watch lapse.
    assert await second.register_gateway("gw-b", ttl=2) == 2
    assert await first.register_gateway("gw-a", ttl=30) == 2  # a refresh counts once

    async def alone() -> bool:
        return await first.register_gateway("gw-a", ttl=30) == 1

    await eventually(alone, within=6, message="gw-b lapsed")
    assert await second.register_gateway("gw-b", ttl=30) == 2
    await second.deregister_gateway("gw-b")
    assert await first.register_gateway("gw-a", ttl=30) == 1


async def test_a_health_verdict_is_read_by_every_replica_until_it_lapses(
    make_engine: MakeEngine,
) -> None:
    monitor, _ = await make_engine(start=False)
    reader, _ = await make_engine(start=False)
    verdict = NodeHealth("s1", healthy=False, last_health_check=5.0, checked_by="gw-a")
    assert await reader.get_node_health("s1") is None
    await monitor.save_node_health(verdict, ttl=2)
    assert await reader.get_node_health("s1") == verdict

    async def lapsed() -> bool:
        return await reader.get_node_health("s1") is None

    await eventually(lapsed, within=6, message="verdict lapsed")


async def test_purging_a_node_drops_its_health_verdict(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine(start=False)
    await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30)
    await engine.save_node_health(NodeHealth("s1", healthy=True, last_health_check=5.0), ttl=30)
    await engine.purge_node("s1")
    assert await engine.get_node_health("s1") is None


async def test_the_pool_config_is_none_until_set_then_what_was_set(
    make_engine: MakeEngine,
) -> None:
    writer, _ = await make_engine(start=False)
    reader, _ = await make_engine(start=False)
    assert await reader.get_pool_config() is None
    document = {"strategy": "least-connections", "weights": {"s1": 3}, "slowStart": 2.5}
    await writer.set_pool_config(document)
    assert await reader.get_pool_config() == document
    document["strategy"] = "round-robin"  # the stored copy is the store's own
    assert (await reader.get_pool_config() or {})["strategy"] == "least-connections"
