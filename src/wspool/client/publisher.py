"""``Publisher``: a backend publishes through the pool's REST API (docs/server-api.md).

async with Publisher("http://127.0.0.1:8080", token=admin_token) as publisher:
    offset = await publisher.publish("prices", {"eur": 1.08})

One aiohttp session keeps a pool of HTTP connections to the gateway. Publishes batch by
themselves, per channel: while a request for a channel is in flight, what is published on it
queues, and the next request takes up to 100 queued messages at once (one ``messages``
batch, its body within the API's 64 KiB), so an idle publisher sends each message at once
and a busy one makes few, large requests. Order within a channel is the order of the calls;
channels go in parallel.

Needs aiohttp: install websocket-pool with its ``[client]`` extra. A refused request raises
:class:`RequestError` (its ``code`` and ``message`` from the API's error), a refused credential
:class:`AuthenticationError`, a gateway that cannot be reached ``RequestError("UNREACHABLE")``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from wspool.client.credentials import TokenProvider, fetch_token
from wspool.client.messages import AuthenticationError, RequestError

__all__ = ["MAX_BATCH", "Publisher"]

MAX_BATCH = 100
"""Messages one request publishes at most (the API's limit)."""

MAX_BODY = 64 * 1024
"""Bytes of one request's body at most (the API's limit): a batch stops short of it."""

_Pending = tuple[str, "asyncio.Future[str]"]
"""A message's ``{"payload": …}`` as JSON text, and who waits for its offset."""


class Publisher:
    """Publishes to a pool's channels over its REST API, batching per channel."""

    def __init__(
        self,
        url: str,
        *,
        token: str | TokenProvider | None = None,
        max_connections: int = 16,
        timeout: float = 10.0,
    ) -> None:
        """``url`` is the gateway's base (``http://gateway:8080``); ``token`` the admin
        token or a token allowed to publish (or a provider of one); ``max_connections``
        the HTTP connections kept to it; ``timeout`` seconds per request."""
        self._url = url.rstrip("/") + "/api/v1"
        self._token = token
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, list[_Pending]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Publisher:
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Send what is queued, then close the connections."""
        if self._senders:
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def publish(self, channel: str, payload: Any) -> str:
        """Publish one message; returns its offset once the pool has it. A payload that is
        not JSON (``NaN`` included) raises ``TypeError`` or ``ValueError`` here."""
        message = json.dumps({"payload": payload}, separators=(",", ":"), allow_nan=False)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(channel, []).append((message, future))
        if channel not in self._senders:
            self._senders[channel] = asyncio.create_task(self._send(channel))
        return await future

    async def publish_many(self, channel: str, payloads: Sequence[Any]) -> list[str]:
        """Publish messages in this order; returns their offsets."""
        return list(await asyncio.gather(*(self.publish(channel, p) for p in payloads)))

    async def broadcast(self, channels: Iterable[str], payload: Any) -> dict[str, str]:
        """Publish one payload on each channel; returns the offset on each."""
        answer = await self._call(
            "POST", "/broadcast", {"channels": list(channels), "payload": payload}
        )
        return dict(answer["offsets"])

    async def history(
        self, channel: str, since: str | None = None, limit: int = 100, reverse: bool = False
    ) -> dict[str, Any]:
        """The channel's history: ``{"channel", "position", "recovered", "messages"}``."""
        query: dict[str, str] = {"limit": str(limit), "reverse": "true" if reverse else "false"}
        if since is not None:
            query["since"] = since
        return await self._call("GET", f"/channels/{quote(channel, safe='')}/messages", query=query)

    async def _send(self, channel: str) -> None:
        """Send the channel's queue, a batch per request, until it is empty."""
        queue = self._queues[channel]
        try:
            while queue:
                batch = _batch(queue)
                del queue[: len(batch)]
                body = '{"messages":[' + ",".join(message for message, _ in batch) + "]}"
                try:
                    path = f"/channels/{quote(channel, safe='')}/messages"
                    offsets = (await self._call("POST", path, body))["offsets"]
                except (RequestError, AuthenticationError) as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), offset in zip(batch, offsets, strict=True):
                    if not future.done():
                        future.set_result(offset)
        finally:
            del self._queues[channel]
            del self._senders[channel]

    async def _call(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("use the Publisher in `async with`")
        headers: dict[str, str] = {}
        if self._token is not None:
            token = self._token if isinstance(self._token, str) else await fetch_token(self._token)
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, str) or body is None else json.dumps(body)
        headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, self._url + path, data=data, params=query, headers=headers
            ) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RequestError(
                "UNREACHABLE", f"{method} {path}: {error or type(error).__name__}"
            ) from error
        if response.status < 400:
            return dict(answer)
        detail = answer.get("error", {}) if isinstance(answer, dict) else {}
        code, message = str(detail.get("code", response.status)), str(detail.get("message", ""))
        if response.status == 401:
            raise AuthenticationError(message)
        raise RequestError(code, message)


def _batch(queue: list[_Pending]) -> list[_Pending]:
    """The head of the queue that one request takes: at most :data:`MAX_BATCH` messages in
    at most :data:`MAX_BODY` bytes (always one, so a message too large on its own gets the
    API's answer)."""
    size = len('{"messages":[]}')
    for count, (message, _) in enumerate(queue[:MAX_BATCH]):
        size += len(message.encode()) + 1
        if size > MAX_BODY and count:
            return queue[:count]
    return queue[:MAX_BATCH]
