"""``wspool server``: run one node until SIGTERM, then drain and exit 0; a drain the pool
manager asked for (``POST /api/v1/nodes/{id}/drain``) ends it the same way."""

from __future__ import annotations

import asyncio

from wspool.core.config import ServerSettings
from wspool.runtime import create_engine, raise_open_file_limit, wait_for_shutdown_signal
from wspool.server.node import ServerNode
from wspool.tasks import cancel_and_wait

__all__ = ["run_server"]


async def run_server(settings: ServerSettings) -> None:
    raise_open_file_limit()
    engine = create_engine(
        settings.redis_url,
        settings.key_prefix,
        history=settings.history,
        session_ttl=settings.session_ttl,
    )
    node = ServerNode(settings.resolved(), engine)
    await node.start()
    try:
        waits = [
            asyncio.create_task(wait_for_shutdown_signal()),
            asyncio.create_task(node.stopped.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)
        await node.drain()
    finally:
        await node.stop()
        await engine.close()
