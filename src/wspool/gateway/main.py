"""``wspool gateway``: serve the load balancer and the REST API until SIGTERM."""

from __future__ import annotations

import logging

from aiohttp import web

from wspool.core.config import GatewaySettings
from wspool.gateway.app import create_app
from wspool.runtime import create_engine, raise_open_file_limit, wait_for_shutdown_signal
from wspool.state.memory import MemoryBroker

__all__ = ["run_gateway", "start_gateway"]

log = logging.getLogger(__name__)


async def start_gateway(
    settings: GatewaySettings, broker: MemoryBroker | None = None
) -> web.AppRunner:
    """Start listening; the caller stops it with ``await runner.cleanup()``."""
    engine = create_engine(settings.redis_url, settings.key_prefix, broker)
    runner = web.AppRunner(create_app(settings, engine), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=4096)
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
