"""The one place that names Redis keys and channels, each under the pool's prefix.

A per-pool prefix lets several pools share one Redis. Keys of one node are not hash-tagged
together: the schema works on Redis Cluster because no command here spans two keys, except
the history scripts, whose keys share the channel's hash tag (channel names cannot contain
braces), so a channel's history stream, meta hash and batch markers live in one slot. On a
cluster (``sharded``) the channel's pub/sub name carries the same hash tag, so the publish
script's ``SPUBLISH`` reaches the shard that the channel's subscribers listen on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every key and pub/sub channel name for one pool."""

    prefix: str = ""
    sharded: bool = False
    """Whether channels use a cluster's sharded pub/sub (their names then hash-tagged)."""

    def conn(self, connection_id: str) -> str:
        return f"{self.prefix}conn:{connection_id}"

    def server_connections(self, server_id: str) -> str:
        return f"{self.prefix}server:{server_id}:connections"

    def client_sessions(self, client_id: str) -> str:
        return f"{self.prefix}client:{client_id}:sessions"

    def server_health(self, server_id: str) -> str:
        return f"{self.prefix}server:{server_id}:health"

    def server_info(self, server_id: str) -> str:
        """The node's registry hash; it expires unless the node's heartbeat renews it."""
        return f"{self.prefix}server:{server_id}:info"

    @property
    def registry(self) -> str:
        """Sorted set of node ids scored by the time their registration lapses."""
        return f"{self.prefix}servers"

    @property
    def pool_config(self) -> str:
        """The pool's ``PoolConfig`` as JSON, shared by every gateway replica."""
        return f"{self.prefix}pool:config"

    @property
    def gateways(self) -> str:
        """Sorted set of gateway replica ids scored by the time their registration lapses."""
        return f"{self.prefix}gateways"

    def channel(self, name: str) -> str:
        """The pub/sub channel carrying a WebSocket channel's messages between nodes."""
        if self.sharded:
            return f"{self.prefix}ch:{{{name}}}"
        return f"{self.prefix}ch:{name}"

    def channel_name(self, pubsub_channel: str) -> str:
        """Inverse of :meth:`channel`."""
        if self.sharded:
            return pubsub_channel[len(self.prefix) + 4 : -1]
        return pubsub_channel[len(self.prefix) + 3 :]

    def history(self, name: str) -> str:
        """The stream holding a channel's recent messages (with their offsets)."""
        return f"{self.prefix}hist:{{{name}}}"

    def history_meta(self, name: str) -> str:
        """Hash of a channel's history epoch (``e``) and last assigned offset (``o``)."""
        return f"{self.prefix}hist:{{{name}}}:meta"

    def history_batch(self, name: str, sender: str) -> str:
        """Marker of the last batch a sender published with ``name`` as its first channel
        (its id and each channel's last position), so that sending the batch again after an
        unanswered publish does not write it twice."""
        return f"{self.prefix}hist:{{{name}}}:b:{sender}"

    def presence(self, name: str, server_id: str) -> str:
        """Hash of a channel's subscribers on one node: connection id → client id."""
        return f"{self.prefix}presence:{{{name}}}:{server_id}"

    def server_channels(self, server_id: str) -> str:
        """Set of the channels a node has subscribers on (each with its :meth:`presence`)."""
        return f"{self.prefix}server:{server_id}:channels"

    def used_ticket(self, ticket_id: str) -> str:
        """Present while a used connection ticket has not expired: a ticket opens one connection."""
        return f"{self.prefix}ticket:{ticket_id}:used"

    def closed_connection(self, connection_id: str) -> str:
        """Tombstone of a connection the pool manager closed, for a node that missed the
        command (frozen, cut off) to find when it wakes."""
        return f"{self.prefix}conn:{connection_id}:closed"

    def address_connections(self, address: str) -> str:
        """Sorted set of the open connection ids of one client address, scored by the time
        each lapses unless its node's heartbeat renews it (so a crashed node's entries go)."""
        return f"{self.prefix}ip:{address}:connections"

    def address_attempts(self, address: str) -> str:
        """Sorted set of one client address's recent connection attempts, scored by time."""
        return f"{self.prefix}ip:{address}:attempts"
