"""A node's publish batches when the store answers for some channels and not others.

On a Redis Cluster one shard failing over leaves the channels it holds without an answer
while the other shards answer for theirs. Only those channels' messages may wait (order binds
within a channel); every other channel keeps publishing, and the unanswered batch is sent
again under its own id until it is settled, then what its channels held follows in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
import websockets

from tests.support.waiting import eventually
from wspool.core.history import StreamPosition
from wspool.server.publisher import PublishBatcher
from wspool.server.stats import NodeStats
from wspool.state.engine import EngineUnavailableError as Refused
from wspool.state.engine import OutcomeUnknownError as Unanswered
from wspool.state.engine import PublishIncompleteError

Call = tuple[dict[str, list[str]], str]
Answer = Callable[[dict[str, list[str]]], Exception | None]


class ShardedBus:
    """A bus whose answer to each publish ``answer`` decides from the batch; it records
    every batch and its id."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[Call] = []
        self.available = True

    async def publish(
        self, batches: Mapping[str, Sequence[str]], batch_id: str = ""
    ) -> dict[str, StreamPosition]:
        batch = {channel: list(frames) for channel, frames in batches.items()}
        self.calls.append((batch, batch_id))
        await asyncio.sleep(0)
        error = self.answer(batch)
        if error is not None:
            raise error
        return {}

    def published(self, channel: str) -> list[str]:
        """The frames of ``channel`` in the order of the calls that carried them."""
        return [frame for batch, _ in self.calls for frame in batch.get(channel, [])]


def shard_down(down: set[str], *, refused: bool = False) -> Answer:
    """The shard of the channels in ``down`` does not answer (or refuses), the others do."""

    def answer(batch: dict[str, list[str]]) -> Exception | None:
        hit = frozenset(batch) & down
        if not hit:
            return None
        if hit == frozenset(batch):
            return Refused("refused") if refused else Unanswered("no answer")
        if refused:
            return PublishIncompleteError("one shard", frozenset(), hit)
        return PublishIncompleteError("one shard", hit, frozenset())

    return answer


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The message ids of the refusals the batcher sends to publishers."""
    ids: list[str] = []

    def broadcast(connections: Any, frame: str) -> None:
        ids.append(json.loads(frame)["messageId"])

    monkeypatch.setattr(websockets, "broadcast", broadcast)
    return ids


async def until(condition: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return condition()

    await eventually(probe, interval=0.01)


Send = Callable[[str], Awaitable[None]]


@contextlib.asynccontextmanager
async def batching(bus: ShardedBus) -> AsyncIterator[tuple[Send, NodeStats]]:
    """A started batcher on ``bus``, and how to publish a frame on it: frame ``"a2"`` goes to
    channel ``"a"``, under message id ``"a2"``."""
    stats = NodeStats()
    batcher = PublishBatcher(bus, stats)  # type: ignore[arg-type]
    batcher.start()

    async def send(frame: str) -> None:
        await batcher.publish(frame[0], frame, None, frame)  # type: ignore[arg-type]

    try:
        yield send, stats
    finally:
        await batcher.stop()


async def test_a_silent_shard_holds_only_its_channels_and_they_follow_in_order_once_it_answers(
    told: list[str],
) -> None:
    down = {"a"}
    bus = ShardedBus(shard_down(down))
    async with batching(bus) as (send, stats):
        await send("a1")
        await send("b1")
        await until(lambda: len(bus.calls) >= 1)
        first_id = bus.calls[0][1]
        for n in (2, 3):
            await send(f"a{n}")
            await send(f"b{n}")
            await until(lambda n=n: f"b{n}" in bus.published("b"))  # type: ignore[misc]
        # b went on while a waited: a's later messages were not sent behind its silent batch.
        assert bus.published("a").count("a1") >= 1
        assert "a2" not in bus.published("a")
        resends = [batch_id for batch, batch_id in bus.calls[1:] if "a" in batch]
        assert all(batch_id == first_id for batch_id in resends), "resent under its own id"

        down.clear()  # the shard is back
        await until(lambda: "a3" in bus.published("a"))
    sent_a = bus.published("a")
    assert sent_a[-3:] == ["a1", "a2", "a3"], sent_a  # settled, then what it held, in order
    assert bus.published("b") == ["b1", "b2", "b3"]
    assert told == []
    assert stats.messages_published == 6


async def test_a_refusing_shard_refuses_only_its_channels_messages(told: list[str]) -> None:
    bus = ShardedBus(shard_down({"a"}, refused=True))
    async with batching(bus) as (send, stats):
        await send("a1")
        await send("b1")
        await until(lambda: bool(told))
        await send("b2")
        await until(lambda: "b2" in bus.published("b"))
    assert told == ["a1"]
    assert stats.messages_published == 2
    assert len(bus.calls) == 2, "nothing refused is sent again"


async def test_what_waits_behind_a_silent_batch_is_refused_while_the_store_is_down(
    told: list[str],
) -> None:
    down = {"a"}
    bus = ShardedBus(shard_down(down))
    async with batching(bus) as (send, stats):
        await send("a1")
        await until(lambda: len(bus.calls) >= 1)
        await send("a2")
        bus.available = False
        await until(lambda: told == ["a2"])  # never sent, so refused
        down.clear()
        bus.available = True
        await until(lambda: stats.messages_published == 1)
    assert bus.published("a")[-1] == "a1"  # the silent batch itself is settled, not refused
    assert "a2" not in bus.published("a")
    assert told == ["a2"]


async def test_settled_returns_once_a_tracked_publishers_messages_are_answered(
    told: list[str],
) -> None:
    down = {"a"}
    bus = ShardedBus(shard_down(down, refused=False))
    stats = NodeStats()
    batcher = PublishBatcher(bus, stats)  # type: ignore[arg-type]
    batcher.start()
    publisher: Any = object()
    try:
        await batcher.publish("a", "a1", publisher, "a1", tracked=True)
        waiting = asyncio.ensure_future(batcher.settled(publisher))
        await until(lambda: len(bus.calls) >= 2)  # resent: still no answer
        assert not waiting.done()
        down.clear()
        await asyncio.wait_for(waiting, 5)
        assert bus.published("a")[-1] == "a1"
        await batcher.settled(object())  # type: ignore[arg-type]  # nothing of its own: at once
    finally:
        await batcher.stop()
