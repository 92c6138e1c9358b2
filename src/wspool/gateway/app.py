"""``create_app``: the gateway as an aiohttp application, built by a factory.

The app holds one :class:`Gateway` under :data:`GATEWAY`, started and stopped by its
cleanup context; ``/ws`` is the load balancer path (relayed by ``wspool.gateway.front``
before a request reaches the app, which only answers what is not an upgrade to relay),
``/client/wspool.js`` the JavaScript client (an ES module, with the modules it imports beside
it), ``/dashboard/`` the pool's live dashboard and its feed (:mod:`.dashboard`, whose producer
the app stops before the gateway), the rest is the REST API (:mod:`.rest` for the pool and
its connections, :mod:`.channels` for publishing and history).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from wspool.core.config import GatewaySettings
from wspool.core.jsoninput import MAX_BODY_BYTES
from wspool.gateway import channels
from wspool.gateway.dashboard import DASHBOARD, DashboardFeed, dashboard_routes
from wspool.gateway.gateway import GATEWAY, Gateway, GatewayEngine
from wspool.gateway.model.upgrade import opens_websocket
from wspool.gateway.rest import ApiError, error_middleware, routes

__all__ = ["create_app"]

CLIENT_MODULES = Path(__file__).with_name("static")
"""The JavaScript client compiled from clients/js (``npm run build`` there writes it here)."""


async def _websocket(request: web.Request) -> web.StreamResponse:
    """``/ws`` as aiohttp sees it: a connection's first upgrade never reaches it
    (``wspool.gateway.front`` relays it first); one that followed another request on its
    connection (clients that share a keep-alive pool with their HTTP calls send those) is
    handed to the front door, and what is not an upgrade to relay is refused."""
    gateway = request.app[GATEWAY]
    if not opens_websocket(request.headers):
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", "expected a WebSocket upgrade")
    if not gateway.settings.security.origin_allowed(request.headers.get("Origin")):
        raise ApiError(HTTPStatus.FORBIDDEN, "FORBIDDEN", "origin not allowed")
    if gateway.front is None:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "UNAVAILABLE", "not relaying yet")
    return gateway.front.adopt(request)


def _client_modules() -> web.RouteDef:
    """``GET /client/{name}.js``: the JavaScript client's modules, read once, importable from a
    page of any origin (module scripts are fetched with CORS)."""
    modules = {path.name: path.read_bytes() for path in CLIENT_MODULES.glob("*.js")}

    async def serve(request: web.Request) -> web.Response:
        body = modules.get(request.match_info["name"])
        if body is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such client module")
        return web.Response(
            body=body,
            content_type="text/javascript",
            charset="utf-8",
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
        )

    return web.get("/client/{name}", serve)


def create_app(settings: GatewaySettings, engine: GatewayEngine) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    gateway = Gateway(settings.resolved(), engine)
    app[GATEWAY] = gateway
    app[DASHBOARD] = feed = DashboardFeed(gateway)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await gateway.start()
        yield
        await feed.stop()
        await gateway.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/ws", _websocket)
    app.router.add_get("/", _websocket)
    app.add_routes([_client_modules()])
    app.add_routes(dashboard_routes())
    app.add_routes(routes)
    app.add_routes(channels.routes)
    return app
