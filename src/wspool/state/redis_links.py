"""The bus's own Redis connections, used without redis-py's per-call machinery.

Through redis-py's client, every command checks a connection out of the pool, runs under a
retry wrapper and observability hooks, and is sent as a task of its own (``wait_for``) and
read under a timer; every pub/sub message is read the same way under another timer. At
everyday rates a node publishes and receives about one message per batch, so that machinery
was most of a message's cost. The bus's hot paths each own one redis-py connection instead
(made from the same URL and options as the client's, so TLS and AUTH are redis-py's) and
talk to it directly:

- :class:`PubSubLink` holds pub/sub subscriptions: commands are written without awaiting
  their replies, and one loop reads replies and messages in order with no timer per
  message, while a watchdog pings a quiet link and cuts a silent one.
- :class:`ScriptLink` sends script calls, pipelined, one request at a time, with one
  deadline per request (on a Redis Cluster, beside one :class:`PubSubLink` per primary:
  :mod:`wspool.state.redis_shards`).
- :class:`SingleLink` is the bus's link to one server (or Sentinel's primary): a
  :class:`SharedLink` per connection's life, a :class:`PubSubLink` in RESP3 that also
  carries the publish script calls. Redis puts the messages a script publishes to the node
  that sent it into the same buffer as the script's answer, so a publish comes back as one
  write that the node reads in one wake-up, where two connections cost Redis two writes
  and the node two reads (often two wake-ups). A :class:`ScriptLink` carries the calls
  made while the link is down, or in a process that subscribes to nothing.

Links open the same way: subscribe, then ``PING`` :data:`LINK_UP`, whose answer comes after
every subscription's confirmation.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

__all__ = ["LINK_UP", "PubSubLink", "ScriptLink", "SharedLink", "SingleLink", "pack"]

READ_TURN = 0.005
"""Seconds the pub/sub reader may keep the event loop before it lets the rest run."""

Command = Sequence[str | int]
Connect = Callable[[], AbstractConnection]
"""Makes a new connection (:func:`wspool.state.redis_client.dedicated`)."""


class ScriptLink:
    """One connection for requests that must not queue behind the pool: one at a time."""

    def __init__(self, connect: Connect, timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write and read their replies; a command Redis refuses
        has its ``ResponseError`` in its place. ``RedisError``/``OSError`` (the connection
        closed) when the link fails or no full answer comes within the timeout."""
        async with self._lock:
            connection = self._connection
            if connection is None:
                connection = self._connection = self._connect()
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.connect()  # type: ignore[no-untyped-call]
                    await connection.send_packed_command(pack(commands), check_health=False)
                    return [await _reply(connection) for _ in commands]
            except BaseException:
                # The replies may be out of step now: start over on a new connection.
                self._connection = None
                await connection.disconnect(nowait=True)
                raise

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._connection.disconnect()
                self._connection = None


def pack(commands: Sequence[Command]) -> bytes:
    """``commands`` in Redis's wire form (RESP arrays of bulk strings), as one buffer."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg.encode() if isinstance(arg, str) else b"%d" % arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def _reply(connection: AbstractConnection) -> Any:
    try:
        return await connection.read_response(timeout=math.inf)
    except ResponseError as error:
        return error


Reply = Callable[[Any], None]
"""Takes one reply or message of a pub/sub link (a list in the subscribed state)."""

LINK_UP = "wspool-link-up"
"""The argument of the ``PING`` that follows a link's subscriptions: Redis answers in
order, so its answer says that every subscription before it is in place."""


def _is_link_up(reply: Any) -> bool:
    """Whether ``reply`` answers the ``PING`` of :data:`LINK_UP` (a list once subscribed)."""
    return reply == LINK_UP or (isinstance(reply, list) and reply[1:2] == [LINK_UP])


class PubSubLink:
    """One pub/sub connection's life: connect, send, read until it fails, then close."""

    def __init__(self, connect: Connect, ping_interval: float, timeout: float) -> None:
        self._connection = connect()
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._heard = 0.0
        self._silence = ""

    async def connect(self) -> None:
        await self._connection.connect()  # type: ignore[no-untyped-call]
        self._heard = asyncio.get_running_loop().time()

    async def send(self, *args: str) -> None:
        """Write a command (SUBSCRIBE, UNSUBSCRIBE…); its reply comes through :meth:`read`."""
        await self.send_many([args])

    async def send_many(self, commands: Sequence[Command]) -> None:
        """Write ``commands`` at once; their replies come through :meth:`read`."""
        if not self._connection.is_connected:
            # Never reconnect behind the reader's back: a new socket has no subscriptions.
            raise RedisConnectionError("pub/sub link closed")
        await self._connection.send_packed_command(pack(commands), check_health=False)

    async def confirm(self, on_reply: Reply) -> None:
        """Hand replies and messages to ``on_reply`` until Redis answers the ``PING`` of
        :data:`LINK_UP` (sent after the link's subscriptions); the caller bounds the wait."""
        while not _is_link_up(reply := await self._connection.read_response(timeout=math.inf)):
            on_reply(reply)
        self._heard = asyncio.get_running_loop().time()

    async def read(self, on_reply: Reply) -> None:
        """Hand every reply and message to ``on_reply`` in order, until the link fails
        (raises ``RedisError``/``OSError``); pings Redis after ``ping_interval`` of silence,
        and cuts the link after ``timeout`` of it."""
        loop = asyncio.get_running_loop()
        watchdog = loop.create_task(self._watch(), name="redis-pubsub-watchdog")
        turn = loop.time()
        try:
            while True:
                await self._take(on_reply)
                now = self._heard = loop.time()
                if now - turn >= READ_TURN:
                    # Reading what is already buffered never suspends: behind a backlog the
                    # loop would run this alone, and the sockets' writes, the clients and
                    # /metrics would wait until the backlog is gone.
                    await asyncio.sleep(0)
                    turn = loop.time()
        except (RedisError, OSError) as error:
            if self._silence:
                raise RedisConnectionError(self._silence) from error
            raise
        finally:
            watchdog.cancel()

    async def close(self) -> None:
        await self._connection.disconnect(nowait=True)

    async def _take(self, on_reply: Reply) -> None:
        """Read the next reply or message and hand it on."""
        on_reply(await self._connection.read_response(timeout=math.inf))

    async def _ping(self) -> None:
        await self.send("PING")

    async def _watch(self) -> None:
        # A quiet link may be a dead one: a partition drops packets without closing the
        # socket, and a blocking read would wait for TCP keepalive (hours).
        loop = asyncio.get_running_loop()
        while True:
            asleep = loop.time()
            await asyncio.sleep(self._ping_interval)
            if loop.time() - asleep > 2 * self._ping_interval:
                # The process was too busy to run this task on time (a storm of subscribes),
                # so the reader may not have had its turn either: what looks like silence
                # may be replies not yet read. Count from now, and ping first.
                self._heard = max(self._heard, loop.time() - self._ping_interval)
            silent = loop.time() - self._heard
            if silent >= self._timeout:
                self._silence = f"no answer from Redis for {silent:.1f}s"
                await self._connection.disconnect(nowait=True)
                return
            if silent >= self._ping_interval:
                try:
                    await self._ping()
                except (RedisError, OSError):
                    return  # the reader sees the link fail


class _Pushed:
    """A RESP3 push (a pub/sub message or confirmation), told apart from a reply."""

    __slots__ = ("message",)

    def __init__(self, message: list[Any]) -> None:
        self.message = message


async def _as_pushed(message: list[Any]) -> _Pushed:
    return _Pushed(message)


class _Request:
    """Commands sent on a :class:`SharedLink`, the replies they have had so far, who waits
    for them (nobody for a ping) and until when (the loop's clock)."""

    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(
        self, count: int, future: asyncio.Future[list[Any]] | None, deadline: float
    ) -> None:
        self.count = count
        self.future = future
        self.deadline = deadline
        self.replies: list[Any] = []


class SharedLink(PubSubLink):
    """A :class:`PubSubLink` in RESP3 that also carries requests.

    Redis sends pub/sub messages and confirmations as pushes, and answers commands in order
    between them: the reader hands pushes to ``on_reply`` and each reply to the oldest
    request still waiting for one. The connection must speak RESP3 with redis-py's own
    RESP3 parser (:func:`wspool.state.redis_client.dedicated`), whose push handler tells
    pushes from replies here.
    """

    def __init__(
        self, connect: Connect, ping_interval: float, timeout: float, request_timeout: float
    ) -> None:
        super().__init__(connect, ping_interval, timeout)
        self._request_timeout = request_timeout
        self._waiting: deque[_Request] = deque()
        self._overdue: asyncio.TimerHandle | None = None  # when the oldest request is due
        self._connection._parser.set_pubsub_push_handler(_as_pushed)  # type: ignore[attr-defined]

    async def open(self, channels: Sequence[str], on_reply: Reply) -> None:
        """Subscribe ``channels`` (pub/sub names) on the connected link; returns once Redis
        confirmed them all, having handed ``on_reply`` what came meanwhile."""
        up = self._expect(1)
        subscribe = [("SUBSCRIBE", *channels)] if channels else []
        await self.send_many([*subscribe, ("PING", LINK_UP)])
        while up in self._waiting:
            await self._take(on_reply)
        self._heard = asyncio.get_running_loop().time()

    async def request(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write; their replies, a refused one as its
        ``ResponseError``. ``RedisError``/``OSError`` when the link fails first, or no full
        answer comes within the request timeout (the commands may have run)."""
        request = self._expect(len(commands), awaited=True)
        assert request.future is not None
        try:
            await self.send_many(commands)
        except BaseException:
            request.future.cancel()  # the link is broken: nobody waits for these replies
            raise
        return await request.future

    async def close(self) -> None:
        await super().close()
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        while self._waiting:
            future = self._waiting.popleft().future
            if future is not None and not future.done():
                future.set_exception(RedisConnectionError("link to Redis closed"))

    def _expect(self, count: int, awaited: bool = False) -> _Request:
        """Queue a request for ``count`` replies; sent next, before any await. An awaited
        one fails with ``TimeoutError`` if its replies are not all in within the request
        timeout (:meth:`_give_up_overdue`)."""
        if not awaited:
            request = _Request(count, None, math.inf)
        else:
            loop = asyncio.get_running_loop()
            request = _Request(count, loop.create_future(), loop.time() + self._request_timeout)
            if self._overdue is None:
                self._overdue = loop.call_at(request.deadline, self._give_up_overdue)
        self._waiting.append(request)
        return request

    def _give_up_overdue(self) -> None:
        """Fail the requests past their deadline, and be called again at the next one's.

        Replies come in order, so one timer for the oldest request does what a timeout per
        request would, without a timer armed and cancelled for every publish."""
        loop = asyncio.get_running_loop()
        self._overdue = None
        now = loop.time()
        for request in self._waiting:
            future = request.future
            if future is None or future.done():
                continue
            if request.deadline > now:
                self._overdue = loop.call_at(request.deadline, self._give_up_overdue)
                return
            future.set_exception(
                TimeoutError(f"no answer from Redis within {self._request_timeout:g}s")
            )

    async def _take(self, on_reply: Reply) -> None:
        try:
            reply = await self._connection.read_response(timeout=math.inf, push_request=True)
        except ResponseError as error:
            reply = error
        if type(reply) is _Pushed:
            on_reply(reply.message)
            return
        if not self._waiting:
            raise RedisConnectionError(f"a reply nothing asked for: {reply!r:.100}")
        request = self._waiting[0]
        request.replies.append(reply)
        if len(request.replies) == request.count:
            self._waiting.popleft()
            future = request.future
            if future is not None and not future.done():  # done: given up on (timeout)
                future.set_result(request.replies)

    async def _ping(self) -> None:
        self._expect(1)
        await self.send("PING")


class SingleLink:
    """The bus's links to one server (or Sentinel's primary): a :class:`SharedLink` per
    connection's life for its pub/sub, which also carries the publish script calls, and a
    :class:`ScriptLink` for the calls made while there is none (the link is down, or the
    process subscribes to nothing, as the gateway)."""

    def __init__(
        self, connect: Connect, ping_interval: float, timeout: float, request_timeout: float
    ) -> None:
        self._connect = connect
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._request_timeout = request_timeout
        self._link: SharedLink | None = None
        self._spare = ScriptLink(connect, request_timeout)

    async def open(self, channels: Sequence[str], on_reply: Reply) -> None:
        """Connect and subscribe ``channels`` (pub/sub names); returns once Redis confirmed
        them all, having handed ``on_reply`` what came meanwhile."""
        link = SharedLink(self._connect, self._ping_interval, self._timeout, self._request_timeout)
        await link.connect()
        self._link = link
        await link.open(channels, on_reply)

    async def read(self, on_reply: Reply) -> None:
        await self._current().read(on_reply)

    async def subscribe(self, channels: Sequence[str]) -> None:
        await self._current().send("SUBSCRIBE", *channels)

    async def unsubscribe(self, channel: str) -> None:
        await self._current().send("UNSUBSCRIBE", channel)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write and read their replies, as
        :meth:`ScriptLink.pipeline` does: on the pub/sub link while it is connected."""
        link = self._link
        if link is None:
            return await self._spare.pipeline(commands)
        return await link.request(commands)

    async def close(self) -> None:
        """End the pub/sub link's current life (the next :meth:`open` starts another), and
        close the spare connection (opened again when next used)."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        await self._spare.close()

    def _current(self) -> SharedLink:
        if self._link is None:
            raise RedisConnectionError("pub/sub link closed")
        return self._link
