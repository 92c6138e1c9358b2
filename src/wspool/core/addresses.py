"""The client's IP address: the peer, or what a trusted proxy says in ``X-Forwarded-For``.

Limits per IP are only as good as this answer. A header is believed only when the peer is a
configured trusted proxy (the gateway, an ingress); then the chain is read from the right,
skipping trusted proxies, and the first untrusted hop is the client (the address the last
trusted proxy saw; anything left of it the client may have forged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["IPNetwork", "client_address", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks from addresses or CIDR blocks; ``ValueError`` names a bad one."""
    networks: list[IPNetwork] = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client seen on a dual-stack socket: count it under its IPv4 form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]
) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The address to count a connection under.

    ``forwarded_for`` holds every ``X-Forwarded-For`` header value in order (a proxy may
    append a header rather than extend one).
    """
    peer_address = _address(peer)
    if peer_address is None:
        return peer
    if not trusted or not _trusted(peer_address, trusted):
        return str(peer_address)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage in the chain: trust nothing left of it
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)
