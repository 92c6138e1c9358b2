"""The URLs a gateway derives from the one a server node advertises.

A node registers the WebSocket URL its clients dial: ``ws://10.99.1.5:8081/ws`` in Kubernetes
(the pod's address and the path the Service routes), ``ws://127.0.0.1:9001`` in ``wspool dev``.
Its HTTP routes (``/health``, ``/metrics``) hang off the origin, not off that path, and the
gateway's upstream upgrade request goes to the advertised URL itself, with the gateway's own
query.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["health_url", "socket_url"]

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
