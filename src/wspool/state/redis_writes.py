"""Batches of writes to many small keys (connection records and their index sets), sent in
one call on one Redis server.

A node writes a record per connection opened and rewrites it when its channels change:
a hash and its expiry, plus the connection's id in two index sets and theirs. Sent as
Redis commands, that is four commands per connection, and on the client most of a
command's cost is packing it and reading its reply, not Redis running it. On one server
(or Sentinel's primary) a batch is therefore one call of a script that applies every write
in order, whatever its size, sent on the bus's own link (:mod:`wspool.state.redis_links`)
rather than through redis-py's client, whose per-call machinery and argument packing cost
a node about as much as the rest of the write. On a Redis Cluster a batch's keys live in
different slots, which one script call cannot touch, so there each write is its own
command in a pipeline, as before; the writes are described once and either way applies
them alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline

from wspool.state.redis_links import Command

__all__ = ["WRITE_KEYS", "KeyWrites", "Write", "pairs"]


class Write(StrEnum):
    """What is done to one key."""

    HASH = "hset"
    """Set fields of a hash, then its expiry."""
    HASH_IF_EXISTS = "hupdate"
    """Set fields of a hash that exists (never a partial one without its other fields)."""
    SET_ADD = "sadd"
    """Add members to a set, then its expiry."""
    SET_REMOVE = "srem"
    """Remove members from a set."""
    HASH_REMOVE = "hdel"
    """Remove fields of a hash; the batch answers with how many it has left."""
    DELETE = "del"
    """Delete the key."""


WRITE_KEYS = """
local ttl, at, left = ARGV[1], 2, {}
for _, key in ipairs(KEYS) do
    local op, n = ARGV[at], tonumber(ARGV[at + 1])
    local first, last = at + 2, at + 1 + n
    if op == 'hset' then
        redis.call('HSET', key, unpack(ARGV, first, last))
        redis.call('PEXPIRE', key, ttl)
    elseif op == 'hupdate' then
        if redis.call('EXISTS', key) == 1 then
            redis.call('HSET', key, unpack(ARGV, first, last))
        end
    elseif op == 'sadd' then
        redis.call('SADD', key, unpack(ARGV, first, last))
        redis.call('PEXPIRE', key, ttl)
    elseif op == 'srem' then
        redis.call('SREM', key, unpack(ARGV, first, last))
    elseif op == 'hdel' then
        redis.call('HDEL', key, unpack(ARGV, first, last))
        left[#left + 1] = redis.call('HLEN', key)
    elseif op == 'del' then
        redis.call('DEL', key)
    end
    at = last + 1
end
return left
"""
"""Applies a batch of :class:`Write` in order: KEYS are the keys, ARGV the expiry in ms,
then for each key its operation, the number of values and the values (field and value
pairs of a hash, members of a set or fields to remove). Answers with the length left of
each hash a :attr:`Write.HASH_REMOVE` wrote to, in order."""


@dataclass
class KeyWrites:
    """Writes to send together, in the order they were added."""

    ttl_ms: int
    writes: list[tuple[Write, str, Sequence[str]]] = field(default_factory=list)

    def add(self, op: Write, key: str, values: Sequence[str] = ()) -> None:
        if values or op is Write.DELETE:  # (SADD, SREM and HSET take at least one value)
            self.writes.append((op, key, values))

    def __bool__(self) -> bool:
        return bool(self.writes)

    def command(self, sha: str) -> Command:
        """The ``EVALSHA`` that applies them in one call of :data:`WRITE_KEYS` (whose sha
        is ``sha``): one server only. It answers with the length left of each hash a
        :attr:`Write.HASH_REMOVE` wrote to, in order."""
        keys = [key for _, key, _ in self.writes]
        args: list[str | int] = [self.ttl_ms]
        for op, _, values in self.writes:
            args += (op.value, len(values), *values)
        return ("EVALSHA", sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline | ClusterPipeline, update_sha: str) -> list[int]:
        """Queue them as commands of ``pipe``, a key each (a cluster's pipeline);
        ``update_sha`` is that of a script doing :attr:`Write.HASH_IF_EXISTS`. Where in the
        pipeline's results the length left of each hash a :attr:`Write.HASH_REMOVE` wrote
        to will be, in order (what the call of :meth:`command` answers)."""
        lengths_at: list[int] = []
        for op, key, values in self.writes:
            match op:
                case Write.HASH:
                    pipe.hset(key, items=list(values))
                    pipe.pexpire(key, self.ttl_ms)
                case Write.HASH_IF_EXISTS:
                    # (execute_command: a cluster pipeline refuses evalsha() by name)
                    pipe.execute_command("EVALSHA", update_sha, 1, key, *values)
                case Write.SET_ADD:
                    pipe.sadd(key, *values)
                    pipe.pexpire(key, self.ttl_ms)
                case Write.SET_REMOVE:
                    pipe.srem(key, *values)
                case Write.HASH_REMOVE:
                    pipe.hdel(key, *values)
                    lengths_at.append(len(pipe))
                    pipe.hlen(key)
                case Write.DELETE:
                    pipe.delete(key)
        return lengths_at


def pairs(mapping: Iterable[tuple[str, str]]) -> list[str]:
    """A hash's fields and values, one after the other, as HSET takes them."""
    return [item for pair in mapping for item in pair]
