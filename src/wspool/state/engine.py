"""The interfaces a state engine implements, one per concern, and what they report back.

Each part of the pool sees Redis (or the in-memory stand-in of ``wspool dev``) only through
the interfaces it uses:

- :class:`MessageBus` (its :class:`Publisher` and :class:`HistoryReader` parts alone for
  whoever only sends and reads, as the gateway's REST API does): pub/sub
  that carries already-encoded ``data`` frames between nodes, and each channel's bounded
  history. The bus gives every published frame its channel's next offset (``"offset"`` is
  spliced into the frame) in the same atomic step that stores and publishes it, so offsets
  follow the order in which subscribers receive the frames;
- :class:`ConnectionStore`: connection records, used tickets, tombstones of closed
  connections, and presence (each node's subscribers per channel);
- :class:`NodeRegistry`: which nodes are alive, and sweeping the state of dead ones;
- :class:`AddressLimits`: connections and attempts per client address, pool-wide;
- :class:`GatewayState`: what gateway replicas share: their registrations, their health
  verdicts on nodes, the pool config.

Both engines (``redis_engine.RedisEngine``, ``memory.MemoryEngine``) implement all of them
in one object, and one contract suite per interface runs against both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from wspool.core.history import HistoryRead, StreamPosition
from wspool.core.records import ConnectionRecord, NodeHealth, NodeInfo

__all__ = [
    "AddressLimits",
    "ConnectionStore",
    "EngineUnavailableError",
    "GatewayState",
    "HistoryReader",
    "MessageBus",
    "MessageHandler",
    "NodeRegistry",
    "OutcomeUnknownError",
    "Publisher",
    "StatusHandler",
]

MessageHandler = Callable[[str, StreamPosition, list[str]], None]
"""Called with a WebSocket channel name, the position of the first frame, and the frames
published to it, in order; their offsets follow each other from the first."""

StatusHandler = Callable[[bool], None]
"""Called when the engine's link to its store goes down (False) or comes back (True)."""


class EngineUnavailableError(Exception):
    """The store cannot be reached right now; the caller decides whether to retry."""


class OutcomeUnknownError(EngineUnavailableError):
    """A write was sent and no answer came: it may have taken effect or not. Only sending
    it again with the same batch id (which the store never writes twice) settles it."""


class Publisher(Protocol):
    """Publishing on channels; works without a subscription link (:meth:`MessageBus.start`)."""

    async def publish(
        self, batches: Mapping[str, Sequence[str]], batch_id: str = ""
    ) -> dict[str, StreamPosition]:
        """Publish encoded JSON-object frames per channel, in this order within a channel;
        each gets the channel's next offset and a place in its history. Returns the
        position of each channel's last frame (the others precede it, one offset apart).

        With a ``batch_id``, publishing the same batches again with the same id writes
        nothing that was written before (for ten minutes) and returns the same positions
        as the first time. An id ``<sender>.<count>`` is remembered per sender: a sender
        that publishes its next batch only once its last one is settled sends only that
        one again. ``OutcomeUnknownError`` when
        the request went out and no answer came; ``EngineUnavailableError`` when nothing
        was written.
        """
        ...


class HistoryReader(Protocol):
    """Reading channel histories; works without a subscription link, as publishing does."""

    async def read_history(self, channel: str, since: StreamPosition | None) -> HistoryRead:
        """The channel's position now and, given ``since``, every frame after it.

        Starts the channel's epoch when it has none, so a position handed to a subscriber
        of a quiet channel stays valid once messages flow.
        """
        ...

    async def read_recent(self, channel: str, count: int) -> HistoryRead:
        """The channel's position now and its newest ``count`` frames still kept, oldest
        first; starts the channel's epoch as :meth:`read_history` does."""
        ...


class MessageBus(Publisher, HistoryReader, Protocol):
    """Cross-node pub/sub with a bounded, offset-numbered history per channel."""

    @property
    def available(self) -> bool:
        """Whether the store is reachable (pub/sub link up)."""
        ...

    async def start(self, on_message: MessageHandler, on_status: StatusHandler) -> None:
        """Connect, and start delivering pub/sub messages to ``on_message``."""
        ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Receive ``channel``; returns once messages published from now on will arrive."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...


class ConnectionStore(Protocol):
    """Connection records, used tickets and the tombstones of connections closed by the
    pool manager."""

    async def save_connections(self, records: Sequence[ConnectionRecord]) -> None:
        """Create or update ``conn:{id}`` and the server and client sets that index it."""
        ...

    async def update_connections(self, records: Sequence[ConnectionRecord]) -> None:
        """Rewrite the channels and ``lastActivity`` of records saved before; a record the
        store no longer holds stays absent (the next full save writes it again)."""
        ...

    async def remove_connections(self, records: Sequence[ConnectionRecord]) -> None: ...

    async def get_connection(self, connection_id: str) -> ConnectionRecord | None: ...

    async def use_ticket(self, ticket_id: str, ttl: float) -> bool:
        """Mark a connection ticket used for ``ttl`` seconds, atomically: True the first
        time, False when it was used already."""
        ...

    async def mark_closed(self, connection_id: str, ttl: float) -> None:
        """Leave a tombstone for ``ttl`` seconds: the pool manager closed this connection."""
        ...

    async def closed_connections(self, connection_ids: Collection[str]) -> set[str]:
        """Those of ``connection_ids`` that have a tombstone."""
        ...

    async def client_connections(self, client_id: str) -> list[ConnectionRecord]:
        """The records of every connection of a client id, on whichever node."""
        ...

    async def update_presence(
        self,
        server_id: str,
        joined: Mapping[str, Mapping[str, str]],
        left: Mapping[str, Collection[str]],
    ) -> None:
        """Record who is subscribed where on one node: ``joined[channel]`` maps connection
        ids to client ids, ``left[channel]`` names connection ids gone from it. Kept as
        long as connection records; :meth:`NodeRegistry.purge_node` removes a node's."""
        ...

    async def presence(self, channel: str, server_ids: Collection[str]) -> dict[str, str]:
        """Connection id → client id of the channel's subscribers on the given nodes."""
        ...

    async def channel_counts(self, server_ids: Collection[str]) -> dict[str, int]:
        """Subscribers per channel on the given nodes (channels without any left out)."""
        ...


class NodeRegistry(Protocol):
    """The nodes of the pool: announced by their heartbeat, swept by survivors when it stops."""

    async def register_node(self, node: NodeInfo, ttl: float) -> bool:
        """Announce (or refresh) a node; it lapses ``ttl`` seconds after the last call.

        Returns True when the node was not registered: its first announcement, or one after
        survivors swept it (and its connection records) as dead.
        """
        ...

    async def list_nodes(self) -> list[NodeInfo]:
        """The nodes whose registration has not lapsed."""
        ...

    async def purge_node(self, server_id: str) -> int:
        """Remove a node's registration, health verdict, presence and every connection
        record it left; returns how many records."""
        ...

    async def sweep_dead_nodes(self) -> list[str]:
        """Purge every node whose registration lapsed; returns their ids."""
        ...


class AddressLimits(Protocol):
    """Limits per client address, shared by every node and gateway replica."""

    async def acquire_address_slot(
        self, address: str, connection_id: str, limit: int, ttl: float
    ) -> bool:
        """Count ``connection_id`` against ``address`` if fewer than ``limit`` are open.

        The entry lapses after ``ttl`` seconds unless :meth:`refresh_address_slots` renews
        it, so the slots of a node that died free themselves. Returns whether it counted.
        """
        ...

    async def release_address_slot(self, address: str, connection_id: str) -> None: ...

    async def refresh_address_slots(self, slots: Mapping[str, Collection[str]], ttl: float) -> None:
        """Renew (or restore, after a store restart) the slots of every open connection."""
        ...

    async def record_attempt(self, address: str, limit: int, window: float) -> bool:
        """Record a connection attempt if fewer than ``limit`` happened in the last
        ``window`` seconds (a sliding window); returns whether it was allowed."""
        ...


class GatewayState(Protocol):
    """What gateway replicas share: their registrations, their health monitors' verdicts on
    nodes (read by the operator too), and the pool config."""

    async def register_gateway(self, gateway_id: str, ttl: float) -> int:
        """Announce (or refresh) a gateway replica; returns how many replicas are live."""
        ...

    async def deregister_gateway(self, gateway_id: str) -> None: ...

    async def save_node_health(self, health: NodeHealth, ttl: float) -> None:
        """Publish a health monitor's view of a node for every replica and the operator."""
        ...

    async def get_node_health(self, server_id: str) -> NodeHealth | None: ...

    async def get_pool_config(self) -> dict[str, Any] | None:
        """The pool's stored ``PoolConfig`` document, or None if none was ever set."""
        ...

    async def set_pool_config(self, document: dict[str, Any]) -> None: ...
