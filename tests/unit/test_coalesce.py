"""The coalescer sends what callers ask at once as one batch, and answers each caller alone."""

from __future__ import annotations

import asyncio

import pytest

from wspool.state.coalesce import Coalescer


class Doubler:
    """A batch runner that records its batches; it refuses odd numbers one by one."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, numbers: list[int]) -> list[int | Exception]:
        self.batches.append(numbers)
        await asyncio.sleep(0.01)
        return [ValueError(n) if n % 2 else n * 2 for n in numbers]


async def test_requests_made_together_go_out_as_one_batch_and_later_ones_as_the_next() -> None:
    runner = Doubler()
    coalescer = Coalescer(runner, max_batch=100)
    first = [asyncio.ensure_future(coalescer.submit(n)) for n in (2, 4, 6)]
    await asyncio.sleep(0)  # the first batch is in flight
    later = [asyncio.ensure_future(coalescer.submit(n)) for n in (8, 10)]
    assert await asyncio.gather(*first, *later) == [4, 8, 12, 16, 20]
    assert runner.batches == [[2, 4, 6], [8, 10]]


async def test_a_batch_holds_at_most_max_batch_requests() -> None:
    runner = Doubler()
    coalescer = Coalescer(runner, max_batch=2)
    assert await asyncio.gather(*(coalescer.submit(n) for n in (2, 4, 6))) == [4, 8, 12]
    assert runner.batches == [[2, 4], [6]]


async def test_a_refused_request_fails_alone() -> None:
    coalescer = Coalescer(Doubler(), max_batch=100)
    results = await asyncio.gather(coalescer.submit(2), coalescer.submit(3), return_exceptions=True)
    assert results[0] == 4
    assert isinstance(results[1], ValueError)


async def test_a_failed_batch_fails_every_request_in_it() -> None:
    async def broken(numbers: list[int]) -> list[int | Exception]:
        raise ConnectionError("down")

    coalescer = Coalescer(broken, max_batch=100)
    results = await asyncio.gather(coalescer.submit(1), coalescer.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_caller_that_gave_up_is_left_out_of_the_batch() -> None:
    runner = Doubler()
    coalescer = Coalescer(runner, max_batch=100)
    gone = asyncio.ensure_future(coalescer.submit(2))
    kept = asyncio.ensure_future(coalescer.submit(4))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 8
    assert runner.batches == [[4]]


async def test_closing_cancels_what_still_waits() -> None:
    coalescer = Coalescer(Doubler(), max_batch=1)
    waiting = [asyncio.ensure_future(coalescer.submit(n)) for n in (2, 4)]
    await asyncio.sleep(0)
    await coalescer.close()
    for future in waiting:
        with pytest.raises(asyncio.CancelledError):
            await future
