"""The Python client of a websocket-pool: reconnects, resubscribes and recovers by itself.

async with Client(["ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws"]) as client:
    await client.subscribe("prices")
    async for message in client.messages():
        ...

``Publisher`` (:mod:`wspool.client.publisher`) is a backend's side: it publishes through the
pool's REST API, and needs aiohttp (the ``[client]`` extra), so it is imported only when
asked for; ``Client`` needs websockets alone.
"""

from typing import TYPE_CHECKING, Any

from wspool.client.client import Client
from wspool.client.credentials import TokenProvider
from wspool.client.messages import (
    AuthenticationError,
    Data,
    Error,
    Message,
    RequestError,
    Resubscribed,
)

__all__ = [
    "AuthenticationError",
    "Client",
    "Data",
    "Error",
    "Message",
    "Publisher",
    "RequestError",
    "Resubscribed",
    "TokenProvider",
]

if TYPE_CHECKING:
    from wspool.client.publisher import Publisher


def __getattr__(name: str) -> Any:
    if name == "Publisher":
        from wspool.client.publisher import Publisher

        return Publisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
