"""The ``ConnectionStore`` contract: connection records, used tickets, tombstones."""

from __future__ import annotations

from tests.integration.contracts.engines import MakeEngine, Peek, record
from tests.support.waiting import eventually
from wspool.core.records import ConnectionRecord


async def test_saved_connection_is_readable_and_indexed_by_server_and_client(
    make_engine: MakeEngine, peek: Peek
) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1"), record("c2", client="u2")])
    assert await engine.get_connection("c1") == record("c1")
    assert await peek.server_connections("s1") == {"c1", "c2"}
    assert await peek.client_sessions("u1") == {"c1"}


async def test_saving_again_updates_the_record(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1")])
    updated = ConnectionRecord("c1", "s1", "u1", ("a", "b"), 1.0, 9.0)
    await engine.save_connections([updated])
    assert await engine.get_connection("c1") == updated


async def test_an_update_rewrites_channels_and_activity_of_a_saved_record_only(
    make_engine: MakeEngine, peek: Peek
) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1")])
    moved_on = ConnectionRecord("c1", "s1", "u1", ("a", "b"), 1.0, 9.0)
    gone = ConnectionRecord("c9", "s1", "u1", ("a",), 1.0, 9.0)
    await engine.update_connections([moved_on, gone])
    assert await engine.get_connection("c1") == moved_on
    assert await engine.get_connection("c9") is None
    assert await peek.server_connections("s1") == {"c1"}


async def test_removed_connection_leaves_nothing_behind(
    make_engine: MakeEngine, peek: Peek
) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1"), record("c2")])
    await engine.remove_connections([record("c1")])
    assert await engine.get_connection("c1") is None
    assert await peek.server_connections("s1") == {"c2"}
    await engine.remove_connections([record("c2")])
    assert await peek.server_connections("s1") == set()
    assert await peek.client_sessions("u1") == set()


async def test_unknown_connection_reads_as_none(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    assert await engine.get_connection("nope") is None


async def test_a_ticket_is_used_once_across_engines_until_its_mark_lapses(
    make_engine: MakeEngine,
) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    assert await first.use_ticket("t1", ttl=2)
    assert not await second.use_ticket("t1", ttl=2)
    assert await second.use_ticket("t2", ttl=30)

    async def usable_again() -> bool:
        return await first.use_ticket("t1", ttl=30)

    await eventually(usable_again, within=6, message="used mark lapsed")
    assert not await second.use_ticket("t1", ttl=30)


async def test_tombstones_name_the_closed_connections_among_those_asked_about(
    make_engine: MakeEngine,
) -> None:
    gateway, _ = await make_engine()
    node, _ = await make_engine()
    assert await node.closed_connections([]) == set()
    await gateway.mark_closed("c1", ttl=30)
    await gateway.mark_closed("c3", ttl=30)
    assert await node.closed_connections(["c1", "c2", "c3"]) == {"c1", "c3"}


async def test_a_clients_connections_are_found_on_every_node(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    mine = [record("c1"), record("c2", server="s2")]
    await engine.save_connections([*mine, record("c3", client="u2")])
    assert await engine.client_connections("u1") == mine
    assert await engine.client_connections("nobody") == []


async def test_presence_follows_joins_and_leaves_on_each_node(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.update_presence("s1", {"news": {"c1": "u1", "c2": "u2"}, "chat": {"c1": "u1"}}, {})
    await engine.update_presence("s2", {"news": {"c3": "u1"}}, {})
    assert await engine.presence("news", ["s1", "s2"]) == {"c1": "u1", "c2": "u2", "c3": "u1"}
    assert await engine.presence("news", ["s2"]) == {"c3": "u1"}  # the nodes asked about only
    assert await engine.channel_counts(["s1", "s2"]) == {"news": 3, "chat": 1}
    await engine.update_presence("s1", {}, {"news": ["c2"], "chat": ["c1"]})
    assert await engine.presence("news", ["s1", "s2"]) == {"c1": "u1", "c3": "u1"}
    assert await engine.presence("chat", ["s1", "s2"]) == {}
    assert await engine.channel_counts(["s1", "s2"]) == {"news": 2}
