"""The processes under load: reading their ``/metrics``, and starting them for a run.

``--spawn-servers N`` starts N ``wspool server`` processes on free loopback ports (and a
redis-server on a free port unless ``--redis-url`` names one), waits until each reports a
reachable store on ``/health``, and stops them all when the run ends. ``--spawn-gateway``
adds one ``wspool gateway`` in front of them, ready once it sees every node healthy.
``--peer`` starts N peer servers instead of nodes (:mod:`wspool.bench.peers`: python-socketio,
Socket.IO on Node.js, or Centrifugo; no redis-server for Centrifugo's memory engine), with a
fresh token secret per run for the peers that want connection tokens.

:func:`read_redis` reads the Redis's own CPU seconds (``INFO``), so a run can tell what the
fan-out through Redis cost beside the servers' own CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster

from wspool.bench.dialects import centrifugo_token
from wspool.bench.measures import NodeReading
from wspool.bench.peers import PEERS, peer_command
from wspool.bench.ports import free_port
from wspool.core.redisurl import parse_redis_url
from wspool.state.redis_client import FAILURES, close, connect

__all__ = ["Farm", "Spawned", "read_nodes", "read_redis", "spawned_farm"]


_OPEN = (
    *("--insecure", "--messages-per-second", "0", "--connection-attempts-per-ip", "0"),
    *("--max-connections-per-ip", "0"),
)
"""The generator is every client, from a handful of loopback addresses, without tokens:
spawned nodes run without authentication and without the per-client limits."""


def _get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


async def read_nodes(urls: Sequence[str], within: float = 5.0) -> list[NodeReading]:
    """One reading per URL; a process that does not answer reads as all None."""

    async def read(url: str) -> NodeReading:
        try:
            text = await asyncio.to_thread(_get, url, within)
        except OSError:
            text = ""
        return NodeReading.from_metrics(url, text)

    return list(await asyncio.gather(*(read(url) for url in urls)))


async def read_redis(url: str) -> NodeReading | None:
    """Redis's CPU seconds, resident memory and clients (``INFO``), summed over every node
    of a cluster (primaries and replicas); None without a Redis to ask."""
    if not url:
        return None
    client = connect(parse_redis_url(url), socket_timeout=5.0)
    try:
        if isinstance(client, RedisCluster):
            per_node = await client.info("all", target_nodes=RedisCluster.ALL_NODES)
            infos = list(per_node.values())
        else:
            infos = [await client.info("all")]
    except FAILURES:
        return None
    finally:
        await close(client)
    return NodeReading(
        url=url,
        cpu_seconds=sum(float(i["used_cpu_sys"]) + float(i["used_cpu_user"]) for i in infos),
        rss_bytes=sum(float(i["used_memory_rss"]) for i in infos),
        connections=sum(float(i["connected_clients"]) for i in infos),
        received=None,
        deliveries=None,
        slow_consumers=None,
    )


@dataclass
class Spawned:
    """One process of the farm: a node, the gateway, or a peer server."""

    name: str
    port: int
    process: asyncio.subprocess.Process
    path: str = "/ws"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def kill(self) -> None:
        """SIGKILL: no closing handshakes, no deregistration, as when a machine dies."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)


@dataclass
class Farm:
    redis_url: str  # "" when nothing of the farm uses Redis
    folder: Path
    nodes: list[Spawned] = field(default_factory=list)
    gateway: Spawned | None = None
    token: str = ""  # what clients present when they connect ("" = nothing)

    def url(self, route: str) -> str:
        """What the generator connects to: the gateway, or every node (comma separated)."""
        if route == "gateway" and self.gateway is not None:
            return self.gateway.url
        return ",".join(node.url for node in self.nodes)

    @property
    def metrics_urls(self) -> tuple[str, ...]:
        extra = (self.gateway.metrics_url,) if self.gateway is not None else ()
        return (*(node.metrics_url for node in self.nodes), *extra)


async def _wait_for(check: str, ready: Callable[[dict[str, Any]], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if ready(json.loads(await asyncio.to_thread(_get, check, 1.0))):
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{check} did not report ready in {within:.0f}s")
        await asyncio.sleep(0.1)


async def _start_redis(folder: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; give --redis-url or install it")
    port = free_port()
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


async def _spawn(folder: Path, name: str, command: Sequence[str]) -> asyncio.subprocess.Process:
    with (folder / f"{name}.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)


def _listen(port: int) -> tuple[str, ...]:
    return ("--host", "127.0.0.1", "--port", str(port))


def _store_up(body: dict[str, Any]) -> bool:
    return body.get("store") == "up"


def _answers(body: dict[str, Any]) -> bool:
    return True  # Centrifugo's /health: 200 {} once it serves


@contextlib.asynccontextmanager
async def spawned_farm(
    count: int,
    redis_url: str,
    *,
    gateway: bool = False,
    seamless: bool = True,
    peer: str = "",
    publish_delay: float = 0.0,
) -> AsyncIterator[Farm]:
    """Start ``count`` nodes (or peer servers), a gateway if asked, and Redis if no URL is
    given and something of the farm uses it. ``publish_delay`` is the nodes' own."""
    folder = Path(tempfile.mkdtemp(prefix="wspool-bench-"))
    processes: list[asyncio.subprocess.Process] = []
    try:
        uses_redis = not peer or PEERS[peer].uses_redis
        if uses_redis and not redis_url:
            redis_process, redis_url = await _start_redis(folder)
            processes.append(redis_process)
        farm = Farm(redis_url if uses_redis else "", folder)
        secret = secrets.token_urlsafe(32)
        if peer and PEERS[peer].dialect == "centrifugo":
            farm.token = centrifugo_token(secret)
        for index in range(count):
            name = f"{peer or 'bench'}-{index + 1}"
            port = free_port()
            command: list[str]
            if peer:
                command = peer_command(peer, port, farm.redis_url, folder, secret)
                path = PEERS[peer].path
            else:
                command = [sys.executable, "-m", "wspool", "server", "--id", name]
                command += ["--redis-url", redis_url, *_listen(port)]
                command += ["--drain-window", "0.5", "--log-level", "warning", *_OPEN]
                if publish_delay:
                    command += ["--publish-delay", f"{publish_delay:g}"]
                path = "/ws"
            process = await _spawn(folder, name, command)
            processes.append(process)
            farm.nodes.append(Spawned(name, port, process, path))
        ready = _answers if peer and PEERS[peer].dialect == "centrifugo" else _store_up
        for node in farm.nodes:
            await _wait_for(f"http://127.0.0.1:{node.port}/health", ready, 15.0)
        if gateway:
            port = free_port()
            process = await _spawn(
                folder,
                "gateway",
                [
                    *(sys.executable, "-m", "wspool", "gateway", "--id", "bench-gateway"),
                    *("--redis-url", redis_url, *_listen(port)),
                    *("--log-level", "warning", "--insecure"),
                    *("--seamless", "true" if seamless else "false"),
                ],
            )
            processes.append(process)
            farm.gateway = Spawned("gateway", port, process)
            await _wait_for(
                f"http://127.0.0.1:{port}/health",
                lambda body: _store_up(body) and body.get("servers") == count,
                15.0,
            )
        what = f"{count} {peer + ' server' if peer else 'node'}(s)"
        if gateway:
            what += " behind a gateway"
        on = f"on Redis {farm.redis_url}" if farm.redis_url else "without Redis"
        print(f"spawned {what} {on}; logs in {folder}", file=sys.stderr)
        yield farm
    finally:
        # Every process is told to stop before anything is awaited, so that none outlives
        # the run even if the waiting below is interrupted (Ctrl-C cancels it).
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # killed by the failover run
                    process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
