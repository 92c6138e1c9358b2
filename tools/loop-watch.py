#!/usr/bin/env python3
"""Run a ``wspool server`` node with probes on its event loop, and say where messages
waited (docs/benchmarks.md, "Where a node's messages wait").

The node runs in this process, as ``wspool server`` would run it, with three probes:

- **stalls**: a thread watches a timer the event loop sets every millisecond; when the loop
  has not come back to it for ``--stall-ms``, the thread records the main thread's Python
  stack and, once the loop is back, how long it was away. A stack that ends in the event
  loop's own frame (``runners.py``) is time spent in C: uvloop's callbacks, a garbage
  collection started from C, or the process waiting for a core;
- **collections**: every run of the garbage collector, its generation and how long it took
  (``gc.callbacks``);
- **fan-out latency**: for frames whose payload is a ``wspool bench`` stamp (the publisher's
  ``time.monotonic_ns()``), the time from the stamp to the moment the node writes the frame
  to its subscribers, per subscriber, in the first second after the first such write and
  after it.

The report is printed when the node stops (SIGINT or SIGTERM). Load the node with
``wspool bench --url ws://127.0.0.1:PORT/ws ...`` meanwhile. Example, from a checkout with
its virtualenv and a redis-server on port 6400:

    .venv/bin/python tools/loop-watch.py -- --id n1 --redis-url redis://127.0.0.1:6400/0 \\
        --port 12031 --insecure --messages-per-second 0 --connection-attempts-per-ip 0 \\
        --max-connections-per-ip 0
    .venv/bin/wspool bench --url ws://127.0.0.1:12031/ws many-channels --duration 10

The probes cost the node CPU of their own (a timer every millisecond; a regular expression
per frame fanned out): compare its other figures with a node run without them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import wspool.runtime
from wspool.cli import main as wspool_main
from wspool.server.router import ChannelRouter

_STAMP = re.compile(r'"payload":(\d{12,})')
_BUCKET_NS = 500_000  # latencies are counted in half milliseconds


class Probes:
    def __init__(self, stall_ms: float) -> None:
        self.stall_s = stall_ms / 1000
        self.tick = time.monotonic()
        self.main_thread = threading.get_ident()
        self.stalls: list[tuple[float, float, list[str]]] = []
        self.collections: list[tuple[float, float, int]] = []
        self._gc_started = 0.0
        self.first_write_ns = 0
        self.latency = [Counter[int](), Counter[int]()]  # first second, after it

    # stalls ------------------------------------------------------------------------------

    async def ticker(self) -> None:
        while True:
            self.tick = time.monotonic()
            await asyncio.sleep(0.001)

    def watch(self) -> None:
        while True:
            time.sleep(self.stall_s / 4)
            tick = self.tick
            if time.monotonic() - tick < self.stall_s:
                continue
            frame = sys._current_frames().get(self.main_thread)
            stack = traceback.extract_stack(frame)[-8:] if frame is not None else []
            while self.tick == tick:
                time.sleep(0.0005)
            where = [f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in stack]
            self.stalls.append((tick, time.monotonic() - tick, where))

    # collections -------------------------------------------------------------------------

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        else:
            took = time.monotonic() - self._gc_started
            self.collections.append((self._gc_started, took, info["generation"]))

    # fan-out latency ---------------------------------------------------------------------

    def wrap_fan_out(self) -> None:
        write = ChannelRouter._write
        probes = self

        def timed_write(router: ChannelRouter, subscribers: Any, frames: list[str]) -> None:
            now = time.monotonic_ns()
            for frame in frames:
                stamp = _STAMP.search(frame)
                if stamp is not None:
                    if not probes.first_write_ns:
                        probes.first_write_ns = now
                    after = now - probes.first_write_ns >= 1_000_000_000
                    bucket = (now - int(stamp[1])) // _BUCKET_NS
                    probes.latency[after][bucket] += len(subscribers)
            write(router, subscribers, frames)

        ChannelRouter._write = timed_write  # type: ignore[method-assign,assignment]

    # report ------------------------------------------------------------------------------

    def report(self) -> str:
        lines = [f"event loop away for {self.stall_s * 1000:.0f} ms or more: {len(self.stalls)}"]
        for started, took, where in sorted(self.stalls, key=lambda s: -s[1])[:10]:
            lines.append(f"  {took * 1000:6.1f} ms at {started:.3f}: " + " < ".join(where[::-1]))
        generations = Counter(g for _, _, g in self.collections)
        total = sum(took for _, took, _ in self.collections)
        lines.append(
            f"garbage collections: {len(self.collections)} ({dict(sorted(generations.items()))}"
            f" by generation), {total * 1000:.1f} ms in all"
        )
        for started, took, generation in sorted(self.collections, key=lambda c: -c[1])[:5]:
            lines.append(f"  {took * 1000:6.1f} ms at {started:.3f}: generation {generation}")
        for name, counts in zip(("first second", "after it"), self.latency, strict=True):
            lines.append(f"fan-out latency, {name}: {_quantiles(counts)}")
        return "\n".join(lines)


def _quantiles(counts: Counter[int]) -> str:
    total = sum(counts.values())
    if not total:
        return "no stamped frames"
    found, seen, ordered = {}, 0, sorted(counts.items())
    wanted = [0.5, 0.95, 0.99, 0.999]
    for bucket, count in ordered:
        seen += count
        while wanted and seen >= wanted[0] * total:
            found[wanted.pop(0)] = (bucket + 1) * _BUCKET_NS / 1e6
    text = " ".join(
        f"p{str(q * 100).rstrip('0').rstrip('.')} <= {ms:.1f}" for q, ms in found.items()
    )
    return f"{total:,} deliveries, {text} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stall-ms", type=float, default=8.0, help="report loop stalls this long")
    parser.add_argument("server_args", nargs=argparse.REMAINDER, help="-- then wspool server flags")
    args = parser.parse_args()
    server_args = [a for a in args.server_args if a != "--"]
    probes = Probes(args.stall_ms)
    gc.callbacks.append(probes.on_gc)
    probes.wrap_fan_out()
    run = wspool.runtime.run

    def run_with_probes(main: Coroutine[Any, Any, None], *, uvloop: bool) -> None:
        async def probed() -> None:
            ticker = asyncio.create_task(probes.ticker())
            threading.Thread(target=probes.watch, daemon=True).start()
            try:
                await main
            finally:
                ticker.cancel()

        run(probed(), uvloop=uvloop)

    wspool.runtime.run = run_with_probes
    sys.argv = ["wspool", "server", *server_args]
    try:
        return wspool_main()
    finally:
        print(probes.report(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
