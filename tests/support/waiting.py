"""Waiting for something to become true, with a deadline instead of a fixed sleep.

``eventually`` for async probes; ``poll_until`` for tests on synchronous clients (Kubernetes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "poll_until"]

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    within: float = 5.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll ``probe`` until it returns a truthy value; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {within}s (last: {value!r})")
        await asyncio.sleep(interval)


def poll_until(
    probe: Callable[[], T],
    *,
    within: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """The blocking twin of :func:`eventually`, for synchronous probes."""
    deadline = time.monotonic() + within
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {within}s (last: {value!r})")
        time.sleep(interval)
    return value
