"""Publishing in batches: what clients send on a node goes to the engine in bursts.

One round trip per message would cap a node near the store's request rate; instead
messages queue while a publish is in flight and the next publish takes them all, grouped
by channel (order kept within each channel). An idle node publishes at once, so batching
adds no latency; a busy one makes fewer, larger round trips. The queue is bounded: when it
is full, publishers wait, which stops reading from their sockets (TCP backpressure).

A publish is written once, or refused and not written. A batch that Redis refuses, or that
never left the node, is refused (``INTERNAL``) to each publisher. A batch sent without an
answer (Redis frozen, the link cut mid-request) may have been written: it is sent again,
with the same batch id, until Redis answers; the store never writes a batch id twice, so
the batch ends up written exactly once and nobody is told otherwise.

Order only binds within a channel, so only a channel's own messages wait behind its
unanswered batch: they are held until it is settled, then published in their order, and
refused while the store is known to be down (they were never sent). Messages on every other
channel keep going out in batches of their own meanwhile. On a Redis Cluster a batch is
answered shard by shard (:class:`~wspool.state.engine.PublishIncompleteError`): when one
shard fails over, only the channels it holds wait or are refused; the others publish as if
nothing happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable

import websockets
from websockets.asyncio.server import ServerConnection

from wspool.core.backoff import Backoff
from wspool.core.protocol import ErrorCode, encode_error
from wspool.server.stats import NodeStats
from wspool.state.engine import (
    EngineUnavailableError,
    MessageBus,
    OutcomeUnknownError,
    PublishIncompleteError,
)
from wspool.tasks import cancel_and_wait

__all__ = ["PublishBatcher"]

log = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds a stopping node spends publishing what is still queued."""

SETTLE_WAIT = 5.0
"""Seconds :meth:`PublishBatcher.settled` waits at most (a publish's own timeout)."""

_Pending = tuple[str, str, ServerConnection, str]


class PublishBatcher:
    """Queues encoded ``data`` frames and publishes them in per-channel batches."""

    def __init__(self, bus: MessageBus, stats: NodeStats, max_pending: int = 10_000) -> None:
        self._bus = bus
        self._stats = stats
        self._max_pending = max_pending
        self._pending: list[_Pending] = []
        self._held: dict[str, list[_Pending]] = {}
        """Per channel with an unanswered batch: its messages queued since, in order."""
        self._held_count = 0
        self._settling: set[asyncio.Task[None]] = set()
        self._unsettled: dict[ServerConnection, int] = {}
        """Per publisher, its messages queued and not yet published or refused."""
        self._waiters: dict[ServerConnection, asyncio.Event] = {}
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        # Batch ids: a random prefix per batcher and a count, unique without a random draw each.
        self._batch_prefix = secrets.token_hex(8)
        self._batch_count = itertools.count(1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="publish-batcher")

    async def stop(self) -> None:
        """Publish what is queued, then stop."""
        if self._task is None:
            return
        self._stopping = True
        await cancel_and_wait(self._task, *self._settling)
        self._task = None
        # What waits behind a batch left unanswered was never sent.
        held = [item for items in self._held.values() for item in items]
        self._held.clear()
        self._held_count = 0
        if held:
            self._refuse(held)
        if self._pending:
            # Bounded: a store that does not answer must not hold the node's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE):
                    await self._flush()

    async def publish(
        self,
        channel: str,
        frame: str,
        publisher: ServerConnection,
        message_id: str,
        tracked: bool = False,
    ) -> None:
        """Queue a frame; waits only when the queue is full. A ``tracked`` publisher's
        messages count until they are written or refused, for :meth:`settled`."""
        while len(self._pending) + self._held_count >= self._max_pending:
            self._room.clear()
            await self._room.wait()
        self._pending.append((channel, frame, publisher, message_id))
        if tracked:
            self._unsettled[publisher] = self._unsettled.get(publisher, 0) + 1
        self._wakeup.set()

    async def settled(self, publisher: ServerConnection, within: float = SETTLE_WAIT) -> None:
        """Return once every message ``publisher`` queued so far, tracked, is published or
        refused (its refusals sent), or after ``within`` seconds."""
        if publisher not in self._unsettled:
            return
        waiter = self._waiters.setdefault(publisher, asyncio.Event())
        try:
            async with asyncio.timeout(within):
                await waiter.wait()
        except TimeoutError:
            log.warning("publishes still unsettled after %.0f s; answering anyway", within)
        finally:
            if self._waiters.get(publisher) is waiter and publisher not in self._unsettled:
                del self._waiters[publisher]

    def _answered(self, items: list[_Pending]) -> None:
        """``items`` are published or refused: their publishers have nothing more to wait for."""
        unsettled = self._unsettled
        if not unsettled:  # no tracked publisher has any: the common case costs nothing
            return
        for _, _, publisher, _ in items:
            if publisher not in unsettled:
                continue
            left = unsettled[publisher] - 1
            if left > 0:
                unsettled[publisher] = left
                continue
            unsettled.pop(publisher, None)
            waiter = self._waiters.pop(publisher, None)
            if waiter is not None:
                waiter.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not self._held:
            ready = pending
        else:
            ready = []
            for item in pending:
                held = self._held.get(item[0])
                if held is None:
                    ready.append(item)
                else:
                    held.append(item)
                    self._held_count += 1
        self._room.set()
        if ready:
            await self._publish(ready)

    async def _publish(self, pending: list[_Pending]) -> None:
        batches: defaultdict[str, list[str]] = defaultdict(list)
        for channel, frame, _, _ in pending:
            batches[channel].append(frame)
        batch_id = f"{self._batch_prefix}.{next(self._batch_count)}"
        try:
            await self._bus.publish(batches, batch_id)
        except EngineUnavailableError as error:
            left = self._settle_part(pending, error)
            reason = str(error)
        else:
            self._stats.messages_published += len(pending)
            self._answered(pending)
            return
        if not left:
            return
        channels = {item[0] for item in left}
        unanswered = {c: frames for c, frames in batches.items() if c in channels}
        for channel in unanswered:
            self._held[channel] = []
        log.warning("publish unanswered, sending %d messages again: %s", len(left), reason)
        settling = self._resend(left, unanswered, batch_id)
        if self._stopping:
            await settling
            return
        task = asyncio.create_task(settling, name="publish-resend")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _settle_part(self, sent: list[_Pending], error: EngineUnavailableError) -> list[_Pending]:
        """Count what ``error`` says was published, refuse what it says was not; returns
        what it left unanswered."""
        if isinstance(error, PublishIncompleteError):
            unknown, refused = error.unknown, error.refused
        elif isinstance(error, OutcomeUnknownError):
            return sent
        else:
            unknown, refused = frozenset(), frozenset(channel for channel, *_ in sent)
        left = [item for item in sent if item[0] in unknown]
        turned_down = [item for item in sent if item[0] in refused]
        published = [item for item in sent if item[0] not in unknown and item[0] not in refused]
        self._stats.messages_published += len(published)
        self._answered(published)
        if turned_down:
            log.warning("publish failed, %d messages refused: %s", len(turned_down), error)
            self._refuse(turned_down)
        return left

    async def _resend(
        self, sent: list[_Pending], batches: dict[str, list[str]], batch_id: str
    ) -> None:
        """Send an unanswered batch again, under its id, until Redis answers for each of its
        channels; then what those channels held goes out."""
        backoff = Backoff(base=0.1, cap=1.0)
        try:
            while sent:
                await asyncio.sleep(backoff.next_delay())
                if not self._bus.available:
                    self._refuse_held(batches)
                try:
                    await self._bus.publish(batches, batch_id)
                except EngineUnavailableError as error:
                    left = self._settle_part(sent, error)
                else:
                    self._stats.messages_published += len(sent)
                    self._answered(sent)
                    left = []
                still = {item[0] for item in left}
                self._release([channel for channel in batches if channel not in still])
                batches = {c: frames for c, frames in batches.items() if c in still}
                sent = left
        except Exception:  # a bug: its channels must not stay held behind it
            log.exception("could not settle a publish of %d messages", len(sent))
            self._release(list(batches))
            return
        log.info("publish settled after %d resends", backoff.failures)

    def _release(self, channels: list[str]) -> None:
        """The unanswered batch of ``channels`` is settled: what they held goes out next."""
        released: list[_Pending] = []
        for channel in channels:
            held = self._held.pop(channel, None)
            if held:
                released.extend(held)
        if released:
            self._held_count -= len(released)
            self._pending[:0] = released
            self._wakeup.set()

    def _refuse_held(self, channels: Iterable[str]) -> None:
        """Refuse what waits behind an unanswered batch while the store is down: it was
        never sent."""
        refused: list[_Pending] = []
        for channel in channels:
            held = self._held.get(channel)
            if held:
                refused.extend(held)
                held.clear()
        if refused:
            self._held_count -= len(refused)
            self._room.set()
            self._refuse(refused)

    def _refuse(self, pending: list[_Pending]) -> None:
        # Every publisher hears that its message did not go out; nothing is dropped silently.
        self._stats.errors[ErrorCode.INTERNAL] += len(pending)
        for _, _, publisher, message_id in pending:
            frame = encode_error(
                ErrorCode.INTERNAL, "message not delivered: message bus unavailable", message_id
            )
            websockets.broadcast([publisher], frame)
        self._answered(pending)
