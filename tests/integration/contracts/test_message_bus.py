"""The ``MessageBus`` contract: pub/sub between engines, and each channel's history."""

from __future__ import annotations

import asyncio

from tests.integration.contracts.engines import MakeEngine, frame, has, offsets_of, payloads_of
from tests.support.waiting import eventually
from wspool.core.history import StreamPosition


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
            {"news": [frame(i) for i in range(start, start + 10)], "other": [frame(start)]}
        )
    expected = list(range(100))

    async def all_delivered() -> bool:
        return (
            payloads_of(first_inbox.frames.get("news", [])) == expected
            and payloads_of(second_inbox.frames.get("news", [])) == expected
            and len(second_inbox.frames.get("other", [])) == 10
        )

    await eventually(all_delivered, message="frames delivered")
    assert "other" not in first_inbox.frames
    assert publisher_inbox.frames == {}


async def test_unsubscribed_engine_receives_nothing_more(make_engine: MakeEngine) -> None:
    publisher, _ = await make_engine()
    subscriber, inbox = await make_engine()
    await subscriber.subscribe("news")
    await publisher.publish({"news": [frame(1)]})
    await eventually(has(inbox, "news", [1]), message="first frame")
    await subscriber.unsubscribe("news")
    await subscriber.subscribe("marker")
    await publisher.publish({"news": [frame(2)], "marker": [frame(3)]})
    await eventually(has(inbox, "marker", [3]), message="marker frame")
    assert payloads_of(inbox.frames["news"]) == [1]


async def test_engine_reports_itself_available_once_started(make_engine: MakeEngine) -> None:
    engine, inbox = await make_engine()
    assert engine.available
    assert inbox.statuses == [True]


async def test_published_frames_carry_consecutive_offsets_in_the_order_delivered(
    make_engine: MakeEngine,
) -> None:
    publisher, _ = await make_engine()
    subscriber, inbox = await make_engine()
    await subscriber.subscribe("ticks")
    start = (await publisher.read_history("ticks", None)).top
    assert start.offset == 0
    for first in range(0, 30, 10):
        await publisher.publish({"ticks": [frame(i) for i in range(first, first + 10)]})
    await eventually(has(inbox, "ticks", list(range(30))), message="frames delivered")
    offsets = offsets_of(inbox.frames["ticks"])
    assert offsets == [start.advanced(i) for i in range(1, 31)]
    # The position handed with each batch is its first frame's, so no JSON needs parsing.
    assert inbox.starts["ticks"][0] == start.advanced(1)
    assert (await subscriber.read_history("ticks", None)).top == start.advanced(30)


async def test_history_after_a_position_is_exactly_the_frames_published_after_it(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    start = (await engine.read_history("c", None)).top
    await engine.publish({"c": [frame(i) for i in range(1, 11)]})
    read = await engine.read_history("c", start.advanced(4))
    assert read.recovered
    assert read.top == start.advanced(10)
    assert read.frames is not None
    assert payloads_of(read.frames) == [5, 6, 7, 8, 9, 10]
    assert offsets_of(read.frames) == [start.advanced(i) for i in range(5, 11)]
    assert (await engine.read_history("c", start.advanced(10))).frames == []


async def test_publish_answers_the_position_of_each_channels_last_frame(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    start = (await engine.read_history("a", None)).top
    positions = await engine.publish({"a": [frame(1), frame(2), frame(3)], "b": [frame(4)]})
    assert positions["a"] == start.advanced(3)
    assert positions["b"] == (await engine.read_history("b", None)).top
    read = await engine.read_history("a", start)
    assert read.frames is not None
    assert offsets_of(read.frames)[-1] == positions["a"]


async def test_the_newest_frames_are_read_without_a_position(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    empty = await engine.read_recent("c", 5)
    assert empty.frames == []
    assert empty.top.offset == 0
    await engine.publish({"c": [frame(i) for i in range(1, 11)]})
    recent = await engine.read_recent("c", 3)
    assert recent.frames is not None
    assert payloads_of(recent.frames) == [8, 9, 10]
    assert recent.top == empty.top.advanced(10) == offsets_of(recent.frames)[-1]
    everything = await engine.read_recent("c", 1_000)
    assert everything.frames is not None
    assert payloads_of(everything.frames) == list(range(1, 11))


async def test_a_position_trimmed_from_history_is_not_recovered(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    start = (await engine.read_history("c", None)).top
    for first in range(0, 1000, 100):
        await engine.publish({"c": [frame(i) for i in range(first, first + 100)]})
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
    await engine.publish({"c": [frame(1)]})
    top = (await engine.read_history("c", None)).top
    other = "0" if top.epoch != "0" else "1"
    assert (await engine.read_history("c", StreamPosition(other, 0))).frames is None
    assert (await engine.read_history("c", top.advanced(1))).frames is None


async def test_channels_have_histories_of_their_own(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    await engine.publish({"a": [frame(1), frame(2)], "b": [frame(3)]})
    assert (await engine.read_history("a", None)).top.offset == 2
    assert (await engine.read_history("b", None)).top.offset == 1


async def test_an_engine_publishes_without_a_link_of_its_own(make_engine: MakeEngine) -> None:
    # As the gateway does: it sends commands to nodes and subscribes to nothing.
    sender, _ = await make_engine(start=False)
    subscriber, inbox = await make_engine()
    await subscriber.subscribe("#node:n1")
    await sender.publish({"#node:n1": [frame(1)]})
    await eventually(has(inbox, "#node:n1", [1]), message="frame delivered")
    assert not sender.available


async def test_a_storm_of_subscribes_is_answered_without_an_error(make_engine: MakeEngine) -> None:
    # What every failover and scale-down causes: a node's clients all subscribe again at once,
    # each reading its channel's history; far more requests in flight than the engine has links.
    engine, inbox = await make_engine()
    publisher, _ = await make_engine()
    channels = [f"storm-{i}" for i in range(100)]
    reads = await asyncio.gather(
        *(engine.subscribe(c) for c in channels),
        *(engine.read_history(channels[i % 100], None) for i in range(1_000)),
    )
    assert len(reads) == 1_100
    await publisher.publish({c: [frame(0)] for c in channels})

    async def every_channel_delivered() -> bool:
        return all(payloads_of(inbox.frames.get(c, [])) == [0] for c in channels)

    await eventually(every_channel_delivered, message="a frame on every channel")
