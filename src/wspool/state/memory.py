"""The in-memory engine: the whole pool's state inside one process, for ``wspool dev``.

A :class:`MemoryBroker` plays the part of Redis; each node gets its own
:class:`MemoryEngine` view of it. Pub/sub delivery is scheduled on the event loop rather
than called inline, so a publisher never re-enters a subscriber, as with a real broker.
Channel history follows the Redis engine's rules (offsets, epochs, size and age bounds,
the same spliced frames), trimmed exactly rather than approximately.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wspool.core.history import (
    HistoryPolicy,
    HistoryRead,
    StreamPosition,
    missing_after,
    with_offset,
)
from wspool.core.records import ConnectionRecord, NodeHealth, NodeInfo
from wspool.state.engine import MessageHandler, StatusHandler

__all__ = ["MemoryBroker", "MemoryEngine"]


@dataclass
class ChannelHistory:
    """One channel's epoch, last offset, and recent frames with their publish times."""

    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    top: int = 0
    frames: deque[tuple[float, str]] = field(default_factory=deque)

    def trim(self, policy: HistoryPolicy, now: float) -> None:
        while len(self.frames) > policy.size:
            self.frames.popleft()
        while self.frames and self.frames[0][0] <= now - policy.ttl:
            self.frames.popleft()


@dataclass
class MemoryBroker:
    """Shared store of every :class:`MemoryEngine` in the process."""

    clock: Callable[[], float] = time.time
    history_policy: HistoryPolicy = field(default_factory=HistoryPolicy)
    history: defaultdict[str, ChannelHistory] = field(
        default_factory=lambda: defaultdict(ChannelHistory)
    )
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    server_sets: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    client_sets: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    nodes: dict[str, tuple[NodeInfo, float]] = field(default_factory=dict)
    subscribers: defaultdict[str, set[MemoryEngine]] = field(
        default_factory=lambda: defaultdict(set)
    )
    address_slots: dict[str, dict[str, float]] = field(default_factory=dict)
    address_attempts: dict[str, list[float]] = field(default_factory=dict)
    health: dict[str, tuple[NodeHealth, float]] = field(default_factory=dict)
    presence: defaultdict[str, dict[str, dict[str, str]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    """Node → channel → connection id → client id."""
    pool_config: dict[str, Any] | None = None
    gateways: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    """Used tickets (``ticket:<id>``) and tombstones (``closed:<id>``), with when they lapse."""
    marks_swept_at: int = 1024

    def engine(self) -> MemoryEngine:
        return MemoryEngine(self)


class MemoryEngine:
    """One node's view of a :class:`MemoryBroker`; implements every interface of
    :mod:`wspool.state.engine`."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._on_message: MessageHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def available(self) -> bool:
        return self._on_message is not None

    async def start(self, on_message: MessageHandler, on_status: StatusHandler) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        on_status(True)

    async def close(self) -> None:
        for engines in self._broker.subscribers.values():
            engines.discard(self)
        self._on_message = None

    async def publish(
        self, batches: Mapping[str, Sequence[str]], batch_id: str = ""
    ) -> dict[str, StreamPosition]:
        # In one process a publish always has an outcome: there is nothing to send twice.
        broker = self._broker
        now = broker.clock()
        positions: dict[str, StreamPosition] = {}
        for channel, frames in batches.items():
            history = broker.history[channel]
            start = StreamPosition(history.epoch, history.top + 1)
            numbered = [
                with_offset(frame, f"{history.epoch}:{start.offset + i}")
                for i, frame in enumerate(frames)
            ]
            history.top += len(numbered)
            history.frames.extend((now, frame) for frame in numbered)
            history.trim(broker.history_policy.for_channel(channel), now)
            for engine in broker.subscribers.get(channel, ()):
                engine._deliver(channel, start, numbered)
            positions[channel] = StreamPosition(history.epoch, history.top)
        return positions

    async def read_history(self, channel: str, since: StreamPosition | None) -> HistoryRead:
        history = self._broker.history[channel]
        history.trim(self._broker.history_policy, self._broker.clock())
        top = StreamPosition(history.epoch, history.top)
        if since is None:
            return HistoryRead(top, [])
        wanted = missing_after(since, top)
        if wanted is None or wanted > len(history.frames):
            return HistoryRead(top, None)
        kept = history.frames
        return HistoryRead(top, [f for _, f in itertools.islice(kept, len(kept) - wanted, None)])

    async def read_recent(self, channel: str, count: int) -> HistoryRead:
        history = self._broker.history[channel]
        history.trim(self._broker.history_policy, self._broker.clock())
        kept = history.frames
        frames = [f for _, f in itertools.islice(kept, max(0, len(kept) - count), None)]
        return HistoryRead(StreamPosition(history.epoch, history.top), frames)

    def _deliver(self, channel: str, start: StreamPosition, frames: list[str]) -> None:
        if self._loop is not None and self._on_message is not None:
            self._loop.call_soon(self._on_message, channel, start, frames)

    async def subscribe(self, channel: str) -> None:
        self._broker.subscribers[channel].add(self)

    async def unsubscribe(self, channel: str) -> None:
        engines = self._broker.subscribers.get(channel)
        if engines is not None:
            engines.discard(self)
            if not engines:
                del self._broker.subscribers[channel]

    async def save_connections(self, records: Sequence[ConnectionRecord]) -> None:
        for record in records:
            self._broker.connections[record.id] = record
            self._broker.server_sets[record.server_id].add(record.id)
            self._broker.client_sets[record.client_id].add(record.id)

    async def update_connections(self, records: Sequence[ConnectionRecord]) -> None:
        connections = self._broker.connections
        for record in records:
            saved = connections.get(record.id)
            if saved is not None:
                connections[record.id] = replace(
                    saved, channels=record.channels, last_activity=record.last_activity
                )

    async def remove_connections(self, records: Sequence[ConnectionRecord]) -> None:
        for record in records:
            self._forget(record)

    def _forget(self, record: ConnectionRecord) -> None:
        self._broker.connections.pop(record.id, None)
        for sets, key in (
            (self._broker.server_sets, record.server_id),
            (self._broker.client_sets, record.client_id),
        ):
            members = sets.get(key)
            if members is not None:
                members.discard(record.id)
                if not members:  # as Redis does, an empty set does not exist
                    del sets[key]

    async def get_connection(self, connection_id: str) -> ConnectionRecord | None:
        return self._broker.connections.get(connection_id)

    def _marked(self, key: str) -> bool:
        lapses = self._broker.marks.get(key)
        if lapses is not None and lapses <= self._broker.clock():
            del self._broker.marks[key]
            return False
        return lapses is not None

    async def use_ticket(self, ticket_id: str, ttl: float) -> bool:
        key = f"ticket:{ticket_id}"
        if self._marked(key):
            return False
        marks, now = self._broker.marks, self._broker.clock()
        if len(marks) >= self._broker.marks_swept_at * 2:  # amortised: marks lapse, not leak
            for lapsed in [k for k, lapses in marks.items() if lapses <= now]:
                del marks[lapsed]
            self._broker.marks_swept_at = max(1024, len(marks))
        marks[key] = now + ttl
        return True

    async def mark_closed(self, connection_id: str, ttl: float) -> None:
        self._broker.marks[f"closed:{connection_id}"] = self._broker.clock() + ttl

    async def closed_connections(self, connection_ids: Collection[str]) -> set[str]:
        return {c for c in connection_ids if self._marked(f"closed:{c}")}

    async def register_node(self, node: NodeInfo, ttl: float) -> bool:
        now = self._broker.clock()
        new = node.id not in self._broker.nodes
        self._broker.nodes[node.id] = (replace(node, heartbeat_at=now), now + ttl)
        return new

    async def list_nodes(self) -> list[NodeInfo]:
        now = self._broker.clock()
        return sorted(
            (node for node, lapses in self._broker.nodes.values() if lapses > now),
            key=lambda node: node.id,
        )

    async def purge_node(self, server_id: str) -> int:
        self._broker.nodes.pop(server_id, None)
        self._broker.health.pop(server_id, None)
        self._broker.presence.pop(server_id, None)
        ids = self._broker.server_sets.pop(server_id, set())
        for connection_id in ids:
            record = self._broker.connections.get(connection_id)
            if record is not None:
                self._forget(record)
        return len(ids)

    async def sweep_dead_nodes(self) -> list[str]:
        now = self._broker.clock()
        dead = sorted(i for i, (_, lapses) in self._broker.nodes.items() if lapses <= now)
        for server_id in dead:
            await self.purge_node(server_id)
        return dead

    async def client_connections(self, client_id: str) -> list[ConnectionRecord]:
        ids = sorted(self._broker.client_sets.get(client_id, ()))
        return [self._broker.connections[c] for c in ids if c in self._broker.connections]

    async def update_presence(
        self,
        server_id: str,
        joined: Mapping[str, Mapping[str, str]],
        left: Mapping[str, Collection[str]],
    ) -> None:
        channels = self._broker.presence[server_id]
        for channel, members in joined.items():
            channels.setdefault(channel, {}).update(members)
        for channel, ids in left.items():
            members = channels.get(channel, {})
            for connection_id in ids:
                members.pop(connection_id, None)
            if not members:
                channels.pop(channel, None)

    async def presence(self, channel: str, server_ids: Collection[str]) -> dict[str, str]:
        presence = self._broker.presence
        return {
            c: client
            for server_id in server_ids
            for c, client in presence.get(server_id, {}).get(channel, {}).items()
        }

    async def channel_counts(self, server_ids: Collection[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for server_id in server_ids:
            for channel, members in self._broker.presence.get(server_id, {}).items():
                counts[channel] = counts.get(channel, 0) + len(members)
        return counts

    # limits per client address ---------------------------------------------------------

    def _live_slots(self, address: str) -> dict[str, float]:
        now = self._broker.clock()
        slots = self._broker.address_slots.get(address, {})
        for connection_id in [c for c, lapses in slots.items() if lapses <= now]:
            del slots[connection_id]
        return slots

    async def acquire_address_slot(
        self, address: str, connection_id: str, limit: int, ttl: float
    ) -> bool:
        slots = self._live_slots(address)
        if connection_id not in slots and len(slots) >= limit:
            return False
        self._broker.address_slots[address] = slots
        slots[connection_id] = self._broker.clock() + ttl
        return True

    async def release_address_slot(self, address: str, connection_id: str) -> None:
        slots = self._live_slots(address)
        slots.pop(connection_id, None)
        if not slots:
            self._broker.address_slots.pop(address, None)

    async def refresh_address_slots(self, slots: Mapping[str, Collection[str]], ttl: float) -> None:
        lapses = self._broker.clock() + ttl
        for address, connection_ids in slots.items():
            if connection_ids:
                live = self._broker.address_slots.setdefault(address, {})
                live.update(dict.fromkeys(connection_ids, lapses))

    async def record_attempt(self, address: str, limit: int, window: float) -> bool:
        now = self._broker.clock()
        attempts = [t for t in self._broker.address_attempts.get(address, []) if t > now - window]
        allowed = len(attempts) < limit
        if allowed:
            attempts.append(now)
        if attempts:
            self._broker.address_attempts[address] = attempts
        else:
            self._broker.address_attempts.pop(address, None)
        return allowed

    async def save_node_health(self, health: NodeHealth, ttl: float) -> None:
        self._broker.health[health.server_id] = (health, self._broker.clock() + ttl)

    async def get_node_health(self, server_id: str) -> NodeHealth | None:
        entry = self._broker.health.get(server_id)
        if entry is None or entry[1] <= self._broker.clock():
            return None
        return entry[0]

    async def get_pool_config(self) -> dict[str, Any] | None:
        document = self._broker.pool_config
        return None if document is None else json.loads(json.dumps(document))

    async def set_pool_config(self, document: dict[str, Any]) -> None:
        self._broker.pool_config = json.loads(json.dumps(document))

    async def register_gateway(self, gateway_id: str, ttl: float) -> int:
        now = self._broker.clock()
        gateways = self._broker.gateways
        gateways[gateway_id] = now + ttl
        for lapsed in [g for g, lapses in gateways.items() if lapses <= now]:
            del gateways[lapsed]
        return len(gateways)

    async def deregister_gateway(self, gateway_id: str) -> None:
        self._broker.gateways.pop(gateway_id, None)
