"""The publish batcher's delay: the least time between two publishes, and when it is not kept."""

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


async def test_after_a_quiet_spell_a_message_goes_at_once_and_the_next_ones_wait_together() -> None:
    bus = RecordingBus()
    batcher = _batcher(bus, delay=0.3)
    batcher.start()
    try:
        await batcher.publish("a", "f0", PUBLISHER, "0")
        await asyncio.wait_for(bus.published.wait(), 0.2)
        assert bus.batches == [{"a": ["f0"]}]
        bus.published.clear()
        for index in range(1, 4):
            await batcher.publish("b" if index % 2 else "a", f"f{index}", PUBLISHER, str(index))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        assert len(bus.batches) == 1, "nothing more goes out within the delay"
        await asyncio.wait_for(bus.published.wait(), 1)
        assert bus.batches[1:] == [{"b": ["f1", "f3"], "a": ["f2"]}]
    finally:
        await batcher.stop()


async def test_a_full_queue_goes_out_without_waiting_out_the_delay() -> None:
    bus = RecordingBus()
    batcher = _batcher(bus, delay=30.0, max_pending=3)
    batcher.start()
    try:
        await batcher.publish("a", "f0", PUBLISHER, "0")  # goes at once; the delay starts
        await asyncio.wait_for(bus.published.wait(), 1)
        for index in range(1, 5):  # the fifth waits for room, which the full batch makes
            await asyncio.wait_for(batcher.publish("a", f"f{index}", PUBLISHER, str(index)), 1)
        assert bus.batches == [{"a": ["f0"]}, {"a": ["f1", "f2", "f3"]}]
    finally:
        await batcher.stop()
    assert bus.batches[-1] == {"a": ["f4"]}, "the stop publishes what was still held"
