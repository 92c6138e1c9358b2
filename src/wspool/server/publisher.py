"""Publishing in batches: what clients send on a node goes to the engine in bursts.

One round trip per message would cap a node near the store's request rate; instead
messages queue while a publish is in flight and the next publish takes them all, grouped
by channel (order kept within each channel). An idle node publishes at once, so batching
adds no latency; a busy one makes fewer, larger round trips. The queue is bounded: when it
is full, publishers wait, which stops reading from their sockets (TCP backpressure).

At everyday rates messages arrive a millisecond or more apart, so each batch holds one or
two and every one pays a round trip, a script call and the wake-ups around them. A
``delay`` (``--publish-delay``) spaces the publishes: one starts no sooner than ``delay``
after the one before, and what arrives meanwhile goes with it. A message after a quiet
spell longer than the delay is published at once, as without one; a busy node publishes
every ``delay`` in larger batches, for less CPU per message in the node and in Redis and up
to ``delay`` more latency. A full queue is published without waiting.

A publish is written once, or refused and not written. A batch that Redis refuses, or that
never left the node, is refused (``INTERNAL``) to each publisher. A batch sent without an
answer (Redis frozen, the link cut mid-request) may have been written: it is sent again,
with the same batch id, until Redis answers; the store never writes a batch id twice, so
the batch ends up written exactly once and nobody is told otherwise. Meanwhile messages
still queued behind it are refused while the store is known to be down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
from collections import defaultdict

import websockets
from websockets.asyncio.server import ServerConnection

from wspool.core.backoff import Backoff
from wspool.core.protocol import ErrorCode, encode_error
from wspool.server.stats import NodeStats
from wspool.state.engine import EngineUnavailableError, MessageBus, OutcomeUnknownError
from wspool.tasks import cancel_and_wait

__all__ = ["PublishBatcher"]

log = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds a stopping node spends publishing what is still queued."""

_Pending = tuple[str, str, ServerConnection, str]


class PublishBatcher:
    """Queues encoded ``data`` frames and publishes them in per-channel batches."""

    def __init__(
        self, bus: MessageBus, stats: NodeStats, delay: float = 0.0, max_pending: int = 10_000
    ) -> None:
        self._bus = bus
        self._stats = stats
        self._delay = delay
        self._max_pending = max_pending
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._last = -math.inf  # when the last publish started, on the loop's clock
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
        await cancel_and_wait(self._task)
        self._task = None
        if self._pending:
            # Bounded: a store that does not answer must not hold the node's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE):
                    await self._flush()

    async def publish(
        self, channel: str, frame: str, publisher: ServerConnection, message_id: str
    ) -> None:
        """Queue a frame; waits only when the queue is full."""
        while len(self._pending) >= self._max_pending:
            self._room.clear()
            self._full.set()
            await self._room.wait()
        self._pending.append((channel, frame, publisher, message_id))
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if self._delay:
                await self._gather(self._last + self._delay - loop.time())
            self._wakeup.clear()
            self._last = loop.time()
            await self._flush()

    async def _gather(self, wait: float) -> None:
        """Let more messages join the batch: for ``wait`` seconds, or until the queue is full."""
        if wait <= 0 or len(self._pending) >= self._max_pending:
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._full.wait()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._room.set()
        if not pending:
            return
        batches: defaultdict[str, list[str]] = defaultdict(list)
        for channel, frame, _, _ in pending:
            batches[channel].append(frame)
        batch_id = f"{self._batch_prefix}.{next(self._batch_count)}"
        backoff: Backoff | None = None  # between attempts at an unanswered batch
        while True:
            try:
                await self._bus.publish(batches, batch_id)
            except OutcomeUnknownError as error:
                if backoff is None:
                    backoff = Backoff(base=0.1, cap=1.0)
                    log.warning("publish unanswered, sending %d again: %s", len(pending), error)
                await asyncio.sleep(backoff.next_delay())
                if not self._bus.available:
                    self._refuse_queued()
                continue
            except EngineUnavailableError as error:
                log.warning("publish failed, %d messages refused: %s", len(pending), error)
                self._refuse(pending)
                return
            break
        if backoff is not None:
            log.info(
                "publish of %d messages settled after %d resends", len(pending), backoff.failures
            )
        self._stats.messages_published += len(pending)

    def _refuse_queued(self) -> None:
        """Refuse what waits behind an unanswered batch: it was never sent."""
        queued, self._pending = self._pending, []
        self._room.set()
        if queued:
            self._refuse(queued)

    def _refuse(self, pending: list[_Pending]) -> None:
        # Every publisher hears that its message did not go out; nothing is dropped silently.
        self._stats.errors[ErrorCode.INTERNAL] += len(pending)
        for _, _, publisher, message_id in pending:
            frame = encode_error(
                ErrorCode.INTERNAL, "message not delivered: message bus unavailable", message_id
            )
            websockets.broadcast([publisher], frame)
