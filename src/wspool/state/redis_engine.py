"""The Redis engine: connection state, node registry and cross-node pub/sub in Redis.

Commands go through one client (pipelined, one round trip per batch). Pub/sub uses one
dedicated connection per process, read by a single task with a blocking ``get_message``;
when Redis goes away the task reports it, reconnects with backoff and resubscribes every
channel the node still needs; it reports the link up only once Redis has confirmed them all,
so the node can then read from each channel's history what the link missed.

Frames published together on one channel go through one call of the history script
(:mod:`wspool.state.redis_history`), which numbers, stores and publishes them as one Redis
message, so a burst costs one script call per channel.

Connection records and the client session sets expire ``session_ttl`` seconds after their
last write; the node's state writer rewrites live ones well before that, so only records
nobody owns any more (a farm that died whole, with nobody to sweep it) go away by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.typing import EncodableT, FieldT

from wspool.core.backoff import Backoff
from wspool.core.history import HistoryPolicy, HistoryRead, StreamPosition
from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord, NodeHealth, NodeInfo
from wspool.state.engine import (
    EngineUnavailableError,
    MessageHandler,
    OutcomeUnknownError,
    StatusHandler,
)
from wspool.state.redis_history import (
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    publish_args,
    read_args,
    read_result,
    split_message,
)
from wspool.tasks import cancel_and_wait

__all__ = ["RedisEngine"]

log = logging.getLogger(__name__)

_LINK_CHANNEL = ""
"""Channel names are never empty, so this one can mark the link without clashing."""

LINK_PING_INTERVAL = 1.0
"""Seconds of silence on the pub/sub link after which the reader pings Redis."""

LINK_TIMEOUT = 3.0
"""Seconds of silence (pings unanswered) after which the link counts as lost."""

SUBSCRIBE_TIMEOUT = 5.0
"""Seconds to wait for Redis to confirm a SUBSCRIBE before reporting the bus unavailable."""


def _client(url: str, socket_timeout: float | None) -> aioredis.Redis:
    # No retries inside redis-py: a failure surfaces at once as EngineUnavailableError and
    # the caller's own loop (state writer, publisher, pub/sub reader) decides when to retry,
    # waiting as wspool.core.backoff says.
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )
    return client


# Check-and-count in one step, on one key (so it works on Redis Cluster too).
_ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) and
        redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

_RECORD_ATTEMPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _fields(mapping: dict[str, str]) -> dict[FieldT, EncodableT]:
    return dict(mapping.items())


class RedisEngine:
    """Implements ``StateEngine`` on a single Redis server (or a Redis Cluster endpoint)."""

    def __init__(
        self,
        url: str,
        keys: Keys | None = None,
        history: HistoryPolicy | None = None,
        session_ttl: float = 3600.0,
    ) -> None:
        self._url = url
        self._keys = keys or Keys()
        self._history = history or HistoryPolicy()
        self._session_ttl_ms = int(session_ttl * 1000)
        # Commands fail fast during an outage (callers keep their own retry state); the
        # pub/sub link has no read timeout because it blocks until a message arrives.
        self._redis = _client(url, socket_timeout=5.0)
        self._pubsub_redis = _client(url, socket_timeout=None)
        self._channels: set[str] = set()
        self._waiters: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_status: StatusHandler | None = None
        self._available = False
        self._publish_sha = ""
        self._read_sha = ""
        self._acquire_slot = self._redis.register_script(_ACQUIRE_SLOT)
        self._record_attempt = self._redis.register_script(_RECORD_ATTEMPT)

    @property
    def available(self) -> bool:
        return self._available

    async def start(self, on_message: MessageHandler, on_status: StatusHandler) -> None:
        self._on_message = on_message
        self._on_status = on_status
        self._reader = asyncio.create_task(self._read_forever(), name="redis-pubsub-reader")

    async def close(self) -> None:
        await cancel_and_wait(self._reader)
        self._reader = None
        await self._redis.aclose()
        await self._pubsub_redis.aclose()

    # pub/sub ---------------------------------------------------------------------------

    async def publish(self, batches: Mapping[str, Sequence[str]], batch_id: str = "") -> None:
        pending = dict(batches)
        for _ in range(2):  # a second pass only after Redis forgot the script (restart)
            if not self._publish_sha:
                await self._load_scripts()
            channels = list(pending)
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel in channels:
                    keys = (
                        self._keys.history(channel),
                        self._keys.history_meta(channel),
                        self._keys.history_batch(channel, batch_id or "-"),
                    )
                    args = publish_args(
                        self._keys.channel(channel),
                        self._history.for_channel(channel),
                        list(pending[channel]),
                        marked=bool(batch_id),
                    )
                    pipe.evalsha(self._publish_sha, 3, *keys, *args)
                try:
                    results = await self._run(pipe.execute(raise_on_error=False))
                except EngineUnavailableError as error:
                    # Sent, perhaps run, never answered (Redis frozen, link cut mid-request).
                    raise OutcomeUnknownError(str(error)) from error.__cause__
            # NOSCRIPT means the script did not run, so publishing that channel again is safe.
            pending = {
                c: pending[c]
                for c, r in zip(channels, results, strict=True)
                if isinstance(r, NoScriptError)
            }
            errors = [r for r in results if isinstance(r, Exception)]
            if not pending:
                if errors:
                    raise EngineUnavailableError(str(errors[0]))
                return
            self._publish_sha = ""
        raise EngineUnavailableError("Redis refuses the publish script")

    async def read_history(self, channel: str, since: StreamPosition | None) -> HistoryRead:
        keys = (self._keys.history(channel), self._keys.history_meta(channel))
        args = read_args(self._history, since)
        if not self._read_sha:
            await self._load_scripts()
        try:
            raw = await self._run(self._redis.evalsha(self._read_sha, 2, *keys, *args))
        except EngineUnavailableError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
            await self._load_scripts()
            raw = await self._run(self._redis.evalsha(self._read_sha, 2, *keys, *args))
        return read_result(raw, since)

    async def _load_scripts(self) -> None:
        self._publish_sha = await self._run(self._redis.script_load(PUBLISH_SCRIPT))
        self._read_sha = await self._run(self._redis.script_load(READ_SCRIPT))

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            raise EngineUnavailableError("pub/sub link to Redis is down")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[channel].append(waiter)
        try:
            await self._run(pubsub.subscribe(self._keys.channel(channel)))
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

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            # A failure here is harmless: a stray subscription only delivers frames that the
            # node drops, and it ends with the link.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(self._keys.channel(channel))

    async def _read_forever(self) -> None:
        backoff = Backoff(base=0.1, cap=2.0)
        while True:
            pubsub = self._pubsub_redis.pubsub()
            try:
                # Every channel the node needs, then a placeholder: Redis confirms in order,
                # so the placeholder's confirmation says the link is up *and* every channel
                # is subscribed again (the node then reads what it missed from history).
                # The link's socket has no read timeout, so bound its setup here.
                wanted = [self._keys.channel(c) for c in sorted(self._channels)]
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                    await pubsub.subscribe(*wanted, self._keys.channel(_LINK_CHANNEL))
                self._pubsub = pubsub
                backoff.reset()
                await self._read(pubsub)
            except (RedisError, OSError) as error:
                self._pubsub = None
                self._set_available(False)
                if not backoff.failures:
                    log.warning("redis pub/sub link lost: %s", error, extra={"redis": self._url})
                for waiters in self._waiters.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(EngineUnavailableError(str(error)))
                await asyncio.sleep(backoff.next_delay())
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        assert self._on_message is not None
        on_message = self._on_message
        keys = self._keys
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=LINK_PING_INTERVAL)
            if message is None:
                # A quiet link may be a dead one: a partition drops packets without closing
                # the socket, and a blocking read would wait for TCP keepalive (hours).
                silent = loop.time() - heard
                if silent >= LINK_TIMEOUT:
                    raise ConnectionError(f"no answer from Redis for {silent:.1f}s")
                await pubsub.ping()
                continue
            heard = loop.time()
            kind = message["type"]
            if kind == "message":
                start, frames = split_message(message["data"])
                on_message(keys.channel_name(message["channel"]), start, frames)
            elif kind == "subscribe":
                channel = keys.channel_name(message["channel"])
                if channel == _LINK_CHANNEL:
                    self._set_available(True)
                waiters = self._waiters.get(channel)
                if waiters:
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(None)

    def _set_available(self, available: bool) -> None:
        if available != self._available:
            self._available = available
            if available:
                log.info("redis pub/sub link up", extra={"redis": self._url})
            if self._on_status is not None:
                self._on_status(available)

    # connections -----------------------------------------------------------------------

    async def save_connections(self, records: Sequence[ConnectionRecord]) -> None:
        keys = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            ttl = self._session_ttl_ms
            for record in records:
                pipe.hset(keys.conn(record.id), mapping=_fields(record.to_hash()))
                pipe.pexpire(keys.conn(record.id), ttl)
                pipe.sadd(keys.server_connections(record.server_id), record.id)
                pipe.pexpire(keys.server_connections(record.server_id), ttl)
                pipe.sadd(keys.client_sessions(record.client_id), record.id)
                pipe.pexpire(keys.client_sessions(record.client_id), ttl)
            await self._run(pipe.execute())

    async def remove_connections(self, records: Sequence[ConnectionRecord]) -> None:
        keys = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.delete(keys.conn(record.id))
                pipe.srem(keys.server_connections(record.server_id), record.id)
                pipe.srem(keys.client_sessions(record.client_id), record.id)
            await self._run(pipe.execute())

    async def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        data = await self._run(self._redis.hgetall(self._keys.conn(connection_id)))
        return ConnectionRecord.from_hash(data) if data else None

    async def server_connections(self, server_id: str) -> set[str]:
        members: set[str] = await self._run(
            self._redis.smembers(self._keys.server_connections(server_id))
        )
        return members

    async def client_sessions(self, client_id: str) -> set[str]:
        members: set[str] = await self._run(
            self._redis.smembers(self._keys.client_sessions(client_id))
        )
        return members

    async def use_ticket(self, ticket_id: str, ttl: float) -> bool:
        key = self._keys.used_ticket(ticket_id)
        return bool(await self._run(self._redis.set(key, "1", nx=True, px=_ms(ttl))))

    async def mark_closed(self, connection_id: str, ttl: float) -> None:
        key = self._keys.closed_connection(connection_id)
        await self._run(self._redis.set(key, "1", px=_ms(ttl)))

    async def closed_connections(self, connection_ids: Collection[str]) -> set[str]:
        ids = list(connection_ids)
        if not ids:
            return set()
        keys = [self._keys.closed_connection(c) for c in ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:  # one EXISTS per key: a cluster cannot take them in one call
                pipe.exists(key)
            found = await self._run(pipe.execute())
        return {c for c, exists in zip(ids, found, strict=True) if exists}

    # node registry ---------------------------------------------------------------------

    async def register_node(self, node: NodeInfo, ttl: float) -> bool:
        now = time.time()
        keys = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.server_info(node.id), mapping=_fields(node.with_heartbeat(now).to_hash())
            )
            pipe.pexpire(keys.server_info(node.id), int(ttl * 1000))
            pipe.zadd(keys.registry, {node.id: now + ttl})
            results = await self._run(pipe.execute())
        added: int = results[-1]
        return added == 1

    async def list_nodes(self) -> list[NodeInfo]:
        ids: list[str] = await self._run(
            self._redis.zrangebyscore(self._keys.registry, f"({time.time()}", "+inf")
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self._keys.server_info(node_id))
            hashes: list[dict[str, str]] = await self._run(pipe.execute())
        return sorted((NodeInfo.from_hash(h) for h in hashes if h), key=lambda n: n.id)

    async def purge_node(self, server_id: str) -> int:
        keys = self._keys
        ids = sorted(await self.server_connections(server_id))
        async with self._redis.pipeline(transaction=False) as pipe:
            for connection_id in ids:
                pipe.hget(keys.conn(connection_id), "clientId")
            client_ids: list[str | None] = await self._run(pipe.execute())
        async with self._redis.pipeline(transaction=False) as pipe:
            for connection_id, client_id in zip(ids, client_ids, strict=True):
                pipe.delete(keys.conn(connection_id))
                if client_id is not None:
                    pipe.srem(keys.client_sessions(client_id), connection_id)
            pipe.delete(
                keys.server_connections(server_id),
                keys.server_info(server_id),
                keys.server_health(server_id),
            )
            pipe.zrem(keys.registry, server_id)
            await self._run(pipe.execute())
        return len(ids)

    async def sweep_dead_nodes(self) -> list[str]:
        dead: list[str] = await self._run(
            self._redis.zrangebyscore(self._keys.registry, "-inf", time.time())
        )
        # Several survivors may sweep the same node at once; every step is idempotent.
        for server_id in dead:
            await self.purge_node(server_id)
        return dead

    # limits per client address ------------------------------------------------------------

    async def acquire_address_slot(
        self, address: str, connection_id: str, limit: int, ttl: float
    ) -> bool:
        now = time.time()
        args: list[str | int] = [repr(now), repr(now + ttl), limit, connection_id, _ms(ttl)]
        key = self._keys.address_connections(address)
        return bool(await self._run(self._acquire_slot(keys=[key], args=args)))

    async def release_address_slot(self, address: str, connection_id: str) -> None:
        await self._run(self._redis.zrem(self._keys.address_connections(address), connection_id))

    async def refresh_address_slots(self, slots: Mapping[str, Collection[str]], ttl: float) -> None:
        lapses = time.time() + ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for address, connection_ids in slots.items():
                if connection_ids:
                    key = self._keys.address_connections(address)
                    pipe.zadd(key, dict.fromkeys(connection_ids, lapses))
                    pipe.pexpire(key, _ms(ttl))
            await self._run(pipe.execute())

    async def address_connection_count(self, address: str) -> int:
        key = self._keys.address_connections(address)
        return int(await self._run(self._redis.zcount(key, f"({time.time()}", "+inf")))

    async def record_attempt(self, address: str, limit: int, window: float) -> bool:
        now = time.time()
        member = f"{now!r}:{uuid.uuid4().hex[:8]}"
        args: list[str | int] = [repr(now), repr(window), limit, member, _ms(window)]
        key = self._keys.address_attempts(address)
        return bool(await self._run(self._record_attempt(keys=[key], args=args)))

    # gateways ----------------------------------------------------------------------------

    async def save_node_health(self, health: NodeHealth, ttl: float) -> None:
        key = self._keys.server_health(health.server_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_fields(health.to_hash()))
            pipe.pexpire(key, int(ttl * 1000))
            await self._run(pipe.execute())

    async def get_node_health(self, server_id: str) -> NodeHealth | None:
        data = await self._run(self._redis.hgetall(self._keys.server_health(server_id)))
        return NodeHealth.from_hash(data) if data else None

    async def get_pool_config(self) -> dict[str, Any] | None:
        text = await self._run(self._redis.get(self._keys.pool_config))
        if text is None:
            return None
        document: dict[str, Any] = json.loads(text)
        return document

    async def set_pool_config(self, document: dict[str, Any]) -> None:
        await self._run(self._redis.set(self._keys.pool_config, json.dumps(document)))

    async def register_gateway(self, gateway_id: str, ttl: float) -> int:
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.gateways, {gateway_id: now + ttl})
            pipe.zremrangebyscore(self._keys.gateways, "-inf", now)
            pipe.zcard(self._keys.gateways)
            results = await self._run(pipe.execute())
        count: int = results[-1]
        return count

    async def deregister_gateway(self, gateway_id: str) -> None:
        await self._run(self._redis.zrem(self._keys.gateways, gateway_id))

    @staticmethod
    async def _run(awaitable: Any) -> Any:
        # redis-py can swallow a cancellation while it drops a connection (returning, or
        # raising a connection error); a cancelled caller must see CancelledError, or its
        # loop goes on and whoever awaits the cancellation waits forever.
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            result = await awaitable
        except (RedisError, OSError) as error:
            if task is not None and task.cancelling() > cancelling:
                raise asyncio.CancelledError from error
            raise EngineUnavailableError(str(error)) from error
        if task is not None and task.cancelling() > cancelling:
            raise asyncio.CancelledError
        return result
