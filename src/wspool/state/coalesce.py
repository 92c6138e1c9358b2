"""Group commit for Redis requests: what many callers ask at once goes out as one batch.

A :class:`Coalescer` keeps a queue of requests and one task that drains it: the requests
made in the same step of the event loop, and those made while a batch is in flight, go out
together as the next batch (at most ``max_batch`` of them), in one round trip and on one
pooled connection. A storm of subscribes thus costs a few pipelines instead of one command,
one connection and one wait in the pool's queue per subscriber.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from wspool.tasks import cancel_and_wait

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")

BatchRunner = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]
"""Runs one batch; answers each request in order, with its result or its own failure.
Raising fails the whole batch."""


class Coalescer(Generic[T, R]):
    """Sends requests in batches through ``run_batch``, one batch in flight at a time."""

    def __init__(self, run_batch: BatchRunner[T, R], max_batch: int) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: T) -> R:
        """The answer to ``request``, once the batch that carries it has run."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Stop draining; requests still waiting are cancelled."""
        await cancel_and_wait(self._drainer)
        self._drainer = None
        while self._queue:
            self._queue.popleft()[1].cancel()

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[T, asyncio.Future[R]]] = []
                while self._queue and len(batch) < self._max_batch:
                    request, future = self._queue.popleft()
                    if not future.done():  # its caller gave up (cancelled) meanwhile
                        batch.append((request, future))
                if batch:
                    await self._answer(batch)
        finally:
            self._drainer = None

    async def _answer(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
