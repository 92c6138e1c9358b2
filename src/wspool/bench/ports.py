"""Loopback ports for the processes the benchmark starts, and the ephemeral range's size.

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, where any
outgoing connection may take it as its source port before the child process binds it: after
a run that opened thousands of connections, a node started next can fail with "address
already in use". Below that range only another listener can hold a port, so the ports of
spawned servers are picked there.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["ephemeral_range", "free_port"]

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000
"""The lowest port picked (well clear of the ports services are known by)."""


def ephemeral_range() -> tuple[int, int]:
    """The first and last port of Linux's ephemeral range (its default where unknown)."""
    try:
        low, high = _RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host``, below the ephemeral range."""
    high = ephemeral_range()[0] - 1
    for _ in range(200):
        port = random.randint(LOWEST, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} between {LOWEST} and {high}")
