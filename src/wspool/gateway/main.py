"""``wspool gateway``: serve the load balancer and the REST API until SIGTERM."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from wspool.core.config import GatewaySettings
from wspool.gateway.app import create_app
from wspool.gateway.front import FrontSite
from wspool.gateway.gateway import GATEWAY
from wspool.runtime import create_engine, raise_open_file_limit, wait_for_shutdown_signal
from wspool.state.memory import MemoryBroker

__all__ = ["run_gateway", "start_gateway"]

log = logging.getLogger(__name__)

MAX_HEADERS = 128
MAX_HEADER_LINE = 8190
"""A node (websockets) takes 128 headers of at most 8,192 bytes a line; the gateway takes no
more, or it would relay requests that a node refuses after the gateway paid for them."""


def connection_options(settings: GatewaySettings) -> dict[str, Any]:
    """aiohttp's settings for each client connection."""
    return {
        "access_log": None,
        # A first request not complete in time is closed (wspool.gateway.front); then
        # aiohttp's keep-alive timer runs between requests.
        "keepalive_timeout": settings.handshake_timeout,
        "max_headers": MAX_HEADERS,
        "max_line_size": MAX_HEADER_LINE,
        "max_field_size": MAX_HEADER_LINE,
    }


async def start_gateway(
    settings: GatewaySettings, broker: MemoryBroker | None = None
) -> web.AppRunner:
    """Start listening; the caller stops it with ``await runner.cleanup()``."""
    engine = create_engine(settings.redis_url, settings.key_prefix, broker, settings.history)
    app = create_app(settings, engine)
    options = connection_options(settings)
    runner = web.AppRunner(app, shutdown_timeout=2.0, **options)
    await runner.setup()
    site = FrontSite(runner, settings.host, settings.port, app[GATEWAY], options)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def run_gateway(settings: GatewaySettings) -> None:
    raise_open_file_limit()
    runner = await start_gateway(settings)
    log.info("gateway listening on %s:%d", settings.host, settings.port)
    try:
        await wait_for_shutdown_signal()
    finally:
        await runner.cleanup()
