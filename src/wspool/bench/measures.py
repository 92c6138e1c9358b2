"""What a node's ``/metrics`` says, and the arithmetic that turns two readings into costs.

The load generator shares the machine's cores with the nodes, so messages per second
depend on how much CPU the generator leaves over. Server CPU per message does not: it is
the node process's CPU seconds spent between two readings divided by the messages it
handled in between. Memory per 1,000 idle connections is the growth of the node's resident
set divided by the connections it gained.

Three kinds of process are read: a node (or a peer exposing the node's counter names), a
gateway, and Centrifugo, whose counters carry labels (transport, frame type, namespace) and
are summed over them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "NodeReading",
    "parse_prometheus",
    "per_message_us",
    "per_second",
    "rss_per_thousand_mb",
    "sum_labelled",
]


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One scrape of one node's (or the gateway's) ``/metrics``; None where it is not exposed.

    For a gateway, ``connections`` is the client connections it relays and ``relayed`` the
    frames it copied both ways; a node has no ``relayed``.
    """

    url: str
    cpu_seconds: float | None
    rss_bytes: float | None
    connections: float | None
    received: float | None
    deliveries: float | None
    slow_consumers: float | None
    relayed: float | None = None

    @property
    def is_gateway(self) -> bool:
        return self.relayed is not None

    @classmethod
    def from_metrics(cls, url: str, text: str) -> NodeReading:
        values = parse_prometheus(text)
        if "centrifugo_node_num_clients" in values:
            return cls(
                url=url,
                cpu_seconds=values.get("process_cpu_seconds_total"),
                rss_bytes=values.get("process_resident_memory_bytes"),
                # num_clients is refreshed every 10 s; the in-flight gauge moves at once.
                connections=sum_labelled(text, "centrifugo_client_connections_inflight"),
                received=sum_labelled(
                    text, "centrifugo_transport_messages_received", frame_type="publish"
                ),
                deliveries=sum_labelled(
                    text, "centrifugo_transport_messages_sent", frame_type="push_publication"
                ),
                slow_consumers=None,
            )
        up = values.get("wspool_gateway_messages_to_server_total")
        down = values.get("wspool_gateway_messages_to_client_total")
        if up is not None and down is not None:
            return cls(
                url=url,
                cpu_seconds=values.get("process_cpu_seconds_total"),
                rss_bytes=values.get("process_resident_memory_bytes"),
                connections=values.get("wspool_gateway_connections"),
                received=None,
                deliveries=None,
                slow_consumers=None,
                relayed=up + down,
            )
        return cls(
            url=url,
            cpu_seconds=values.get("process_cpu_seconds_total"),
            rss_bytes=values.get("process_resident_memory_bytes"),
            connections=values.get("wspool_connections"),
            received=values.get("wspool_messages_received_total"),
            deliveries=values.get("wspool_deliveries_total"),
            slow_consumers=values.get("wspool_slow_consumers_total"),
        )


def parse_prometheus(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition, by name.

    Labelled samples are skipped: the numbers used here are all process- or node-wide.
    """
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, rest = line.partition(" ")
        try:
            values[name] = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
    return values


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def sum_labelled(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none yet).

    A counter with labels shows no sample until its first increment, so none reads as 0.
    """
    total = 0.0
    prefix = name + "{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        label_text, _, value = line[len(prefix) :].partition("} ")
        found = dict(_LABEL.findall(label_text))
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            try:
                total += float(value.split()[0])
            except (IndexError, ValueError):
                continue
    return total


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def per_second(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def per_message_us(before: NodeReading, after: NodeReading, messages: float | None) -> float | None:
    """Server CPU microseconds per message between two readings of the same node."""
    cpu = _delta(before.cpu_seconds, after.cpu_seconds)
    if cpu is None or not messages:
        return None
    return cpu * 1e6 / messages


def rss_per_thousand_mb(before: NodeReading, after: NodeReading) -> float | None:
    """Resident memory in MB (10^6 bytes) that each 1,000 connections added to the node."""
    grown = _delta(before.rss_bytes, after.rss_bytes)
    gained = _delta(before.connections, after.connections)
    if grown is None or not gained or gained <= 0:
        return None
    return grown / gained * 1000 / 1e6
