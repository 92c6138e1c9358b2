"""The operator's own HTTP endpoints: ``/healthz`` on ``--health-port``, ``/metrics`` on
``--metrics-port`` (both on one port when they are the same; a port of 0 serves nothing).

They run for the whole life of the process, whether it acts or stands by for the lease: a
standby replica is alive and must pass its liveness probe, and its metrics say it is not the
leader. ``/healthz`` answers as long as the event loop that runs the operator does.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

__all__ = ["Endpoints"]


class Endpoints:
    """``/healthz`` and ``/metrics`` on their ports, started and stopped with the operator."""

    def __init__(
        self,
        *,
        health_port: int,
        metrics_port: int,
        registry: CollectorRegistry,
        leading: Callable[[], bool],
        host: str = "0.0.0.0",
    ) -> None:
        self.host = host
        self.registry = registry
        self.leading = leading
        self._routes: dict[int, list[web.RouteDef]] = {}
        if health_port:
            self._routes.setdefault(health_port, []).append(web.get("/healthz", self._health))
        if metrics_port:
            self._routes.setdefault(metrics_port, []).append(web.get("/metrics", self._metrics))
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        for port, routes in self._routes.items():
            app = web.Application()
            app.add_routes(routes)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, self.host, port).start()

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leading": self.leading()})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
