"""The ``NodeRegistry`` contract: nodes listed while their registration lives, and swept
with their records once it lapses."""

from __future__ import annotations

from tests.integration.contracts.engines import MakeEngine, Peek, record
from tests.support.waiting import eventually
from wspool.core.records import NodeInfo


async def test_registered_node_is_listed_until_its_registration_lapses(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    await engine.register_node(NodeInfo("s1", "ws://a:1", weight=2), ttl=2)
    await engine.register_node(NodeInfo("s2", "ws://b:1"), ttl=30)
    listed = await engine.list_nodes()
    assert [(n.id, n.url, n.weight) for n in listed] == [
        ("s1", "ws://a:1", 2),
        ("s2", "ws://b:1", 1),
    ]
    assert all(n.heartbeat_at > 0 for n in listed)

    async def only_s2() -> bool:
        return [n.id for n in await engine.list_nodes()] == ["s2"]

    await eventually(only_s2, within=6, message="s1 lapsed")


async def test_sweeping_purges_a_lapsed_node_and_its_connections(
    make_engine: MakeEngine, peek: Peek
) -> None:
    engine, _ = await make_engine()
    survivor, _ = await make_engine()
    await engine.register_node(NodeInfo("dead", "ws://a:1"), ttl=0.2)
    await engine.register_node(NodeInfo("alive", "ws://b:1"), ttl=30)
    await engine.save_connections([record("c1", "dead", "u1"), record("c2", "alive", "u1")])

    async def swept() -> list[str]:
        return await survivor.sweep_dead_nodes()

    assert await eventually(swept, within=3, message="dead node swept") == ["dead"]
    assert await survivor.get_connection("c1") is None
    assert await peek.server_connections("dead") == set()
    assert await peek.client_sessions("u1") == {"c2"}
    assert await survivor.get_connection("c2") == record("c2", "alive", "u1")
    assert await survivor.sweep_dead_nodes() == []


async def test_registering_says_whether_the_node_was_missing(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is True
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is False
    await engine.purge_node("s1")  # as survivors do to a node they take for dead
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is True


async def test_purge_removes_a_nodes_registration_and_records(
    make_engine: MakeEngine, peek: Peek
) -> None:
    engine, _ = await make_engine()
    await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30)
    await engine.save_connections([record("c1"), record("c2")])
    assert await engine.purge_node("s1") == 2
    assert await engine.list_nodes() == []
    assert await peek.client_sessions("u1") == set()


async def test_purge_removes_a_nodes_presence(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.update_presence("s1", {"news": {"c1": "u1"}}, {})
    await engine.update_presence("s2", {"news": {"c2": "u2"}}, {})
    await engine.purge_node("s1")
    assert await engine.presence("news", ["s1", "s2"]) == {"c2": "u2"}
    assert await engine.channel_counts(["s1", "s2"]) == {"news": 1}
