"""``wspool server``: run one node until SIGTERM, then drain and exit 0."""

from __future__ import annotations

from wspool.core.config import ServerSettings
from wspool.runtime import create_engine, raise_open_file_limit, wait_for_shutdown_signal
from wspool.server.node import ServerNode

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
        await wait_for_shutdown_signal()
        await node.drain()
    finally:
        await node.stop()
        await engine.close()
