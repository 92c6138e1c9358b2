"""The nodes under load: reading their ``/metrics``, and starting them for a run.

``--spawn-servers N`` starts N ``wspool server`` processes on free loopback ports (and a
redis-server on a free port unless ``--redis-url`` names one), waits until each reports a
reachable store on ``/health``, and stops them all when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from wspool.bench.measures import NodeReading

__all__ = ["read_nodes", "spawned_servers"]


def _get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


async def read_nodes(urls: Sequence[str], within: float = 5.0) -> list[NodeReading]:
    """One reading per URL; a node that does not answer reads as all None."""

    async def read(url: str) -> NodeReading:
        try:
            text = await asyncio.to_thread(_get, url, within)
        except OSError:
            text = ""
        return NodeReading.from_metrics(url, text)

    return list(await asyncio.gather(*(read(url) for url in urls)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_healthy(check: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            body = await asyncio.to_thread(_get, check, 1.0)
            if json.loads(body).get("store") == "up":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{check} did not report a reachable store in {within:.0f}s")
        await asyncio.sleep(0.1)


async def _start_redis(folder: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; give --redis-url or install it")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(folder), "--logfile", str(folder / "redis.log")),
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline or process.returncode is not None:
                raise RuntimeError("redis-server did not start") from None
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def spawned_servers(count: int, redis_url: str) -> AsyncIterator[list[str]]:
    """Start ``count`` nodes (and Redis if no URL is given); yields their WebSocket URLs."""
    folder = Path(tempfile.mkdtemp(prefix="wspool-bench-"))
    processes: list[asyncio.subprocess.Process] = []
    try:
        if not redis_url:
            redis, redis_url = await _start_redis(folder)
            processes.append(redis)
        urls = []
        for index in range(count):
            port = _free_port()
            log = (folder / f"node-{index + 1}.log").open("wb")
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    *("-m", "wspool", "server", "--host", "127.0.0.1", "--port", str(port)),
                    *("--id", f"bench-{index + 1}", "--redis-url", redis_url),
                    *("--drain-window", "0.5", "--log-level", "warning"),
                    stdout=log,
                    stderr=log,
                )
            )
            log.close()
            await _wait_healthy(f"http://127.0.0.1:{port}/health", 15.0)
            urls.append(f"ws://127.0.0.1:{port}/ws")
        print(f"spawned {count} node(s) on Redis {redis_url}; logs in {folder}", file=sys.stderr)
        yield urls
    finally:
        # Every process is told to stop before anything is awaited, so that none outlives
        # the run even if the waiting below is interrupted (Ctrl-C cancels it).
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
