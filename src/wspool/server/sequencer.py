"""Each channel's feed on a node without gaps: what the pub/sub link lost is read from history.

Redis pub/sub delivers at most once. While a node's link is down (cut, Redis frozen or
restarted) the messages published on its channels never reach it, and subscribing again
only brings what comes next. Every batch carries its position, so the node knows where
each channel's feed stands: the :class:`FeedSequencer` sits between the engine and the
router and passes on only frames that follow the last ones it passed on.

When a batch does not follow (a gap), or when the link comes back after a loss (the engine
reports it up only once every channel is subscribed again), the channel's batches are held,
the frames after the last position are read from the channel's history and passed on as
one batch, then the held batches without what the history already held. Subscribers see
each frame once, in order, a little late.

When the history cannot fill the gap (trimmed, expired, another epoch after Redis restarted
empty), the channel is *interrupted*: the router closes its subscribers on this node, and
they resume with ``since`` (``recovered: false``). Nothing is skipped without a word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wspool.core.history import HistoryRead, StreamPosition
from wspool.state.engine import EngineUnavailableError, MessageBus
from wspool.tasks import cancel_and_wait

__all__ = ["HOLD_LIMIT", "FeedSequencer"]

log = logging.getLogger(__name__)

HOLD_LIMIT = 100_000
"""Frames held for one channel while its gap is filled; past it the channel is interrupted."""

RETRY_DELAY = 0.5
"""Seconds between history reads while the store does not answer."""

Deliver = Callable[[str, StreamPosition, list[str]], None]


class _Channel:
    __slots__ = ("filling", "held", "held_frames", "last", "refill")

    def __init__(self) -> None:
        self.last: StreamPosition | None = None
        """The position of the last frame passed on (None: nothing passed on yet)."""
        self.held: list[tuple[StreamPosition, list[str]]] | None = None
        """Batches that arrived while the gap is filled (None: no fill under way)."""
        self.held_frames = 0
        self.filling: asyncio.Task[None] | None = None
        self.refill = False
        """The link came back while a fill was reading: read once more after it."""


class FeedSequencer:
    """Passes each channel's batches on in order, filling gaps from history."""

    def __init__(self, bus: MessageBus, deliver: Deliver, interrupt: Callable[[str], None]) -> None:
        self._bus = bus
        self._deliver = deliver
        self._interrupt = interrupt
        self._channels: dict[str, _Channel] = {}

    def feed(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        if state.held is not None:
            self._hold(channel, state, start, frames)
            return
        last = state.last
        if last is not None and start.epoch == last.epoch and start.offset <= last.offset:
            skip = last.offset - start.offset + 1  # already passed on (read from history)
            if skip >= len(frames):
                return
            start, frames = start.advanced(skip), frames[skip:]
        elif last is not None and (start.epoch != last.epoch or start.offset != last.offset + 1):
            log.warning("gap in %s after %s: filling it from history", channel, last.token)
            state.held = []
            self._hold(channel, state, start, frames)
            self._fill(channel, state)
            return
        state.last = start.advanced(len(frames) - 1)
        self._deliver(channel, start, frames)

    def link_restored(self) -> None:
        """The link was lost and is back: whatever was published meanwhile is missing."""
        for channel, state in self._channels.items():
            if state.filling is not None:
                state.refill = True
            elif state.last is not None:
                state.held = []
                self._fill(channel, state)

    def forget(self, channel: str) -> None:
        """The node left ``channel``: its next feed starts from scratch."""
        state = self._channels.pop(channel, None)
        if state is not None and state.filling is not None:
            state.filling.cancel()

    async def stop(self) -> None:
        tasks = [s.filling for s in self._channels.values() if s.filling is not None]
        self._channels.clear()
        await cancel_and_wait(*tasks)

    def _hold(
        self, channel: str, state: _Channel, start: StreamPosition, frames: list[str]
    ) -> None:
        assert state.held is not None
        state.held.append((start, frames))
        state.held_frames += len(frames)
        if state.held_frames > HOLD_LIMIT:
            log.warning("%s: too much to hold while filling a gap; interrupting it", channel)
            self._give_up(channel, state)

    def _fill(self, channel: str, state: _Channel) -> None:
        state.filling = asyncio.create_task(self._read(channel, state), name=f"fill-{channel}")

    async def _read(self, channel: str, state: _Channel) -> None:
        since = state.last
        assert since is not None
        while True:
            state.refill = False
            try:
                read = await self._bus.read_history(channel, since)
            except EngineUnavailableError:
                # Nothing arrives while the store is away; try again until it answers.
                await asyncio.sleep(RETRY_DELAY)
                continue
            if not state.refill or read.frames is None:
                break
        if self._channels.get(channel) is state:
            state.filling = None
            self._filled(channel, state, since, read)

    def _filled(
        self, channel: str, state: _Channel, since: StreamPosition, read: HistoryRead
    ) -> None:
        if read.frames is None:
            log.warning(
                "%s: history no longer holds what followed %s; its subscribers resume",
                channel,
                since.token,
            )
            self._give_up(channel, state)
            return
        if read.frames:
            self._deliver(channel, since.advanced(1), read.frames)
        state.last = read.top
        held, state.held, state.held_frames = state.held or [], None, 0
        for start, frames in held:
            self.feed(channel, start, frames)  # a new gap among them starts a new fill

    def _give_up(self, channel: str, state: _Channel) -> None:
        if state.filling is not None:
            state.filling.cancel()
        self._channels.pop(channel, None)
        self._interrupt(channel)
