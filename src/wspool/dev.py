"""``wspool dev``: the whole data plane in one process, for a first try.

N server nodes share one in-memory engine (or Redis, given a URL) and listen on the ports
after ``--port``.
"""

from __future__ import annotations

import asyncio
import contextlib

from wspool.core.config import DevSettings
from wspool.server.main import create_engine, wait_for_shutdown_signal
from wspool.server.node import ServerNode
from wspool.state.engine import StateEngine
from wspool.state.memory import MemoryBroker

__all__ = ["run_dev"]


async def run_dev(settings: DevSettings) -> None:
    broker = MemoryBroker()
    engines: list[StateEngine] = []
    nodes: list[ServerNode] = []
    try:
        for index in range(settings.servers):
            engine = create_engine(settings.redis_url, settings.key_prefix, broker)
            engines.append(engine)
            node = ServerNode(settings.node_settings(index), engine)
            await node.start()
            nodes.append(node)
        print(_banner(settings, nodes), flush=True)
        await wait_for_shutdown_signal()
        await asyncio.gather(*(node.drain() for node in nodes))
    finally:
        for node in nodes:
            await node.stop()
        for engine in engines:
            with contextlib.suppress(Exception):
                await engine.close()


def _banner(settings: DevSettings, nodes: list[ServerNode]) -> str:
    store = settings.redis_url or "in-memory engine (this process only)"
    limits = settings.security
    lines = [
        "wspool dev: the whole data plane in one process",
        "  OPEN: no tokens are checked; anyone who reaches these ports may connect, subscribe",
        "  and publish on any channel. Use 'wspool server' with a key for anything else.",
        f"  limits    {_limit(limits.max_connections_per_ip)} connections and "
        f"{_limit(limits.connection_attempts_per_ip)} attempts/s per address, "
        f"{_limit(limits.messages_per_second)} messages/s per connection",
        f"  state     {store}",
    ]
    lines += [f"  {node.id:9} {node.url}/ws   health {_http(node.url)}/health" for node in nodes]
    lines.append("  try       python -m websockets " + f"{nodes[0].url}/ws" if nodes else "")
    lines.append("Ctrl-C drains the nodes and stops.")
    return "\n".join(lines)


def _limit(value: float) -> str:
    return f"{value:g}" if value else "unlimited"


def _http(url: str) -> str:
    return "http" + url.removeprefix("ws")
