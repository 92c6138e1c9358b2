"""The URLs a gateway derives from the one a server node advertises.

A node registers the WebSocket URL its clients dial: ``ws://10.99.1.5:8081/ws`` in Kubernetes
(the pod's address and the path the Service routes), ``ws://127.0.0.1:9001`` in ``wspool dev``.
Its HTTP routes (``/health``, ``/metrics``) hang off the origin, not off that path, and the
gateway's upstream upgrade request goes to the advertised URL itself, with the gateway's own
query: its :class:`NodeAddress`, read once per advertised URL.
"""

from __future__ import annotations

import functools
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

__all__ = ["NodeAddress", "health_url", "node_address", "socket_url"]

DEFAULT_SOCKET_PATH = "/ws"
"""The path a node serves WebSockets on when its advertised URL names none."""


def health_url(advertised: str) -> str:
    """The node's ``/health``, at the origin of its advertised ``ws://`` or ``wss://`` URL."""
    scheme, netloc, *_ = urlsplit(advertised)
    return urlunsplit(("https" if scheme == "wss" else "http", netloc, "/health", "", ""))


def socket_url(advertised: str, query: str) -> str:
    """The advertised WebSocket URL with ``query`` in place of any query it had."""
    scheme, netloc, path, _, _ = urlsplit(advertised)
    return urlunsplit((scheme, netloc, path.rstrip("/") or DEFAULT_SOCKET_PATH, query, ""))


class NodeAddress(NamedTuple):
    """Where the gateway dials a node's WebSocket."""

    host: str
    port: int
    secure: bool
    """``wss://``: TLS."""
    netloc: str
    """The ``Host`` header."""
    path: str

    def target(self, query: str) -> str:
        """The upgrade request's target: the path, with ``query`` if there is one."""
        return f"{self.path}?{query}" if query else self.path


@functools.lru_cache(maxsize=1024)
def node_address(advertised: str) -> NodeAddress:
    """The address of the WebSocket a node advertises (read once: every relayed connection
    dials it)."""
    parts = urlsplit(advertised)
    secure = parts.scheme == "wss"
    return NodeAddress(
        parts.hostname or "",
        parts.port or (443 if secure else 80),
        secure,
        parts.netloc,
        parts.path.rstrip("/") or DEFAULT_SOCKET_PATH,
    )
