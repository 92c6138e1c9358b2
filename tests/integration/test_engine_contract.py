"""One contract, two engines: the in-memory engine behaves as the Redis engine does.

Every test runs against both; ``make_engine`` hands out several engines that share one store
(one Redis database, or one in-memory broker), as several nodes do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from tests.support.waiting import eventually
from wspool.core.history import HistoryPolicy, StreamPosition
from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord, NodeInfo
from wspool.state.engine import StateEngine
from wspool.state.memory import MemoryBroker
from wspool.state.redis_engine import RedisEngine


@dataclass
class Inbox:
    """What an engine delivered, per channel."""

    frames: dict[str, list[str]] = field(default_factory=dict)
    starts: dict[str, list[StreamPosition]] = field(default_factory=dict)
    statuses: list[bool] = field(default_factory=list)

    def on_message(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        self.frames.setdefault(channel, []).extend(frames)
        self.starts.setdefault(channel, []).append(start)

    def on_status(self, available: bool) -> None:
        self.statuses.append(available)


MakeEngine = Callable[[], Awaitable[tuple[StateEngine, Inbox]]]


HISTORY = HistoryPolicy(size=200, ttl=30)


@pytest.fixture(params=["memory", "redis"])
async def make_engine(
    request: pytest.FixtureRequest, redis_session_url: str
) -> AsyncIterator[MakeEngine]:
    engines: list[StateEngine] = []
    broker = MemoryBroker(history_policy=HISTORY)
    prefix = f"contract-{uuid.uuid4().hex[:8]}:"

    async def make() -> tuple[StateEngine, Inbox]:
        engine: StateEngine = (
            RedisEngine(redis_session_url, Keys(prefix), HISTORY)
            if request.param == "redis"
            else broker.engine()
        )
        inbox = Inbox()
        await engine.start(inbox.on_message, inbox.on_status)
        engines.append(engine)

        async def available() -> bool:
            return engine.available

        await eventually(available, message="engine available")
        return engine, inbox

    yield make
    for engine in engines:
        await engine.close()


def record(connection_id: str, server: str = "s1", client: str = "u1") -> ConnectionRecord:
    return ConnectionRecord(connection_id, server, client, ("a",), 1.0, 2.0)


async def test_saved_connection_is_readable_and_indexed_by_server_and_client(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1"), record("c2", client="u2")])
    assert await engine.get_connection("c1") == record("c1")
    assert await engine.server_connections("s1") == {"c1", "c2"}
    assert await engine.client_sessions("u1") == {"c1"}


async def test_saving_again_updates_the_record(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1")])
    updated = ConnectionRecord("c1", "s1", "u1", ("a", "b"), 1.0, 9.0)
    await engine.save_connections([updated])
    assert await engine.get_connection("c1") == updated


async def test_removed_connection_leaves_nothing_behind(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.save_connections([record("c1"), record("c2")])
    await engine.remove_connections([record("c1")])
    assert await engine.get_connection("c1") is None
    assert await engine.server_connections("s1") == {"c2"}
    await engine.remove_connections([record("c2")])
    assert await engine.server_connections("s1") == set()
    assert await engine.client_sessions("u1") == set()


async def test_unknown_connection_reads_as_none(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    assert await engine.get_connection("nope") is None


async def test_registered_node_is_listed_until_its_registration_lapses(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    await engine.register_node(NodeInfo("s1", "ws://a:1", weight=2), ttl=0.3)
    await engine.register_node(NodeInfo("s2", "ws://b:1"), ttl=30)
    listed = await engine.list_nodes()
    assert [(n.id, n.url, n.weight) for n in listed] == [
        ("s1", "ws://a:1", 2),
        ("s2", "ws://b:1", 1),
    ]
    assert all(n.heartbeat_at > 0 for n in listed)

    async def only_s2() -> bool:
        return [n.id for n in await engine.list_nodes()] == ["s2"]

    await eventually(only_s2, within=3, message="s1 lapsed")


async def test_sweeping_purges_a_lapsed_node_and_its_connections(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    survivor, _ = await make_engine()
    await engine.register_node(NodeInfo("dead", "ws://a:1"), ttl=0.2)
    await engine.register_node(NodeInfo("alive", "ws://b:1"), ttl=30)
    await engine.save_connections([record("c1", "dead", "u1"), record("c2", "alive", "u1")])

    async def swept() -> list[str]:
        return await survivor.sweep_dead_nodes()

    assert await eventually(swept, within=3, message="dead node swept") == ["dead"]
    assert await survivor.get_connection("c1") is None
    assert await survivor.server_connections("dead") == set()
    assert await survivor.client_sessions("u1") == {"c2"}
    assert await survivor.get_connection("c2") == record("c2", "alive", "u1")
    assert await survivor.sweep_dead_nodes() == []


async def test_registering_says_whether_the_node_was_missing(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is True
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is False
    await engine.purge_node("s1")  # as survivors do to a node they take for dead
    assert await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30) is True


async def test_purge_removes_a_nodes_registration_and_records(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.register_node(NodeInfo("s1", "ws://a:1"), ttl=30)
    await engine.save_connections([record("c1"), record("c2")])
    assert await engine.purge_node("s1") == 2
    assert await engine.list_nodes() == []
    assert await engine.client_sessions("u1") == set()


async def test_published_frames_reach_every_subscribed_engine_in_order(
    make_engine: MakeEngine,
) -> None:
    publisher, publisher_inbox = await make_engine()
    first, first_inbox = await make_engine()
    second, second_inbox = await make_engine()
    await first.subscribe("news")
    await second.subscribe("news")
    await second.subscribe("other")
    for start in range(0, 100, 10):
        await publisher.publish(
            {"news": [_frame(i) for i in range(start, start + 10)], "other": [_frame(start)]}
        )
    expected = [_payloads(i) for i in range(100)]

    async def all_delivered() -> bool:
        return (
            _payloads_of(first_inbox.frames.get("news", [])) == expected
            and _payloads_of(second_inbox.frames.get("news", [])) == expected
            and len(second_inbox.frames.get("other", [])) == 10
        )

    await eventually(all_delivered, message="frames delivered")
    assert "other" not in first_inbox.frames
    assert publisher_inbox.frames == {}


async def test_unsubscribed_engine_receives_nothing_more(make_engine: MakeEngine) -> None:
    publisher, _ = await make_engine()
    subscriber, inbox = await make_engine()
    await subscriber.subscribe("news")
    await publisher.publish({"news": [_frame(1)]})
    await eventually(_has(inbox, "news", [1]), message="first frame")
    await subscriber.unsubscribe("news")
    await subscriber.subscribe("marker")
    await publisher.publish({"news": [_frame(2)], "marker": [_frame(3)]})
    await eventually(_has(inbox, "marker", [3]), message="marker frame")
    assert _payloads_of(inbox.frames["news"]) == [1]


def _frame(n: int) -> str:
    return json.dumps({"type": "data", "payload": n}, separators=(",", ":"))


def _payloads(n: int) -> int:
    return n


def _payloads_of(frames: list[str]) -> list[int]:
    return [json.loads(frame)["payload"] for frame in frames]


def _offsets_of(frames: list[str]) -> list[StreamPosition]:
    return [StreamPosition.parse(json.loads(frame)["offset"]) for frame in frames]


def _has(inbox: Inbox, channel: str, payloads: list[int]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return _payloads_of(inbox.frames.get(channel, [])) == payloads

    return probe


async def test_engine_reports_itself_available_once_started(make_engine: MakeEngine) -> None:
    engine, inbox = await make_engine()
    assert engine.available
    assert inbox.statuses == [True]


# history ---------------------------------------------------------------------------------


async def test_published_frames_carry_consecutive_offsets_in_the_order_delivered(
    make_engine: MakeEngine,
) -> None:
    publisher, _ = await make_engine()
    subscriber, inbox = await make_engine()
    await subscriber.subscribe("ticks")
    start = (await publisher.read_history("ticks", None)).top
    assert start.offset == 0
    for first in range(0, 30, 10):
        await publisher.publish({"ticks": [_frame(i) for i in range(first, first + 10)]})
    await eventually(_has(inbox, "ticks", list(range(30))), message="frames delivered")
    offsets = _offsets_of(inbox.frames["ticks"])
    assert offsets == [start.advanced(i) for i in range(1, 31)]
    # The position handed with each batch is its first frame's, so no JSON needs parsing.
    assert inbox.starts["ticks"][0] == start.advanced(1)
    assert (await subscriber.read_history("ticks", None)).top == start.advanced(30)


async def test_history_after_a_position_is_exactly_the_frames_published_after_it(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    start = (await engine.read_history("c", None)).top
    await engine.publish({"c": [_frame(i) for i in range(1, 11)]})
    read = await engine.read_history("c", start.advanced(4))
    assert read.recovered
    assert read.top == start.advanced(10)
    assert read.frames is not None
    assert _payloads_of(read.frames) == [5, 6, 7, 8, 9, 10]
    assert _offsets_of(read.frames) == [start.advanced(i) for i in range(5, 11)]
    assert (await engine.read_history("c", start.advanced(10))).frames == []


async def test_a_position_trimmed_from_history_is_not_recovered(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    start = (await engine.read_history("c", None)).top
    for first in range(0, 1000, 100):
        await engine.publish({"c": [_frame(i) for i in range(first, first + 100)]})
    read = await engine.read_history("c", start)
    assert read.frames is None
    assert not read.recovered
    assert read.top == start.advanced(1000)
    # The recent past is still there.
    recent = await engine.read_history("c", start.advanced(950))
    assert recent.frames is not None
    assert len(recent.frames) == 50


async def test_a_position_of_another_epoch_or_past_the_end_is_not_recovered(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    await engine.publish({"c": [_frame(1)]})
    top = (await engine.read_history("c", None)).top
    other = "0" if top.epoch != "0" else "1"
    assert (await engine.read_history("c", StreamPosition(other, 0))).frames is None
    assert (await engine.read_history("c", top.advanced(1))).frames is None


async def test_channels_have_histories_of_their_own(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.publish({"a": [_frame(1), _frame(2)], "b": [_frame(3)]})
    assert (await engine.read_history("a", None)).top.offset == 2
    assert (await engine.read_history("b", None)).top.offset == 1


async def test_address_slots_count_up_to_the_limit_across_engines(make_engine: MakeEngine) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    assert await first.acquire_address_slot("192.0.2.1", "c1", limit=3, ttl=30)
    assert await second.acquire_address_slot("192.0.2.1", "c2", limit=3, ttl=30)
    assert await first.acquire_address_slot("192.0.2.1", "c3", limit=3, ttl=30)
    assert not await second.acquire_address_slot("192.0.2.1", "c4", limit=3, ttl=30)
    assert await second.acquire_address_slot("192.0.2.2", "c5", limit=3, ttl=30)
    assert await first.acquire_address_slot("192.0.2.1", "c1", limit=3, ttl=30)  # a retry
    assert await second.address_connection_count("192.0.2.1") == 3
    await first.release_address_slot("192.0.2.1", "c2")
    assert await second.acquire_address_slot("192.0.2.1", "c4", limit=3, ttl=30)


async def test_address_slots_lapse_unless_refreshed(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    assert await engine.acquire_address_slot("2001:db8::1", "kept", limit=2, ttl=0.3)
    assert await engine.acquire_address_slot("2001:db8::1", "crashed", limit=2, ttl=0.3)
    assert not await engine.acquire_address_slot("2001:db8::1", "new", limit=2, ttl=0.3)

    async def only_kept_counts() -> bool:
        await engine.refresh_address_slots({"2001:db8::1": ["kept"]}, ttl=0.3)
        return await engine.address_connection_count("2001:db8::1") == 1

    await eventually(only_kept_counts, within=3, message="unrefreshed slot lapsed")
    assert await engine.acquire_address_slot("2001:db8::1", "new", limit=2, ttl=30)


async def test_released_slots_leave_the_count_at_zero(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    for i in range(3):
        assert await engine.acquire_address_slot("a", f"c{i}", limit=5, ttl=30)
    for i in range(3):
        await engine.release_address_slot("a", f"c{i}")
    await engine.release_address_slot("a", "never-there")
    assert await engine.address_connection_count("a") == 0


async def test_attempts_are_allowed_up_to_the_limit_per_window(make_engine: MakeEngine) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    allowed = [
        await engine.record_attempt("198.51.100.1", limit=4, window=0.5)
        for engine in (first, second, first, second, first)
    ]
    assert allowed == [True, True, True, True, False]
    assert await second.record_attempt("198.51.100.2", limit=4, window=0.5)

    async def allowed_again() -> bool:
        return await first.record_attempt("198.51.100.1", limit=4, window=0.5)

    await eventually(allowed_again, within=3, message="window slid past")


async def test_a_ticket_is_used_once_across_engines_until_its_mark_lapses(
    make_engine: MakeEngine,
) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    assert await first.use_ticket("t1", ttl=0.3)
    assert not await second.use_ticket("t1", ttl=0.3)
    assert await second.use_ticket("t2", ttl=30)

    async def usable_again() -> bool:
        return await first.use_ticket("t1", ttl=30)

    await eventually(usable_again, within=3, message="used mark lapsed")
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
