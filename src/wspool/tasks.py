"""Background tasks: how every part of the package stops the ones it started.

A part that runs a loop as an asyncio task (a heartbeat, a pub/sub reader, a state writer, a
relay's two pumps) stops it with :func:`cancel_and_wait`: cancelled, then awaited to its
end, so nothing the loop holds outlives the part's own ``stop``. It sits below the state
engines, which stop their readers with it too.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (``None`` stands for one never started) and return once every one has
    finished. What a task raised stays on it (``task.exception()``) and is not raised here;
    a cancellation of the caller while it waits is."""
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)
