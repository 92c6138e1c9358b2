"""What every long-running command shares: its event loop, choosing the state engine, and
stopping on signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import signal
from collections.abc import Coroutine
from typing import Any

from wspool.core.history import HistoryPolicy
from wspool.core.keys import Keys
from wspool.state.memory import MemoryBroker, MemoryEngine
from wspool.state.redis_engine import RedisEngine

__all__ = ["create_engine", "raise_open_file_limit", "run", "wait_for_shutdown_signal"]

GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic garbage collector's thresholds for a long-running command (CPython's are
700, 10, 10). A server allocates objects by the thousand for every connection it sets up
and keeps most of them while the connection lives; with the defaults the collector ran
every 700 allocations and took 7.5 % of a node's CPU while connections were opening
(perf), 3 % with these."""


def run(main: Coroutine[Any, Any, None], *, uvloop: bool) -> None:
    """Run a command's coroutine to its end, on uvloop's event loop or asyncio's own.

    uvloop does the loop's work (polling, socket reads and writes, callbacks) in C: the
    gateway, whose CPU goes to moving frames between sockets, spends less per frame on it,
    and a server node less per connection it sets up. The garbage collector runs less often
    (:data:`GC_THRESHOLDS`).
    """
    gc.set_threshold(*GC_THRESHOLDS)
    if not uvloop:
        asyncio.run(main)
        return
    try:
        import uvloop as libuv_loop
    except ModuleNotFoundError:
        main.close()  # never started: the missing extra is reported without a warning
        raise

    with asyncio.Runner(loop_factory=libuv_loop.new_event_loop) as runner:
        runner.run(main)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: every connection is a descriptor
    (two on the gateway), and distributions default the soft limit to 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


def create_engine(
    redis_url: str | None,
    key_prefix: str,
    broker: MemoryBroker | None = None,
    history: HistoryPolicy | None = None,
    session_ttl: float = 3600.0,
) -> RedisEngine | MemoryEngine:
    """The Redis engine when a URL is given, else a view of an in-memory broker; either
    implements every interface of :mod:`wspool.state.engine`."""
    history = history or HistoryPolicy()
    if redis_url:
        return RedisEngine(redis_url, Keys(key_prefix), history, session_ttl)
    return (broker or MemoryBroker(history_policy=history)).engine()


async def wait_for_shutdown_signal() -> None:
    """Return on the first SIGTERM or SIGINT (Kubernetes stops pods with SIGTERM)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
