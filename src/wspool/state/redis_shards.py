"""The bus's links on a Redis Cluster: one per primary, routed by the cluster's slot map.

A channel's pub/sub uses sharded pub/sub (``SSUBSCRIBE``/``SPUBLISH``), so each shard
carries only the messages of its own channels; a channel's pub/sub name, history stream and
meta hash share one hash tag, so they live in one slot (:class:`~wspool.core.keys.Keys`).

- :class:`ShardScripts` sends each script call to the primary of its first key's slot: the
  calls of a burst go out as one pipeline per primary, all at once, so a burst costs one
  round trip per shard. A call refused with a redirection (``MOVED``, ``ASK``,
  ``TRYAGAIN``, ``CLUSTERDOWN``: the slot moved or its shard fails over) did not run; it is
  sent again once the slot map is read anew.
- :class:`ShardedPubSub` holds one :class:`~wspool.state.redis_links.PubSubLink` per
  primary and subscribes each channel on its slot's primary. Any link failing (its primary
  died, a slot moved away and Redis unsubscribed its channels) ends the whole set: the bus
  reads the slot map anew and opens a new set, as it does after losing its one link to a
  single server, and the node then reads from history what the links missed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from wspool.state.redis_client import node_connections
from wspool.state.redis_links import LINK_UP, Command, PubSubLink, Reply, ScriptLink

__all__ = ["ShardScripts", "ShardedPubSub"]

REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError)
"""Refusals that say a command did not run because its slot is elsewhere (or nowhere yet)."""

ATTEMPTS = 4
"""Times a redirected script call is sent before its refusal stands (about a second)."""


class _SlotMap:
    """The cluster client's slot map, read anew once it is known to be stale."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self.stale = True

    async def refresh(self) -> None:
        if not self.stale:
            return
        await self._cluster.initialize()  # the first time; a no-op afterwards
        await self._cluster.nodes_manager.initialize()
        self.stale = False

    def primary_of(self, name: str) -> ClusterNode:
        """The primary that holds the slot of key or shard channel ``name``."""
        node: ClusterNode = self._cluster.nodes_manager.get_node_from_slot(
            self._cluster.keyslot(name)
        )
        return node

    def primaries(self) -> list[ClusterNode]:
        nodes: list[ClusterNode] = self._cluster.get_primaries()
        return nodes

    def group(self, names: Iterable[str]) -> dict[ClusterNode, list[str]]:
        groups: defaultdict[ClusterNode, list[str]] = defaultdict(list)
        for name in names:
            groups[self.primary_of(name)].append(name)
        return groups


class ShardScripts:
    """Pipelined script calls to the primaries that hold their keys, one link per primary."""

    def __init__(self, cluster: RedisCluster, timeout: float) -> None:
        self._slots = _SlotMap(cluster)
        self._timeout = timeout
        self._links: dict[str, ScriptLink] = {}

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The replies of ``commands`` (``EVAL``/``EVALSHA`` calls with at least one key),
        in order, as :meth:`ScriptLink.pipeline` answers them."""
        replies: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.1 * attempt)  # a failover or a slot move under way
            await self._slots.refresh()
            by_node: defaultdict[ClusterNode, list[int]] = defaultdict(list)
            for i in pending:
                by_node[self._slots.primary_of(str(commands[i][3]))].append(i)
            try:
                answers = await asyncio.gather(
                    *(
                        self._link(node).pipeline([commands[i] for i in calls])
                        for node, calls in by_node.items()
                    )
                )
            except BaseException:
                self._slots.stale = True  # a primary gone may have been replaced
                raise
            for calls, answer in zip(by_node.values(), answers, strict=True):
                for i, reply in zip(calls, answer, strict=True):
                    replies[i] = reply
            pending = [i for i in pending if isinstance(replies[i], REDIRECTED)]
            if not pending:
                break
            self._slots.stale = True
        return replies

    def _link(self, node: ClusterNode) -> ScriptLink:
        link = self._links.get(node.name)
        if link is None:
            link = self._links[node.name] = ScriptLink(node_connections(node), self._timeout)
        return link

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links.clear()


class ShardedPubSub:
    """The bus's pub/sub on a cluster: a :class:`PubSubLink` per primary, opened together."""

    def __init__(self, cluster: RedisCluster, ping_interval: float, timeout: float) -> None:
        self._slots = _SlotMap(cluster)
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._links: dict[str, PubSubLink] = {}

    async def open(self, channels: Sequence[str], on_reply: Reply) -> None:
        """Read the slot map, connect to every primary and subscribe each of ``channels``
        (pub/sub names) on its own; returns once every primary confirmed them, having handed
        ``on_reply`` what came meanwhile."""
        self._slots.stale = True
        await self._slots.refresh()
        nodes = self._slots.primaries()
        self._links = {
            node.name: PubSubLink(node_connections(node), self._ping_interval, self._timeout)
            for node in nodes
        }
        groups = self._slots.group(channels)
        await asyncio.gather(*(link.connect() for link in self._links.values()))
        for node in nodes:
            link = self._links[node.name]
            subscribes = [("SSUBSCRIBE", channel) for channel in groups.get(node, [])]
            await link.send_many([*subscribes, ("PING", LINK_UP)])
        await asyncio.gather(*(link.confirm(on_reply) for link in self._links.values()))

    async def read(self, on_reply: Reply) -> None:
        """Read every link until one fails; its failure ends the others too."""
        readers = [asyncio.create_task(link.read(on_reply)) for link in self._links.values()]
        try:
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            for reader in done:
                reader.result()  # raises the link's failure
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def subscribe(self, channels: Sequence[str]) -> None:
        """SSUBSCRIBE each of ``channels`` on the primary of its slot. A channel whose slot
        moved to a primary without a link is refused; a stale map makes Redis refuse the
        subscription (``MOVED``), which ends the link set."""
        for node, names in self._slots.group(channels).items():
            link = self._links.get(node.name)
            if link is None:
                raise RedisConnectionError(f"{node.name} holds slots the links do not know")
            await link.send_many([("SSUBSCRIBE", name) for name in names])

    async def unsubscribe(self, channel: str) -> None:
        link = self._links.get(self._slots.primary_of(channel).name)
        if link is not None:
            await link.send("SUNSUBSCRIBE", channel)

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links = {}
