"""The peer for the side by side: python-socketio with its Redis manager, served by aiohttp.

What a user would write to get our farm's pub/sub from Socket.IO: a ``subscribe`` event joins
the room named after the channel (acked with ``"subscribed"``), a ``publish`` event emits
``data`` to that room through :class:`socketio.AsyncRedisManager`, so every server sharing
the Redis delivers it to its own members, as our nodes do. WebSocket transport only (the
generator never polls), default options otherwise.

For ``wspool bench`` it also answers ``/health`` (``{"store": "up"}`` once it listens) and
``/metrics`` with the process collector (CPU seconds, resident memory) and the counters the
generator reads from a node: connections, messages received, deliveries. Deliveries are
counted as the room's local members when a message is published: exact with one server,
which is how the side by side runs.

Run: ``python -m wspool.bench.peers.socketio_server --host H --port P --redis-url URL``
(needs the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["create_app", "main"]


def create_app(redis_url: str) -> web.Application:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    connections = Gauge("wspool_connections", "open Socket.IO clients", registry=registry)
    received = Counter("wspool_messages_received", "publish events", registry=registry)
    deliveries = Counter("wspool_deliveries", "data events sent to clients", registry=registry)
    members: defaultdict[str, set[str]] = defaultdict(set)
    channels_of: defaultdict[str, set[str]] = defaultdict(set)

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url),
        transports=["websocket"],
        cors_allowed_origins="*",
    )

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        connections.inc()

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, reason: Any = None) -> None:
        connections.dec()
        for channel in channels_of.pop(sid, ()):
            members[channel].discard(sid)

    @sio.event  # type: ignore[untyped-decorator]
    async def subscribe(sid: str, channel: str) -> str:
        await sio.enter_room(sid, channel)
        members[channel].add(sid)
        channels_of[sid].add(channel)
        return "subscribed"

    @sio.event  # type: ignore[untyped-decorator]
    async def publish(sid: str, data: dict[str, Any]) -> None:
        channel = data["channel"]
        received.inc()
        deliveries.inc(len(members[channel]))
        await sio.emit("data", data, room=channel)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "store": "up"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    sio.attach(app)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    web.run_app(
        create_app(args.redis_url),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
