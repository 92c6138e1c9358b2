"""What each scenario opens, and how the work is spread over worker processes.

A scenario becomes a list of connection specs (idle, subscriber or publisher; which target;
which local address; which channel; what rate), dealt out to the workers in turn so that
each holds its share of every role. Everything here is pure.

Source addresses: a TCP connection is told apart by (source address, source port,
destination address, destination port), and one source address offers only the ephemeral
port range (about 28,000 ports). Past that share, connections bind to the next address of
127.0.0.0/8, all of which reach this machine on Linux.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

__all__ = [
    "UNPUBLISHED",
    "ConnectionSpec",
    "Role",
    "Shape",
    "deal",
    "expected_deliveries",
    "messages_due",
    "plan_connections",
    "shape_for",
    "source_address",
    "subscribers_per_channel",
]

T = TypeVar("T")


class Role(StrEnum):
    IDLE = "idle"
    SUBSCRIBER = "subscriber"
    PUBLISHER = "publisher"


@dataclass(frozen=True, slots=True)
class Shape:
    """How many connections of each role a scenario run opens, and the total publish rate."""

    scenario: str
    connections: int = 0
    publishers: int = 0
    subscribers: int = 0
    channels: int = 1
    rate: float = 0.0  # msg/s over all publishers; 0 = as fast as the node takes them


UNPUBLISHED = ("connect", "subscribe-storm")
"""Scenarios that publish nothing: a ``--rate`` means nothing to them."""

DEFAULT_SHAPES = {
    "connect": Shape("connect", connections=1000),
    "throughput": Shape("throughput", publishers=8, subscribers=8, channels=8),
    "latency": Shape("latency", publishers=4, subscribers=4, channels=4, rate=1000.0),
    "fanout": Shape("fanout", publishers=1, subscribers=1000, channels=1),
    # One publisher on one channel, so at least one node of three holds subscribers only:
    # killing it measures the subscribers' way back, apart from publishes lost with a
    # publisher's node. 100 msg/s: a subscriber back in hears the next one within 10 ms.
    "failover": Shape("failover", publishers=1, subscribers=300, channels=1, rate=100.0),
    # Many quiet channels, as a chat or a dashboard has them: 2 subscribers each and one
    # publisher each, 4 msg/s per channel. What it costs per delivery, in the server and in
    # Redis, when fan-out is narrow and channels are many.
    "many-channels": Shape(
        "many-channels", publishers=500, subscribers=1000, channels=500, rate=2000.0
    ),
    # Every subscriber subscribes at the same moment (after all are connected), as after a
    # deploy or a network blip; no publishing.
    "subscribe-storm": Shape("subscribe-storm", subscribers=1000, channels=100),
}


def shape_for(
    scenario: str,
    *,
    connections: int | None = None,
    publishers: int | None = None,
    subscribers: int | None = None,
    channels: int | None = None,
    rate: float | None = None,
) -> Shape:
    """The scenario's default shape with the given counts put in."""
    base = DEFAULT_SHAPES[scenario]
    if scenario == "connect":
        return Shape(scenario, connections=connections or base.connections)
    if scenario in ("fanout", "failover"):
        channels = 1  # one channel by definition
    if scenario == "subscribe-storm":
        return Shape(
            scenario,
            subscribers=subscribers or base.subscribers,
            channels=channels or base.channels,
        )
    return Shape(
        scenario,
        publishers=publishers or base.publishers,
        subscribers=base.subscribers if subscribers is None else subscribers,
        channels=channels or base.channels,
        rate=base.rate if rate is None else rate,
    )


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """One connection a worker opens."""

    role: Role
    target: int  # index into the targets
    source: str  # local address to bind; "" lets the kernel choose (127.0.0.1)
    channel: str = ""
    rate: float = 0.0  # a publisher's own msg/s; 0 = full rate with a window


def source_address(index: int, per_address: int) -> str:
    """The local address of the index-th connection: "" for the first ``per_address``.

    Later ones take 127.0.0.2, 127.0.0.3, ... skipping .0 and .255 in the last octet.
    """
    if per_address <= 0:
        raise ValueError("per_address must be positive")
    block = index // per_address
    if block == 0:
        return ""
    # 254 usable last octets per /24: block 1 → 127.0.0.2
    offset = block + 1
    high, low = divmod(offset - 1, 254)
    if high >= 1 << 16:
        raise ValueError("more connections than 127.0.0.0/8 has addresses for")
    return str(ipaddress.IPv4Address((127 << 24) | (high << 8) | (low + 1)))


def channel_name(index: int) -> str:
    return f"bench.{index}"


def plan_connections(shape: Shape, targets: int, per_address: int) -> list[ConnectionSpec]:
    """Every connection of one scenario run; roles alternate over the targets."""
    roles = (
        [(Role.IDLE, "", 0.0)] * shape.connections
        + [
            (Role.SUBSCRIBER, channel_name(i % shape.channels), 0.0)
            for i in range(shape.subscribers)
        ]
        + [
            (Role.PUBLISHER, channel_name(i % shape.channels), shape.rate / shape.publishers)
            for i in range(shape.publishers)
        ]
    )
    return [
        ConnectionSpec(role, index % targets, source_address(index, per_address), channel, rate)
        for index, (role, channel, rate) in enumerate(roles)
    ]


def deal(items: Sequence[T], hands: int) -> list[list[T]]:
    """Deal items out like cards: hand i gets items i, i + hands, ... (empty hands dropped)."""
    return [list(items[i::hands]) for i in range(min(hands, len(items)))]


def subscribers_per_channel(specs: Sequence[ConnectionSpec]) -> Counter[str]:
    return Counter(s.channel for s in specs if s.role is Role.SUBSCRIBER)


def expected_deliveries(sent_per_channel: Counter[str], subscribers: Counter[str]) -> int:
    """Deliveries to subscriber connections if every message reaches every subscriber once."""
    return sum(count * subscribers[channel] for channel, count in sent_per_channel.items())


def messages_due(elapsed: float, rate: float, sent: int) -> int:
    """How many messages a publisher paced at ``rate`` per second owes, ``elapsed`` seconds
    after its first was due, having sent ``sent``: the first is due at 0, the next ones every
    ``1 / rate``. Before 0 (a publisher waiting for its phase) nothing is due."""
    return max(0, math.floor(elapsed * rate) + 1 - sent)
