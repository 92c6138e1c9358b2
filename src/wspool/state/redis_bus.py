"""The Redis message bus: cross-node pub/sub and channel history in Redis.

Pub/sub uses one dedicated connection per process (:class:`~wspool.state.redis_links.SingleLink`;
on a Redis Cluster one per primary, with sharded pub/sub:
:class:`~wspool.state.redis_shards.ShardedPubSub`), read by a single task that hands every
buffered message on as it parses it; when Redis goes away the task reports it, reconnects
with backoff and resubscribes every channel the node still needs; it reports the link up
only once Redis has confirmed them all, so the node can then read from each channel's
history what the link missed.

A publish batch goes through one call of the history script
(:mod:`wspool.state.redis_history`) for all its channels, which numbers, stores and
publishes each channel's frames as one Redis message: a burst costs one round trip and one
script call. On one server (or Sentinel's primary) the call goes out on the pub/sub
connection itself, so Redis writes its answer and the messages it published to this node
in one write; while that connection is down, or in a process that subscribes to nothing,
on a connection of its own. Which channels share a call is decided in
:meth:`RedisBus._script_groups` alone: on a Redis Cluster, those of one slot, and the calls
go out as one pipeline per primary (:class:`~wspool.state.redis_shards.ShardScripts`, on
connections of their own), so a burst costs one round trip per shard. Publishing needs no
pub/sub link.

Subscribes and history reads asked for while one batch of them is in flight go out together
as the next (:mod:`wspool.state.coalesce`): a storm of subscribes costs one SUBSCRIBE and one
pipelined read per batch, on one pooled connection, instead of one of each per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from wspool.core.backoff import Backoff
from wspool.core.history import HistoryPolicy, HistoryRead, StreamPosition
from wspool.core.keys import Keys
from wspool.core.redisurl import parse_redis_url, without_credentials
from wspool.state.coalesce import Coalescer
from wspool.state.engine import (
    EngineUnavailableError,
    MessageHandler,
    OutcomeUnknownError,
    StatusHandler,
)
from wspool.state.redis_client import FAILURES, close, connect, dedicated, run
from wspool.state.redis_history import (
    history_scripts,
    publish_call,
    publish_result,
    read_args,
    read_result,
    recent_args,
    recent_result,
    split_message,
)
from wspool.state.redis_links import Command, Reply, SingleLink
from wspool.state.redis_shards import ShardedPubSub, ShardScripts
from wspool.tasks import cancel_and_wait

__all__ = ["LINK_PING_INTERVAL", "LINK_TIMEOUT", "PUBLISH_TIMEOUT", "SUBSCRIBE_TIMEOUT", "RedisBus"]

log = logging.getLogger(__name__)

LINK_PING_INTERVAL = 1.0
"""Seconds of silence on the pub/sub link after which the reader pings Redis."""

LINK_TIMEOUT = 3.0
"""Seconds of silence (pings unanswered) after which the link counts as lost."""

SUBSCRIBE_TIMEOUT = 5.0
"""Seconds to wait for Redis to confirm a SUBSCRIBE before reporting the bus unavailable."""

PUBLISH_TIMEOUT = 5.0
"""Seconds a publish may wait for Redis's answer before its outcome counts as unknown."""

BATCH_LIMIT = 500
"""History reads (or channels to subscribe) sent to Redis in one pipeline (or SUBSCRIBE) at
most; the requests made while one batch is in flight go out together as the next."""


class Scripts(Protocol):
    """Sends pipelined script calls: :class:`SingleLink` or :class:`ShardScripts`."""

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]: ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    """The pub/sub links, opened anew for each connection's life: :class:`SingleLink` or
    :class:`ShardedPubSub`."""

    async def open(self, channels: Sequence[str], on_reply: Reply) -> None: ...

    async def read(self, on_reply: Reply) -> None: ...

    async def subscribe(self, channels: Sequence[str]) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def close(self) -> None: ...


class RedisBus:
    """Implements ``MessageBus`` on Redis: one server, a cluster, or Sentinel's primary."""

    def __init__(
        self, url: str, keys: Keys | None = None, history: HistoryPolicy | None = None
    ) -> None:
        target = parse_redis_url(url)
        self._url = without_credentials(url)  # for logs
        self._keys = keys or Keys()
        self._history = history or HistoryPolicy()
        # Commands fail fast during an outage (callers keep their own retry state).
        self._redis = connect(target, socket_timeout=5.0)
        self._scripts: Scripts
        self._single: SingleLink | None = None
        if isinstance(self._redis, RedisCluster):
            self._keys = replace(self._keys, sharded=True)
            self._scripts = ShardScripts(self._redis, PUBLISH_TIMEOUT)
        else:
            # (It keeps the pool of a Sentinel, whose connections only hold a weak reference.)
            self._single = SingleLink(
                dedicated(target, self._redis), LINK_PING_INTERVAL, LINK_TIMEOUT, PUBLISH_TIMEOUT
            )
            self._scripts = self._single
        self._lua = history_scripts(target.kind)
        self._channels: set[str] = set()
        self._waiters: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_status: StatusHandler | None = None
        self._available = False
        self._shas: dict[str, str] = {}  # each script's sha, once loaded
        self._reads = Coalescer(self._read_batch, max_batch=BATCH_LIMIT)
        self._subscribes = Coalescer(self._subscribe_batch, max_batch=BATCH_LIMIT)

    @property
    def available(self) -> bool:
        return self._available

    async def start(self, on_message: MessageHandler, on_status: StatusHandler) -> None:
        self._on_message = on_message
        self._on_status = on_status
        self._reader = asyncio.create_task(self._read_forever(), name="redis-pubsub-reader")

    async def close(self) -> None:
        await self._reads.close()
        await self._subscribes.close()
        await cancel_and_wait(self._reader)
        self._reader = None
        await self._scripts.close()
        await close(self._redis)

    async def publish(
        self, batches: Mapping[str, Sequence[str]], batch_id: str = ""
    ) -> dict[str, StreamPosition]:
        positions: dict[str, StreamPosition] = {}
        if not batches:
            return positions
        groups = self._script_groups(batches)
        for _ in range(2):  # a second pass only after Redis forgot the script (restart)
            if not self._shas:
                await self._load_scripts()
            calls: list[tuple[str | int, ...]] = []
            for group in groups:
                script_keys, args = publish_call(self._keys, self._history, group, batch_id)
                sha = self._shas[self._lua.publish]
                calls.append(("EVALSHA", sha, len(script_keys), *script_keys, *args))
            try:
                results = await run(self._scripts.pipeline(calls))
            except EngineUnavailableError as error:
                # Sent, perhaps run, never answered (Redis frozen, link cut mid-request).
                raise OutcomeUnknownError(str(error)) from error.__cause__
            for group, result in zip(groups, results, strict=True):
                if not isinstance(result, Exception):
                    positions.update(publish_result(group, result))
            # NOSCRIPT means the script did not run, so publishing that group again is safe.
            groups = [
                g for g, r in zip(groups, results, strict=True) if isinstance(r, NoScriptError)
            ]
            errors = [r for r in results if isinstance(r, Exception)]
            if not groups:
                if errors:
                    raise EngineUnavailableError(str(errors[0]))
                return positions
            self._shas = {}
        raise EngineUnavailableError("Redis refuses the publish script")

    def _script_groups(
        self, batches: Mapping[str, Sequence[str]]
    ) -> list[Mapping[str, Sequence[str]]]:
        """Which channels of a batch share one script call: all of them on one server; on a
        cluster, those of one slot (a script's keys must share one)."""
        if not self._keys.sharded:
            return [batches]
        groups: defaultdict[int, dict[str, Sequence[str]]] = defaultdict(dict)
        for channel, frames in batches.items():
            groups[key_slot(channel.encode())][channel] = frames
        return list(groups.values())

    async def read_history(self, channel: str, since: StreamPosition | None) -> HistoryRead:
        return await self._reads.submit((channel, since))

    async def read_recent(self, channel: str, count: int) -> HistoryRead:
        keys = (self._keys.history(channel), self._keys.history_meta(channel))
        args = recent_args(self._history, count)
        if not self._shas:
            await self._load_scripts()
        try:
            raw = await run(self._redis.evalsha(self._shas[self._lua.recent], 2, *keys, *args))
        except EngineUnavailableError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
            await self._load_scripts()
            raw = await run(self._redis.evalsha(self._shas[self._lua.recent], 2, *keys, *args))
        return recent_result(raw)

    async def _read_batch(
        self, requests: list[tuple[str, StreamPosition | None]]
    ) -> list[HistoryRead | Exception]:
        """One pipeline of history reads, one read for each distinct request: a storm of
        subscribes to one channel (every one without ``since``, or after the same frame)
        reads it once."""
        distinct = list(dict.fromkeys(requests))
        answers = dict(zip(distinct, await self._read_distinct(distinct), strict=True))
        return [answers[request] for request in requests]

    async def _read_distinct(
        self, requests: list[tuple[str, StreamPosition | None]]
    ) -> list[HistoryRead | Exception]:
        """One pipeline of history reads; a second for those Redis had no script for."""
        refused = EngineUnavailableError("Redis refuses the read script")
        answers: list[HistoryRead | Exception] = [refused] * len(requests)
        pending = list(range(len(requests)))
        for _ in range(2):  # a second pass only after Redis forgot the script (restart)
            if not self._shas:
                await self._load_scripts()
            sha = self._shas[self._lua.read]
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in pending:
                    channel, since = requests[i]
                    keys = (self._keys.history(channel), self._keys.history_meta(channel))
                    # (execute_command: a cluster pipeline refuses evalsha() by name)
                    pipe.execute_command("EVALSHA", sha, 2, *keys, *read_args(self._history, since))
                results = await run(pipe.execute(raise_on_error=False))
            retry: list[int] = []
            for i, raw in zip(pending, results, strict=True):
                if isinstance(raw, NoScriptError):
                    retry.append(i)
                elif isinstance(raw, Exception):
                    answers[i] = EngineUnavailableError(str(raw))
                else:
                    answers[i] = read_result(raw, requests[i][1])
            if not retry:
                break
            pending = retry
            self._shas = {}
        return answers

    async def _load_scripts(self) -> None:
        shas = {}
        for script in (self._lua.publish, self._lua.read, self._lua.recent):
            shas[script] = await run(self._redis.script_load(script))
        self._shas = shas

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._pubsub is None:
            raise EngineUnavailableError("pub/sub link to Redis is down")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[channel].append(waiter)
        try:
            await self._subscribes.submit(channel)
            # Redis confirms in order on the pub/sub link; only after the confirmation is a
            # message published by any node guaranteed to reach us.
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await asyncio.shield(waiter)
        except (EngineUnavailableError, TimeoutError):
            self._channels.discard(channel)
            raise EngineUnavailableError(
                f"Redis did not confirm the subscription to {channel}"
            ) from None
        finally:
            if waiter in self._waiters[channel]:
                self._waiters[channel].remove(waiter)

    async def _subscribe_batch(self, channels: list[str]) -> list[None]:
        """One SUBSCRIBE for every channel asked for meanwhile."""
        pubsub = self._pubsub
        if pubsub is None:
            raise EngineUnavailableError("pub/sub link to Redis is down")
        await run(pubsub.subscribe([self._keys.channel(c) for c in channels]))
        return [None] * len(channels)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            # A failure here is harmless: a stray subscription only delivers frames that the
            # node drops, and it ends with the link.
            with contextlib.suppress(*FAILURES):
                await pubsub.unsubscribe(self._keys.channel(channel))

    async def _read_forever(self) -> None:
        # A cluster replaces a failed primary within seconds: look for the new one often.
        backoff = Backoff(base=0.1, cap=0.5 if self._keys.sharded else 2.0)
        while True:
            pubsub = self._new_pubsub()
            try:
                # Every channel the node needs: the links are up once Redis confirmed them
                # all (the node then reads what it missed from history). The links' sockets
                # have no read timeout, so bound their setup here.
                wanted = [self._keys.channel(c) for c in sorted(self._channels)]
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                    await pubsub.open(wanted, self._on_reply)
                self._pubsub = pubsub
                backoff.reset()
                self._set_available(True)
                await pubsub.read(self._on_reply)
            except FAILURES as error:  # TimeoutError is an OSError
                self._pubsub = None
                self._set_available(False)
                if not backoff.failures:
                    reason = str(error) or "no answer in time"
                    log.warning("redis pub/sub link lost: %s", reason, extra={"redis": self._url})
                for waiters in self._waiters.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(EngineUnavailableError(str(error)))
                await asyncio.sleep(backoff.next_delay())
            finally:
                self._pubsub = None
                with contextlib.suppress(*FAILURES):
                    await pubsub.close()

    def _new_pubsub(self) -> PubSub:
        if self._single is not None:
            return self._single
        assert isinstance(self._redis, RedisCluster)
        return ShardedPubSub(self._redis, LINK_PING_INTERVAL, LINK_TIMEOUT)

    def _on_reply(self, reply: list[str]) -> None:
        """One reply on a pub/sub link: a message, a confirmation, or a pong."""
        kind = reply[0]
        if kind == "message" or kind == "smessage":
            assert self._on_message is not None
            start, frames = split_message(reply[2])
            self._on_message(self._keys.channel_name(reply[1]), start, frames)
        elif kind == "subscribe" or kind == "ssubscribe":
            waiters = self._waiters.get(self._keys.channel_name(reply[1]))
            if waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == "sunsubscribe" and self._keys.channel_name(reply[1]) in self._channels:
            # The channel's slot moved to another shard, which unsubscribed the link: open
            # the links anew on the new slot map.
            raise RedisConnectionError(f"the slot of {reply[1]} moved")

    def _set_available(self, available: bool) -> None:
        if available != self._available:
            self._available = available
            if available:
                log.info("redis pub/sub link up", extra={"redis": self._url})
            if self._on_status is not None:
                self._on_status(available)
