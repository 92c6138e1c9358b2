"""What the contract suites share: both engines on one store, and a look inside that store.

Each suite takes ``make_engine``, which hands out several engines sharing one store (one
Redis, cluster or Sentinel-watched primary under a fresh key prefix, or one in-memory
broker), as several nodes do, and
``peek``, which reads what no interface returns (the index sets and live address slots) the
way each engine keeps it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, cast

from tests.support.waiting import eventually
from wspool.core.history import HistoryPolicy, StreamPosition
from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord
from wspool.core.redisurl import parse_redis_url
from wspool.state.memory import MemoryBroker, MemoryEngine
from wspool.state.redis_client import Client, close, connect
from wspool.state.redis_engine import RedisEngine

__all__ = [
    "HISTORY",
    "Inbox",
    "MakeEngine",
    "Peek",
    "engines_on",
    "frame",
    "has",
    "offsets_of",
    "payloads_of",
    "record",
]

HISTORY = HistoryPolicy(size=200, ttl=30)

Engine = RedisEngine | MemoryEngine


@dataclass
class Inbox:
    """What an engine delivered, per channel."""

    frames: dict[str, list[str]] = field(default_factory=dict)
    starts: dict[str, list[StreamPosition]] = field(default_factory=dict)
    statuses: list[bool] = field(default_factory=list)

    def on_message(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        self.frames.setdefault(channel, []).extend(frames)
        self.starts.setdefault(channel, []).append(start)

    def on_status(self, available: bool) -> None:
        self.statuses.append(available)


class MakeEngine(Protocol):
    """A new engine on the shared store, started (its bus link up) unless told not to."""

    def __call__(self, *, start: bool = True) -> Awaitable[tuple[Engine, Inbox]]: ...


class Peek(Protocol):
    """The store's own view of what the engines wrote."""

    async def server_connections(self, server_id: str) -> set[str]: ...

    async def client_sessions(self, client_id: str) -> set[str]: ...

    async def address_connection_count(self, address: str) -> int:
        """Slots counted against ``address`` that have not lapsed."""
        ...


@dataclass
class _RedisPeek:
    redis: Client
    keys: Keys

    async def server_connections(self, server_id: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(self.keys.server_connections(server_id)))

    async def client_sessions(self, client_id: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(self.keys.client_sessions(client_id)))

    async def address_connection_count(self, address: str) -> int:
        key = self.keys.address_connections(address)
        return int(await self.redis.zcount(key, f"({time.time()}", "+inf"))


@dataclass
class _MemoryPeek:
    broker: MemoryBroker

    async def server_connections(self, server_id: str) -> set[str]:
        return set(self.broker.server_sets.get(server_id, ()))

    async def client_sessions(self, client_id: str) -> set[str]:
        return set(self.broker.client_sets.get(client_id, ()))

    async def address_connection_count(self, address: str) -> int:
        now = self.broker.clock()
        return sum(
            1 for lapses in self.broker.address_slots.get(address, {}).values() if lapses > now
        )


@asynccontextmanager
async def engines_on(redis_url: str, prefix: str) -> AsyncIterator[tuple[MakeEngine, Peek]]:
    """Redis engines on ``redis_url`` (in-memory ones without it), one store; closed on exit."""
    engines: list[Engine] = []
    broker = MemoryBroker(history_policy=HISTORY)
    keys = Keys(prefix)
    redis = connect(parse_redis_url(redis_url), socket_timeout=5.0) if redis_url else None
    peek: Peek = _RedisPeek(redis, keys) if redis is not None else _MemoryPeek(broker)

    async def make(*, start: bool = True) -> tuple[Engine, Inbox]:
        engine: Engine = RedisEngine(redis_url, keys, HISTORY) if redis_url else broker.engine()
        engines.append(engine)
        inbox = Inbox()
        if start:
            await engine.start(inbox.on_message, inbox.on_status)

            async def available() -> bool:
                return engine.available

            await eventually(available, message="engine available")
        return engine, inbox

    try:
        yield make, peek
    finally:
        for engine in engines:
            await engine.close()
        if redis is not None:
            await close(redis)


def record(connection_id: str, server: str = "s1", client: str = "u1") -> ConnectionRecord:
    return ConnectionRecord(connection_id, server, client, ("a",), 1.0, 2.0)


def frame(n: int) -> str:
    return json.dumps({"type": "data", "payload": n}, separators=(",", ":"))


def payloads_of(frames: list[str]) -> list[int]:
    return [json.loads(frame)["payload"] for frame in frames]


def offsets_of(frames: list[str]) -> list[StreamPosition]:
    return [StreamPosition.parse(json.loads(frame)["offset"]) for frame in frames]


def has(inbox: Inbox, channel: str, payloads: list[int]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return payloads_of(inbox.frames.get(channel, [])) == payloads

    return probe
