"""Reading what the nodes wrote to Redis, with plain types, for assertions."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis

__all__ = ["Store"]


class Store:
    """A decoded-string view of one Redis database."""

    def __init__(self, url: str) -> None:
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)

    async def close(self) -> None:
        await self.redis.aclose()

    async def hgetall(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(key))

    async def hget(self, key: str, field: str) -> str | None:
        return cast(str | None, await self.redis.hget(key, field))

    async def smembers(self, key: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(key))

    async def exists(self, *keys: str) -> int:
        return int(await self.redis.exists(*keys))

    async def keys(self, pattern: str = "*") -> list[str]:
        return sorted(cast(list[str], await self.redis.keys(pattern)))

    async def command_calls(self, command: str) -> int:
        stats: dict[str, Any] = await self.redis.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    async def reset_stats(self) -> None:
        await self.redis.config_resetstat()
