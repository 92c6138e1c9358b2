"""A small protocol-aware test client over a plain websockets connection."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

__all__ = ["TestClient", "flood", "open_clients"]


class TestClient:
    """Connects, reads the ``connected`` frame, and speaks the wire protocol."""

    __test__ = False  # not a pytest test class

    def __init__(self, url: str, **options: Any) -> None:
        """``options`` go to ``websockets.connect`` (``additional_headers``, ``subprotocols``)."""
        self.url = url
        self.options = options
        self._ids = itertools.count(1)
        self.ws: ClientConnection | None = None
        self.connected: dict[str, Any] = {}

    async def __aenter__(self) -> TestClient:
        self.ws = await connect(self.url, compression=None, open_timeout=5, **self.options)
        self.connected = await self.recv()
        assert self.connected["type"] == "connected", self.connected
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.ws is not None
        await self.ws.close()

    @property
    def connection_id(self) -> str:
        return str(self.connected["payload"]["connectionId"])

    async def send_raw(self, frame: str | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(frame)

    async def send(self, **frame: Any) -> str:
        """Send a frame (a ``messageId`` is added when missing); returns its messageId."""
        frame.setdefault("messageId", f"m{next(self._ids)}")
        await self.send_raw(json.dumps(frame))
        return str(frame["messageId"])

    async def recv(self) -> dict[str, Any]:
        """The next frame, decoded; fails the test after 5 s of silence."""
        assert self.ws is not None
        async with asyncio.timeout(5):
            frame = await self.ws.recv()
        message: dict[str, Any] = json.loads(frame)
        return message

    async def request(self, **frame: Any) -> dict[str, Any]:
        """Send a frame and return the next frame received (its reply, on a quiet channel)."""
        await self.send(**frame)
        return await self.recv()

    async def subscribe(self, channel: str) -> None:
        reply = await self.request(type="subscribe", channel=channel)
        assert reply["type"] == "subscribed", reply

    async def error_code(self, **frame: Any) -> str:
        """Send a frame that must be refused; returns the error code of the reply."""
        reply = await self.request(**frame)
        assert reply["type"] == "error", reply
        return str(reply["payload"]["code"])

    async def publish(self, channel: str, payload: Any) -> None:
        await self.send(type="data", channel=channel, payload=payload)


@contextlib.asynccontextmanager
async def open_clients(url: str, count: int) -> AsyncIterator[list[TestClient]]:
    """``count`` connected clients, opened one after another, all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(TestClient(url)) for _ in range(count)]


async def flood(publisher: TestClient, reader: TestClient, channel: str) -> None:
    """Publish about 24 MB on ``channel``, far more than any send buffer and the kernel's
    socket buffers hold; ``reader``, subscribed, reads every frame as it comes, in order."""
    payload = "x" * 16_000
    for batch in range(75):
        for index in range(20):
            await publisher.publish(channel, [batch * 20 + index, payload])
        for index in range(20):
            frame = await reader.recv()
            assert frame["payload"][0] == batch * 20 + index
