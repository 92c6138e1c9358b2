"""The bus's two dedicated Redis connections, used without redis-py's per-call machinery.

Through redis-py's client, every command checks a connection out of the pool, runs under a
retry wrapper and observability hooks, and is sent as a task of its own (``wait_for``) and
read under a timer; every pub/sub message is read the same way under another timer. At
everyday rates a node publishes and receives about one message per batch, so that machinery
was most of a message's cost. The bus's two hot paths each own one redis-py connection
instead (made from the same URL and options as the client's, so TLS and AUTH are redis-py's)
and talk to it directly:

- :class:`ScriptLink` sends publish script calls, pipelined, one request at a time, with one
  deadline per request;
- :class:`PubSubLink` holds the pub/sub subscriptions: commands are written without awaiting
  their replies, and one loop reads replies and messages in order with no timer per message,
  while a watchdog pings a quiet link and cuts a silent one.

:class:`SinglePubSub` is the bus's pub/sub on one server (or Sentinel's primary): one
:class:`PubSubLink`. On a Redis Cluster, :class:`~wspool.state.redis_shards.ShardedPubSub`
holds one per primary instead; both open the same way: subscribe, then ``PING``
:data:`LINK_UP`, whose answer comes after every subscription's confirmation.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

__all__ = ["LINK_UP", "PubSubLink", "ScriptLink", "SinglePubSub", "pack"]

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
        connection = self._connection
        loop = asyncio.get_running_loop()
        watchdog = loop.create_task(self._watch(), name="redis-pubsub-watchdog")
        turn = loop.time()
        try:
            while True:
                reply = await connection.read_response(timeout=math.inf)
                now = self._heard = loop.time()
                on_reply(reply)
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
                    await self.send("PING")
                except (RedisError, OSError):
                    return  # the reader sees the link fail


class SinglePubSub:
    """The bus's pub/sub on one server: one :class:`PubSubLink`, opened per connection."""

    def __init__(self, connect: Connect, ping_interval: float, timeout: float) -> None:
        self._link = PubSubLink(connect, ping_interval, timeout)

    async def open(self, channels: Sequence[str], on_reply: Reply) -> None:
        """Connect and subscribe ``channels`` (pub/sub names); returns once Redis confirmed
        them all, having handed ``on_reply`` what came meanwhile."""
        await self._link.connect()
        subscribe = [("SUBSCRIBE", *channels)] if channels else []
        await self._link.send_many([*subscribe, ("PING", LINK_UP)])
        await self._link.confirm(on_reply)

    async def read(self, on_reply: Reply) -> None:
        await self._link.read(on_reply)

    async def subscribe(self, channels: Sequence[str]) -> None:
        await self._link.send("SUBSCRIBE", *channels)

    async def unsubscribe(self, channel: str) -> None:
        await self._link.send("UNSUBSCRIBE", channel)

    async def close(self) -> None:
        await self._link.close()
