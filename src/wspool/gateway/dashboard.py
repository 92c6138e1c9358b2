"""The dashboard: its page at ``/dashboard/`` and its live feed at ``/api/v1/dashboard/feed``.

The page is the bundle clients/dashboard builds into ``static/dashboard/`` (``npm run build``
there), files read once at start and served under a content security policy that lets the
page reach this gateway only. The feed is a WebSocket: one :class:`DashboardFeed` per replica
builds a snapshot of the pool once per :data:`INTERVAL` (``model.dashboard.pool_snapshot``),
serializes it once and sends the same text to every open dashboard. Its producer runs only
while someone watches (the first viewer starts it, the last one to leave stops it), so a
gateway nobody watches does no work for it. A viewer that joins gets the points so far
(``history``: the last :data:`HISTORY_POINTS`) and the latest snapshot at once.

Watching needs what reading the REST API needs (an admin credential, unless the gateway opens
reads with ``--api-open-reads`` or runs ``--insecure``), shown as ``Authorization: Bearer`` or,
from a browser, as the subprotocol ``bearer.<credential>`` beside ``wspool``; never in the
URL. The page changes things through the REST API with the credential, as any caller does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from wspool.core.auth import (
    SUBPROTOCOL,
    ApiAccess,
    authorize_api,
    offered_subprotocols,
    token_from_handshake,
)
from wspool.gateway.gateway import GATEWAY, Gateway
from wspool.gateway.model.dashboard import SERIES, NodeView, ReplicaView, pool_snapshot
from wspool.gateway.rest import ApiError
from wspool.tasks import cancel_and_wait

__all__ = ["DASHBOARD", "DashboardFeed", "dashboard_routes"]

PAGE = Path(__file__).with_name("static") / "dashboard"
"""The page, bundled from clients/dashboard (``npm run build`` there writes it here)."""

INTERVAL = 1.0
"""Seconds between two snapshots."""

HISTORY_POINTS = 600
"""Points of every time series a joining viewer gets: ten minutes at one per second."""

SEND_TIMEOUT = 5.0
"""Seconds a viewer may take to accept one snapshot before it is closed as too slow."""

_COMPACT = (",", ":")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page loads and reaches nothing but this gateway (uPlot sizes its canvases with inline
styles, hence ``'unsafe-inline'`` for styles alone)."""

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


class DashboardFeed:
    """The one producer of snapshots of a replica, and the dashboards it sends them to."""

    def __init__(self, gateway: Gateway, interval: float = INTERVAL) -> None:
        self.gateway = gateway
        self.interval = interval
        self.viewers: set[web.WebSocketResponse] = set()
        self.points: deque[list[float]] = deque(maxlen=HISTORY_POINTS)
        self.snapshots = 0
        """Snapshots built so far (none while nobody watches)."""
        self._latest: str | None = None
        self._producer: asyncio.Task[None] | None = None

    async def watch(self, viewer: web.WebSocketResponse) -> None:
        """Serve one prepared viewer until it goes: the history and the latest snapshot,
        then every snapshot."""
        history = {"type": "history", "series": SERIES, "points": list(self.points)}
        try:
            await viewer.send_str(json.dumps(history, separators=_COMPACT))
            if self._latest is not None:
                await viewer.send_str(self._latest)
        except ConnectionError:
            return  # gone before its first frames
        self.viewers.add(viewer)
        if self._producer is None:
            self._producer = asyncio.create_task(self._produce(), name="dashboard-feed")
        try:
            async for _ in viewer:  # a dashboard sends nothing; reading notices its close
                pass
        finally:
            self.viewers.discard(viewer)
            if not self.viewers:
                producer, self._producer = self._producer, None
                await cancel_and_wait(producer)

    async def stop(self) -> None:
        """The replica stops: no more snapshots, every dashboard closed with 1001."""
        producer, self._producer = self._producer, None
        await cancel_and_wait(producer)
        for viewer in list(self.viewers):
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(1.0):
                    await viewer.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")

    def snapshot(self) -> dict[str, Any]:
        """The pool now, as ``model.dashboard.pool_snapshot`` shows it."""
        gateway = self.gateway
        pool = gateway.pool
        now = time.time()
        nodes = [
            NodeView(
                id=node.server_id or node.id,
                url=node.info.url,
                healthy=node.healthy,
                circuit=pool.circuit_state(node).value,
                weight=pool.weight(node),
                ramp=pool.ramp(node, now),
                draining=node.draining,
                connections=node.connections,
                samples=tuple(node.samples),
                latencies_ms=tuple(node.latencies_ms),
            )
            for node in pool
        ]
        replica = ReplicaView(
            id=gateway.settings.id,
            replicas=pool.replicas,
            store_up=pool.store_reachable,
            relayed_connections=gateway.stats.connections_open,
            writes_open=gateway.api_policy.insecure,
        )
        return pool_snapshot(now, replica, pool.config.to_json(), nodes)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            snapshot = self.snapshot()
            self.points.append(snapshot["point"])
            self._latest = text = json.dumps(snapshot, separators=_COMPACT)
            self.snapshots += 1
            await asyncio.gather(*(self._send(viewer, text) for viewer in list(self.viewers)))
            await asyncio.sleep(max(0.0, started + self.interval - loop.time()))

    async def _send(self, viewer: web.WebSocketResponse, text: str) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await viewer.send_str(text)
        except (TimeoutError, ConnectionError):
            self.viewers.discard(viewer)
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(1.0):
                    await viewer.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow")


DASHBOARD = web.AppKey("dashboard", DashboardFeed)


async def _feed(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    viewer = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=30.0)
    if not viewer.can_prepare(request).ok:
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", "expected a WebSocket upgrade")
    if not gateway.settings.security.origin_allowed(request.headers.get("Origin")):
        raise ApiError(HTTPStatus.FORBIDDEN, "FORBIDDEN", "origin not allowed")
    offered = offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", ()))
    credential = token_from_handshake(request.headers.get("Authorization"), "", offered)
    authorize_api(
        gateway.api_policy, ApiAccess.READ, None if credential is None else f"Bearer {credential}"
    )
    await viewer.prepare(request)
    await request.app[DASHBOARD].watch(viewer)
    return viewer


def _page_routes(files: dict[str, bytes]) -> Sequence[web.RouteDef]:
    """``/dashboard/`` and the files beside its index, never cached stale."""

    def answer(name: str) -> web.Response:
        body = files.get(name)
        if body is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such dashboard file")
        return web.Response(
            body=body,
            content_type=_TYPES[Path(name).suffix],
            charset="utf-8",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    async def index(request: web.Request) -> web.Response:
        return answer("index.html")

    async def asset(request: web.Request) -> web.Response:
        return answer(request.match_info["name"])

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect("/dashboard/")

    return [
        web.get("/dashboard", redirect),
        web.get("/dashboard/", index),
        web.get("/dashboard/{name}", asset),
    ]


def dashboard_routes() -> Sequence[web.RouteDef]:
    """The page's routes and the feed's (named ``dashboard_feed``: it checks its caller)."""
    files = {path.name: path.read_bytes() for path in PAGE.iterdir() if path.suffix in _TYPES}
    return [
        *_page_routes(files),
        web.get("/api/v1/dashboard/feed", _feed, name="dashboard_feed"),
    ]
