"""The Python client of a websocket-pool: reconnects, resubscribes and recovers by itself.

async with Client(["ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws"]) as client:
    await client.subscribe("prices")
    async for message in client.messages():
        ...
"""

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
    "RequestError",
    "Resubscribed",
    "TokenProvider",
]
