"""The Redis engine: a :class:`RedisBus` that also keeps the pool's records in Redis.

Besides the bus (:mod:`wspool.state.redis_bus`) it implements every store interface of
:mod:`wspool.state.engine`: connection records, used tickets and tombstones; the node
registry; limits per client address; and what gateway replicas share. Commands go through
the bus's command client, pipelined (one round trip per batch); on one server, what a
connection opened costs the store (its record, its address's limits, its ticket) goes on
the bus's own link instead.

Connection records, the client session sets and presence (a hash per channel and node, of
connection id → client id, and a set per node of its channels) expire ``session_ttl`` seconds
after their last write; the node's state writer rewrites live ones well before that, so only records
nobody owns any more (a farm that died whole, with nobody to sweep it) go away by themselves.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import ScriptTextT

from wspool.core.history import HistoryPolicy
from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord, NodeHealth, NodeInfo
from wspool.state.engine import EngineUnavailableError
from wspool.state.redis_bus import RedisBus
from wspool.state.redis_client import fields, ms, run
from wspool.state.redis_links import Command
from wspool.state.redis_writes import WRITE_KEYS, KeyWrites, Write, pairs

__all__ = ["RedisEngine"]

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


# Fields of a record that exists; never a partial record (without ids, without expiry).
_UPDATE_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], unpack(ARGV))
end
"""


class RedisEngine(RedisBus):
    """Implements every interface of :mod:`wspool.state.engine` on Redis: one server, a
    Redis Cluster or Sentinel's primary."""

    def __init__(
        self,
        url: str,
        keys: Keys | None = None,
        history: HistoryPolicy | None = None,
        session_ttl: float = 3600.0,
    ) -> None:
        super().__init__(url, keys, history)
        self._session_ttl_ms = int(session_ttl * 1000)
        self._acquire_slot = self._redis.register_script(_ACQUIRE_SLOT)
        self._record_attempt = self._redis.register_script(_RECORD_ATTEMPT)
        self._update_record = self._redis.register_script(_UPDATE_RECORD)
        self._write_keys = self._redis.register_script(WRITE_KEYS)
        # Members of the per-address attempt sets: unique across nodes without a random
        # draw per connection (a random prefix per engine, then a count).
        self._attempt_prefix = uuid.uuid4().hex[:12]
        self._attempt_count = itertools.count(1)

    # connections -----------------------------------------------------------------------

    async def save_connections(self, records: Sequence[ConnectionRecord]) -> None:
        writes = KeyWrites(self._session_ttl_ms)
        for record in records:
            writes.add(Write.HASH, self._keys.conn(record.id), pairs(record.to_hash().items()))
        for key, ids in self._index_sets(records).items():  # one SADD per set, however many join
            writes.add(Write.SET_ADD, key, ids)
        await self._write(writes)

    async def update_connections(self, records: Sequence[ConnectionRecord]) -> None:
        writes = KeyWrites(self._session_ttl_ms)
        for record in records:
            changed = [
                *("channels", json.dumps(list(record.channels))),
                *("lastActivity", repr(record.last_activity)),
            ]
            writes.add(Write.HASH_IF_EXISTS, self._keys.conn(record.id), changed)
        await self._write(writes)

    async def remove_connections(self, records: Sequence[ConnectionRecord]) -> None:
        writes = KeyWrites(self._session_ttl_ms)
        for record in records:
            writes.add(Write.DELETE, self._keys.conn(record.id))
        for key, ids in self._index_sets(records).items():
            writes.add(Write.SET_REMOVE, key, ids)
        await self._write(writes)

    def _index_sets(self, records: Sequence[ConnectionRecord]) -> dict[str, list[str]]:
        """The index sets of ``records`` (their node's, their client's), each with the ids of
        those of ``records`` it holds."""
        sets: dict[str, list[str]] = {}
        for record in records:
            sets.setdefault(self._keys.server_connections(record.server_id), []).append(record.id)
            sets.setdefault(self._keys.client_sessions(record.client_id), []).append(record.id)
        return sets

    async def _write(self, writes: KeyWrites) -> list[int]:
        """Apply ``writes``: one script call on one server, a pipeline on a cluster. The
        length left of each hash a :attr:`Write.HASH_REMOVE` wrote to, in order."""
        if not writes:
            return []
        if not self._keys.sharded:
            reply = await self._on_link(writes.command(self._write_keys.sha), WRITE_KEYS)
            return [int(n) for n in reply]
        for _ in range(2):  # a second pass only if Redis had no script for a record update
            async with self._redis.pipeline(transaction=False) as pipe:
                lengths_at = writes.queue(pipe, self._update_record.sha)
                results = await run(pipe.execute(raise_on_error=False))
            errors = [r for r in results if isinstance(r, Exception)]
            if not errors:
                return [int(results[at]) for at in lengths_at]
            if not all(isinstance(e, NoScriptError) for e in errors):
                raise EngineUnavailableError(str(errors[0]))
            # A restarted primary (or a replica promoted in its place) lacks the script;
            # the batch's other writes are written again alike.
            await run(self._redis.script_load(_UPDATE_RECORD))
        raise EngineUnavailableError("Redis refuses the record update script")

    async def _on_link(self, command: Command, script: ScriptTextT = "") -> Any:
        """The reply of ``command``, sent on the bus's own link to one server (or Sentinel's
        primary) rather than through redis-py's client, whose per-call machinery made a call
        cost the node nearly twice as much (docs/benchmarks.md). ``script``: the source of the
        script an ``EVALSHA`` calls, loaded if Redis lacks it (a restarted primary)."""
        assert self._single is not None
        for _ in range(2):
            [reply] = await run(self._single.pipeline([command]))
            if isinstance(reply, NoScriptError) and script:
                await run(self._redis.script_load(script))
            elif isinstance(reply, Exception):
                raise EngineUnavailableError(str(reply))
            else:
                return reply
        raise EngineUnavailableError("Redis refuses a script of the engine")

    async def _script(self, script: AsyncScript, key: str, args: Sequence[str | int]) -> Any:
        """Run ``script`` on ``key``: on the bus's own link on one server, through the client
        on a cluster (which routes it to the key's shard)."""
        if self._keys.sharded:
            return await run(script(keys=[key], args=args))
        return await self._on_link(("EVALSHA", script.sha, 1, key, *args), script.script)

    async def _command(self, *command: str | int) -> Any:
        """The reply of a command on one key: on the bus's own link on one server, through
        the client on a cluster (which routes it to the key's shard)."""
        if self._keys.sharded:
            return await run(self._redis.execute_command(*command))
        return await self._on_link(command)

    async def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        data = await run(self._redis.hgetall(self._keys.conn(connection_id)))
        return ConnectionRecord.from_hash(data) if data else None

    async def use_ticket(self, ticket_id: str, ttl: float) -> bool:
        key = self._keys.used_ticket(ticket_id)
        return bool(await self._command("SET", key, "1", "NX", "PX", ms(ttl)))

    async def mark_closed(self, connection_id: str, ttl: float) -> None:
        key = self._keys.closed_connection(connection_id)
        await run(self._redis.set(key, "1", px=ms(ttl)))

    async def closed_connections(self, connection_ids: Collection[str]) -> set[str]:
        ids = list(connection_ids)
        if not ids:
            return set()
        keys = [self._keys.closed_connection(c) for c in ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:  # one EXISTS per key: a cluster cannot take them in one call
                pipe.exists(key)
            found = await run(pipe.execute())
        return {c for c, exists in zip(ids, found, strict=True) if exists}

    async def client_connections(self, client_id: str) -> list[ConnectionRecord]:
        ids = sorted(await run(self._redis.smembers(self._keys.client_sessions(client_id))))
        async with self._redis.pipeline(transaction=False) as pipe:
            for connection_id in ids:
                pipe.hgetall(self._keys.conn(connection_id))
            hashes: list[dict[str, str]] = await run(pipe.execute())
        return [ConnectionRecord.from_hash(h) for h in hashes if h]

    # presence --------------------------------------------------------------------------

    async def update_presence(
        self,
        server_id: str,
        joined: Mapping[str, Mapping[str, str]],
        left: Mapping[str, Collection[str]],
    ) -> None:
        keys, writes = self._keys, KeyWrites(self._session_ttl_ms)
        for channel, members in joined.items():
            writes.add(Write.HASH, keys.presence(channel, server_id), pairs(members.items()))
        writes.add(Write.SET_ADD, keys.server_channels(server_id), list(joined))
        channels = [c for c, members in left.items() if members]
        for channel in channels:
            writes.add(Write.HASH_REMOVE, keys.presence(channel, server_id), list(left[channel]))
        sizes = await self._write(writes)
        # Only this node writes its presence, one batch at a time: a channel found empty
        # stays empty until its next batch.
        emptied = [c for c, size in zip(channels, sizes, strict=True) if size == 0]
        if emptied:
            await run(self._redis.srem(keys.server_channels(server_id), *emptied))

    async def presence(self, channel: str, server_ids: Collection[str]) -> dict[str, str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for server_id in server_ids:
                pipe.hgetall(self._keys.presence(channel, server_id))
            hashes: list[dict[str, str]] = await run(pipe.execute())
        return {c: client for members in hashes for c, client in members.items()}

    async def channel_counts(self, server_ids: Collection[str]) -> dict[str, int]:
        servers = list(server_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for server_id in servers:
                pipe.smembers(self._keys.server_channels(server_id))
            channel_sets: list[set[str]] = await run(pipe.execute())
        pairs = [
            (c, s) for s, channels in zip(servers, channel_sets, strict=True) for c in channels
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, server_id in pairs:
                pipe.hlen(self._keys.presence(channel, server_id))
            sizes: list[int] = await run(pipe.execute())
        counts: dict[str, int] = {}
        for (channel, _), size in zip(pairs, sizes, strict=True):
            if size:
                counts[channel] = counts.get(channel, 0) + size
        return counts

    # node registry ---------------------------------------------------------------------

    async def register_node(self, node: NodeInfo, ttl: float) -> bool:
        now = time.time()
        keys = self._keys
        # The info hash, then the registry entry: a reader that finds the entry first
        # skips the node until its hash is there. (No transaction: on a cluster the two
        # keys live in different slots.)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.server_info(node.id), mapping=fields(node.with_heartbeat(now).to_hash()))
            pipe.pexpire(keys.server_info(node.id), int(ttl * 1000))
            pipe.zadd(keys.registry, {node.id: now + ttl})
            results = await run(pipe.execute())
        added: int = results[-1]
        return added == 1

    async def list_nodes(self) -> list[NodeInfo]:
        ids: list[str] = await run(
            self._redis.zrangebyscore(self._keys.registry, f"({time.time()}", "+inf")
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(self._keys.server_info(node_id))
            hashes: list[dict[str, str]] = await run(pipe.execute())
        return sorted((NodeInfo.from_hash(h) for h in hashes if h), key=lambda n: n.id)

    async def purge_node(self, server_id: str) -> int:
        keys = self._keys
        members = await run(self._redis.smembers(keys.server_connections(server_id)))
        ids: list[str] = sorted(members)
        channels = await run(self._redis.smembers(keys.server_channels(server_id)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for connection_id in ids:
                pipe.hget(keys.conn(connection_id), "clientId")
            client_ids: list[str | None] = await run(pipe.execute())
        async with self._redis.pipeline(transaction=False) as pipe:
            for connection_id, client_id in zip(ids, client_ids, strict=True):
                pipe.delete(keys.conn(connection_id))
                if client_id is not None:
                    pipe.srem(keys.client_sessions(client_id), connection_id)
            for channel in channels:
                pipe.delete(keys.presence(channel, server_id))
            for key in (
                keys.server_connections(server_id),
                keys.server_channels(server_id),
                keys.server_info(server_id),
                keys.server_health(server_id),
            ):
                pipe.delete(key)  # one key each: on a cluster they live in different slots
            pipe.zrem(keys.registry, server_id)
            await run(pipe.execute())
        return len(ids)

    async def sweep_dead_nodes(self) -> list[str]:
        dead: list[str] = await run(
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
        args: list[str | int] = [repr(now), repr(now + ttl), limit, connection_id, ms(ttl)]
        key = self._keys.address_connections(address)
        return bool(await self._script(self._acquire_slot, key, args))

    async def release_address_slot(self, address: str, connection_id: str) -> None:
        await self._command("ZREM", self._keys.address_connections(address), connection_id)

    async def refresh_address_slots(self, slots: Mapping[str, Collection[str]], ttl: float) -> None:
        lapses = time.time() + ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for address, connection_ids in slots.items():
                if connection_ids:
                    key = self._keys.address_connections(address)
                    pipe.zadd(key, dict.fromkeys(connection_ids, lapses))
                    pipe.pexpire(key, ms(ttl))
            await run(pipe.execute())

    async def record_attempt(self, address: str, limit: int, window: float) -> bool:
        now = time.time()
        member = f"{now!r}:{self._attempt_prefix}.{next(self._attempt_count)}"
        args: list[str | int] = [repr(now), repr(window), limit, member, ms(window)]
        key = self._keys.address_attempts(address)
        return bool(await self._script(self._record_attempt, key, args))

    # gateways ----------------------------------------------------------------------------

    async def save_node_health(self, health: NodeHealth, ttl: float) -> None:
        key = self._keys.server_health(health.server_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields(health.to_hash()))
            pipe.pexpire(key, int(ttl * 1000))
            await run(pipe.execute())

    async def get_node_health(self, server_id: str) -> NodeHealth | None:
        data = await run(self._redis.hgetall(self._keys.server_health(server_id)))
        return NodeHealth.from_hash(data) if data else None

    async def get_pool_config(self) -> dict[str, Any] | None:
        text = await run(self._redis.get(self._keys.pool_config))
        if text is None:
            return None
        document: dict[str, Any] = json.loads(text)
        return document

    async def set_pool_config(self, document: dict[str, Any]) -> None:
        await run(self._redis.set(self._keys.pool_config, json.dumps(document)))

    async def register_gateway(self, gateway_id: str, ttl: float) -> int:
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.gateways, {gateway_id: now + ttl})
            pipe.zremrangebyscore(self._keys.gateways, "-inf", now)
            pipe.zcard(self._keys.gateways)
            results = await run(pipe.execute())
        count: int = results[-1]
        return count

    async def deregister_gateway(self, gateway_id: str) -> None:
        await run(self._redis.zrem(self._keys.gateways, gateway_id))
