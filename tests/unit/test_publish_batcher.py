"""The publish batcher's delay: how long messages wait for company, and when they do not."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from wspool.server.publisher import PublishBatcher
from wspool.server.stats import NodeStats
from wspool.state.engine import MessageBus


class RecordingBus:
    """Records each published batch: the one part of a bus the batcher calls."""

    available = True

    def __init__(self) -> None:
        self.batches: list[dict[str, list[str]]] = []
        self.published = asyncio.Event()

    async def publish(self, batches: dict[str, list[str]], batch_id: str) -> None:
        self.batches.append({channel: list(frames) for channel, frames in batches.items()})
        self.published.set()


def _batcher(bus: RecordingBus, delay: float, max_pending: int = 10_000) -> PublishBatcher:
    return PublishBatcher(cast(MessageBus, bus), NodeStats(), delay, max_pending)


PUBLISHER: Any = object()


async def test_messages_arriving_within_the_delay_go_in_one_batch() -> None:
    bus = RecordingBus()
    batcher = _batcher(bus, delay=0.2)
    batcher.start()
    try:
        for index in range(3):
            await batcher.publish("a" if index % 2 else "b", f"f{index}", PUBLISHER, str(index))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        assert bus.batches == [], "nothing goes out before the delay"
        await asyncio.wait_for(bus.published.wait(), 1)
        assert bus.batches == [{"b": ["f0", "f2"], "a": ["f1"]}]
    finally:
        await batcher.stop()


async def test_a_full_queue_goes_out_without_waiting_out_the_delay() -> None:
    bus = RecordingBus()
    batcher = _batcher(bus, delay=30.0, max_pending=3)
    batcher.start()
    try:
        for index in range(4):  # the fourth waits for room, which the full batch makes
            await asyncio.wait_for(batcher.publish("a", f"f{index}", PUBLISHER, str(index)), 1)
        assert bus.batches == [{"a": ["f0", "f1", "f2"]}]
    finally:
        await batcher.stop()
    assert bus.batches[-1] == {"a": ["f3"]}, "the stop publishes what was still held"
