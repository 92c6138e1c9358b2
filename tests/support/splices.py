"""What the splice tests build a relayed connection from: socket pairs standing in for a
client's connection and a node's, with the splice's counters."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from wspool.gateway.splice import Splice
from wspool.gateway.upstream import NodeLink

Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Counts:
    messages_to_server: int = 0
    messages_to_client: int = 0


class ClientSide(asyncio.Protocol):
    """Stands in for the gateway's client connection: hands each read to the splice."""

    splice: Splice

    def data_received(self, data: bytes) -> None:
        self.splice.from_client(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.splice.client_gone()


async def node_pair() -> tuple[NodeLink, Pair]:
    """A node's link, past its handshake, and the node's end of it."""
    ours, theirs = socket.socketpair()
    _, link = await asyncio.get_running_loop().connect_accepted_socket(NodeLink, ours)
    link.answered.cancel()  # a relayed link is past its handshake
    return link, await asyncio.open_connection(sock=theirs)
