"""The Python client: one logical connection to a pool that survives node failures.

A background task owns the WebSocket. After any close (1012 from a draining node, a crashed
node, a network cut noticed by the keepalive pings) it waits a jittered exponential delay
(:class:`wspool.core.backoff.Backoff`), connects to the next URL, and subscribes to every
channel again with ``since`` set to the offset of the last message it received there, so the
node replays what was missed and the application sees each message once, in order. When the
history no longer holds them, the application gets :class:`Resubscribed` with
``recovered=False`` instead of a silent gap. A node that cannot take a resubscribe yet (its
store out of reach, ``INTERNAL``; a rate limit) gets it again after a backoff delay; one
refused for good ends that subscription with an :class:`Error` naming the channel.

With a ``token`` (a string, or a provider called again for every connection and before
the token expires; see :mod:`wspool.client.credentials`) the client shows it as
``Authorization: Bearer`` and renews it on the open connection. A pool that refuses the
credential stops the client: :class:`AuthenticationError` from every call, instead of
trying forever.

Messages reach the application through ``async for message in client.messages()``. The
queue between the socket and the application is bounded: an application that stops reading
stops the client reading its socket, the node eventually closes it as a slow consumer, and
the client catches up from history after reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wspool.client.credentials import (
    TokenProvider,
    fetch_token,
    keep_renewed,
    loggable_url,
    refusal_reason,
)
from wspool.client.messages import (
    AuthenticationError,
    Data,
    Error,
    Message,
    RequestError,
    Resubscribed,
)
from wspool.core.backoff import Backoff
from wspool.core.logguard import RedactFilter
from wspool.tasks import cancel_and_wait

__all__ = ["Client"]

log = logging.getLogger(__name__)

_wire_log = logging.getLogger("wspool.client.wire")
"""websockets' own log of the connection, handshake headers included at DEBUG: redacted."""
_wire_log.addFilter(RedactFilter())

_FOR_NOW = frozenset({"INTERNAL", "RATE_LIMITED"})
"""Codes of a refusal that a later attempt may not get: the node's store out of reach, a
rate limit."""

STABLE_AFTER = 2.0
"""Seconds a connection must last before the backoff starts again from its base."""


@dataclass(eq=False)
class _Channel:
    """The client's side of one subscription."""

    position: str | None
    ready: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    sent_on: ClientConnection | None = None
    confirmed_once: bool = False
    sent_since: str | None = None
    retries: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=2.0))
    """Delays between the sends of a resubscribe the node could not take yet."""


class Client:
    """Connects to a pool (the gateway's URL, or a list of node URLs tried in turn)."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        client_id: str | None = None,
        token: str | TokenProvider | None = None,
        backoff: Backoff | None = None,
        ping_interval: float = 10.0,
        ping_timeout: float = 10.0,
        open_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        queue_size: int = 10_000,
    ) -> None:
        self._urls = [urls] if isinstance(urls, str) else list(urls)
        if not self._urls:
            raise ValueError("Client needs at least one URL")
        self.client_id = client_id
        self._token_provider: TokenProvider | None = (
            (lambda: token) if isinstance(token, str) else token
        )
        self._token = ""
        self._failure: AuthenticationError | None = None
        self._backoff = backoff or Backoff(base=0.1, cap=5.0)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._open_timeout = open_timeout
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(queue_size)
        self._channels: dict[str, _Channel] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._subscribe_ids: dict[str, str] = {}
        self._resends: set[asyncio.Task[None]] = set()  # resubscribes waiting their turn
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._online = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.server_id = ""
        self.connection_id = ""
        self.connections = 0
        """How many connections the client has opened (1 + reconnects)."""

    # lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start the connection loop; returns once connected (``TimeoutError`` after
        ``connect_timeout`` seconds without a connection; the loop keeps trying)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wspool-client")
        async with asyncio.timeout(self._connect_timeout):
            await self._online.wait()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        """Close the connection for good; ``messages()`` ends."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        await cancel_and_wait(self._task)
        self._task = None
        for resend in list(self._resends):
            await cancel_and_wait(resend)
        for state in self._channels.values():
            if not state.ready.done():
                state.ready.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    @property
    def positions(self) -> dict[str, str | None]:
        """The offset of the last message received, per subscribed channel."""
        return {channel: state.position for channel, state in self._channels.items()}

    # requests ----------------------------------------------------------------------------

    async def subscribe(self, channel: str, since: str | None = None) -> str:
        """Subscribe (again after every reconnect, from the last offset received); returns
        the channel's offset when the subscription took effect.

        ``since`` resumes from an offset the application stored itself.
        """
        self._raise_failure()
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(position=since)
            if self._ws is not None:
                await self._send_subscribe(self._ws, channel, state)
        async with asyncio.timeout(self._request_timeout):
            return await asyncio.shield(state.ready)

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``; also not subscribed again after reconnects."""
        state = self._channels.pop(channel, None)
        if state is None or self._ws is None or state.sent_on is not self._ws:
            return
        with contextlib.suppress(ConnectionError):
            await self._request({"type": "unsubscribe", "channel": channel})

    async def publish(self, channel: str, payload: Any, message_id: str | None = None) -> str:
        """Send a message; returns its ``messageId``. The protocol acknowledges nothing: a
        refusal comes back as an :class:`Error` in ``messages()``. While disconnected this
        waits for the next connection."""
        message_id = message_id or self._next_id()
        frame = json.dumps(
            {"type": "data", "channel": channel, "payload": payload, "messageId": message_id},
            separators=(",", ":"),
        )
        while True:
            await self._online.wait()
            self._raise_failure()
            ws = self._ws
            if ws is None:
                continue
            try:
                await ws.send(frame)
                return message_id
            except ConnectionClosed:
                # The connection loop notices too, clears ``_online`` and reconnects.
                await asyncio.sleep(0.01)

    async def ping(self) -> float:
        """Round trip to the node, in seconds (``ConnectionError`` while disconnected)."""
        started = time.monotonic()
        await self._request({"type": "ping"})
        return time.monotonic() - started

    async def messages(self) -> AsyncIterator[Message]:
        """Every :class:`Data`, :class:`Resubscribed` and :class:`Error`, in arrival order."""
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message

    def _next_id(self) -> str:
        return f"c{next(self._ids)}"

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self._raise_failure()
        ws = self._ws
        if ws is None:
            raise ConnectionError("not connected")
        message_id = frame["messageId"] = self._next_id()
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[message_id] = reply
        try:
            await ws.send(json.dumps(frame, separators=(",", ":")))
            async with asyncio.timeout(self._request_timeout):
                return await reply
        except ConnectionClosed as error:
            raise ConnectionError("connection lost") from error
        finally:
            self._requests.pop(message_id, None)

    async def _send_subscribe(self, ws: ClientConnection, channel: str, state: _Channel) -> None:
        if state.sent_on is ws:
            return
        state.sent_on = ws
        message_id = self._next_id()
        self._subscribe_ids[message_id] = channel
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "messageId": message_id}
        state.sent_since = state.position
        if state.position is not None:
            frame["since"] = state.position
        with contextlib.suppress(ConnectionClosed):  # the loop resubscribes on reconnect
            await ws.send(json.dumps(frame, separators=(",", ":")))

    # the connection loop -----------------------------------------------------------------

    async def _run(self) -> None:
        index = 0
        while not self._closing:
            url = self._urls[index % len(self._urls)]
            opened = time.monotonic()
            try:
                headers = {}
                if self._token_provider is not None:
                    self._token = await fetch_token(self._token_provider)
                    headers["Authorization"] = f"Bearer {self._token}"
                async with connect(
                    self._with_client_id(url),
                    additional_headers=headers,
                    logger=_wire_log,
                    compression=None,
                    open_timeout=self._open_timeout,
                    ping_interval=self._ping_interval,
                    ping_timeout=self._ping_timeout,
                    close_timeout=2.0,
                ) as ws:
                    await self._serve(ws)
            except AuthenticationError as error:
                await self._fail(error)
                return
            except InvalidStatus as error:
                status = error.response.status_code
                if status in (401, 403):
                    await self._fail(
                        AuthenticationError(f"{status}: {refusal_reason(error.response.body)}")
                    )
                    return
                log.info("connection to %s refused: %d", loggable_url(url), status)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as error:
                log.info(
                    "connection to %s ended: %s", loggable_url(url), error or type(error).__name__
                )
            finally:
                self._disconnected()
            if self._closing:
                return
            if time.monotonic() - opened >= STABLE_AFTER:
                self._backoff.reset()
            # The next URL: the node just left is draining or gone.
            index += 1
            await asyncio.sleep(self._backoff.next_delay())

    def _with_client_id(self, url: str) -> str:
        if self.client_id is None:
            return url
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode({"clientId": self.client_id})) if q)
        return urlunsplit(parts._replace(query=query))

    async def _serve(self, ws: ClientConnection) -> None:
        hello = json.loads(await ws.recv())
        if hello.get("type") != "connected":
            raise InvalidHandshake(f"expected a connected frame, got {hello.get('type')!r}")
        self.server_id = str(hello["payload"]["serverId"])
        self.connection_id = str(hello["payload"]["connectionId"])
        if self.client_id is None:
            self.client_id = str(hello["payload"]["clientId"])
        self.connections += 1
        self._ws = ws
        for channel, state in list(self._channels.items()):
            await self._send_subscribe(ws, channel, state)
        self._online.set()
        renewal = asyncio.create_task(self._renew(), name="wspool-token-renewal")
        try:
            async for raw in ws:
                await self._handle(json.loads(raw))
        finally:
            await cancel_and_wait(renewal)

    async def _renew(self) -> None:
        if self._token_provider is None:
            return

        async def show(token: str) -> None:
            await self._request({"type": "auth", "payload": {"token": token}})
            self._token = token

        await keep_renewed(self._token_provider, self._token, show)

    async def _fail(self, error: AuthenticationError) -> None:
        """Stop for good: the credential was refused, so every call says so."""
        log.warning("authentication refused; the client stops: %s", error)
        self._failure = error
        self._closing = True
        for state in self._channels.values():
            if not state.ready.done():
                state.ready.set_exception(error)
        self._online.set()  # waiters wake up and find the failure
        await self._queue.put(Error("UNAUTHORIZED", str(error), None))
        await self._queue.put(None)

    def _disconnected(self) -> None:
        self._ws = None
        if self._failure is None:
            self._online.clear()
        self._subscribe_ids.clear()
        for reply in self._requests.values():
            if not reply.done():
                reply.set_exception(ConnectionError("connection lost"))

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "data":
            state = self._channels.get(frame.get("channel", ""))
            if state is None:
                return  # unsubscribed meanwhile
            offset = frame.get("offset")
            if offset is not None:
                state.position = offset
            await self._queue.put(
                Data(frame["channel"], frame.get("payload"), frame.get("messageId", ""), offset)
            )
        elif kind == "subscribed":
            await self._subscribed(frame)
        elif kind == "error":
            await self._error(frame)
        else:  # pong, unsubscribed
            reply = self._requests.get(frame.get("messageId", ""))
            if reply is not None and not reply.done():
                reply.set_result(frame)

    async def _subscribed(self, frame: dict[str, Any]) -> None:
        channel = self._subscribe_ids.pop(frame.get("messageId", ""), None)
        state = self._channels.get(channel or "")
        if channel is None or state is None:
            return
        offset = frame.get("offset")
        recovered = frame.get("recovered")
        if offset is not None and recovered is not True:
            # A new subscription starts here; a failed recovery restarts here.
            state.position = offset
        if state.confirmed_once:
            lost = state.sent_since is None or recovered is not True
            await self._queue.put(Resubscribed(channel, not lost, self.server_id))
        state.confirmed_once = True
        state.retries.reset()
        if not state.ready.done():
            state.ready.set_result(state.position or "")

    async def _subscribe_refused(
        self, channel: str, code: str, text: str, message_id: str | None
    ) -> None:
        """A node refused a subscribe. The application's own :meth:`subscribe` hears it. A
        resubscribe after a reconnect that the node could not take yet (its store out of
        reach, a rate limit) is sent again after a backoff delay; one refused for good
        (the credential no longer allows the channel…) ends the subscription, and the
        application gets the error, naming the channel."""
        state = self._channels.get(channel)
        if state is None:
            return
        if not state.ready.done():
            del self._channels[channel]
            state.ready.set_exception(RequestError(code, text))
        elif code in _FOR_NOW:
            ws, state.sent_on = state.sent_on, None
            resend = asyncio.create_task(
                self._subscribe_again(ws, channel, state, state.retries.next_delay())
            )
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
        else:
            del self._channels[channel]
            await self._queue.put(Error(code, text, message_id, channel))

    async def _subscribe_again(
        self, ws: ClientConnection | None, channel: str, state: _Channel, delay: float
    ) -> None:
        await asyncio.sleep(delay)
        # A reconnect meanwhile subscribed on the new connection already.
        if ws is not None and self._ws is ws and self._channels.get(channel) is state:
            await self._send_subscribe(ws, channel, state)

    async def _error(self, frame: dict[str, Any]) -> None:
        payload = frame.get("payload") or {}
        code, text = str(payload.get("code", "")), str(payload.get("message", ""))
        message_id = frame.get("messageId")
        channel = self._subscribe_ids.pop(message_id or "", None)
        if channel is not None:
            await self._subscribe_refused(channel, code, text, message_id)
            return
        reply = self._requests.get(message_id or "")
        if reply is not None and not reply.done():
            reply.set_exception(RequestError(code, text))
            return
        await self._queue.put(Error(code, text, message_id))
