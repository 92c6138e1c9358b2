"""``wspool dev``: the whole data plane in one process, for a first try.

The gateway listens on ``--port`` and N server nodes on the ports after it; they share one
in-memory engine (or Redis, given a URL) and a ticket secret made up at start, so the
nodes take connections only through the gateway, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import sys

from aiohttp import web

from wspool.core.config import DevSettings
from wspool.gateway.main import start_gateway
from wspool.runtime import create_engine, raise_open_file_limit, wait_for_shutdown_signal
from wspool.server.node import NodeEngine, ServerNode
from wspool.state.memory import MemoryBroker

__all__ = ["run_dev"]


async def run_dev(settings: DevSettings) -> None:
    raise_open_file_limit()
    history = settings.history
    broker = MemoryBroker(history_policy=history)
    secret = secrets.token_urlsafe(32)
    engines: list[NodeEngine] = []
    nodes: list[ServerNode] = []
    gateway: web.AppRunner | None = None
    try:
        for index in range(settings.servers):
            engine = create_engine(
                settings.redis_url, settings.key_prefix, broker, history, settings.session_ttl
            )
            engines.append(engine)
            node_settings = dataclasses.replace(settings.node_settings(index), ticket_secret=secret)
            node = ServerNode(node_settings, engine)
            await node.start()
            nodes.append(node)
        gateway_settings = dataclasses.replace(settings.gateway_settings(), ticket_secret=secret)
        gateway = await start_gateway(gateway_settings, broker)
        print(_banner(settings, nodes), flush=True)
        await wait_for_shutdown_signal()
        await asyncio.gather(*(node.drain() for node in nodes))
    finally:
        if gateway is not None:
            await gateway.cleanup()
        for node in nodes:
            await node.stop()
        for opened in engines:
            with contextlib.suppress(Exception):
                await opened.close()


def _banner(settings: DevSettings, nodes: list[ServerNode]) -> str:
    store = settings.redis_url or "in-memory engine (this process only)"
    limits = settings.security
    gateway = f"{settings.host}:{settings.port}"
    lines = [
        "wspool dev: the whole data plane in one process",
        "  OPEN: no tokens are checked; anyone who reaches these ports may connect, subscribe",
        "  and publish on any channel. Use 'wspool server' with a key for anything else.",
        f"  limits    {_limit(limits.max_connections_per_ip)} connections and "
        f"{_limit(limits.connection_attempts_per_ip)} attempts/s per address, "
        f"{_limit(limits.messages_per_second)} messages/s per connection",
        f"  state     {store}",
        f"  gateway   ws://{gateway}/ws   REST http://{gateway}/api/v1/pool/health",
        f"  dashboard http://{gateway}/dashboard/",
    ]
    lines += [f"  {node.id:9} {node.url}/ws (through the gateway only)" for node in nodes]
    lines.append(f"  try       {_python()} -m websockets ws://{gateway}/ws")
    lines.append("Ctrl-C drains the nodes and stops.")
    return "\n".join(lines)


def _python() -> str:
    """The interpreter running wspool, which has websockets installed (a bare ``python``
    may not), written relative to the current directory when it lies below it."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative


def _limit(value: float) -> str:
    return f"{value:g}" if value else "unlimited"
