"""A client's WebSocket upgrade request, as the relay keeps it: what the request must say for
the gateway to relay it, and what of it the node gets.

:func:`opens_websocket` is the test a request passes to be relayed (aiohttp's
``WebSocketResponse.can_prepare`` checks, without building a response); an
:class:`UpgradeRequest` keeps, for the connection's life, only what the node is sent each
time the session opens one (:func:`upgrade_request`'s headers, the query, the client's
address): a session that moves presents them again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["FORWARDED_HEADERS", "UpgradeRequest", "opens_websocket"]

FORWARDED_HEADERS = ("Origin", "User-Agent", "Cookie")
"""The client's headers a node sees as the client sent them."""
_KEPT_HEADERS = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Protocol",
    "Authorization",
    "X-Forwarded-For",
    *FORWARDED_HEADERS,
)


def opens_websocket(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    """Whether ``headers`` open a WebSocket: ``Upgrade: websocket``, a ``Connection`` that
    names ``upgrade``, a version aiohttp speaks and a 16-byte key."""
    if headers.get("Upgrade", "").lower().strip() != "websocket":
        return False
    connection = (t.strip().lower() for h in headers.getall("Connection", ()) for t in h.split(","))
    if "upgrade" not in connection:
        return False
    if headers.get("Sec-WebSocket-Version", "") not in ("13", "8", "7"):
        return False
    key = headers.get("Sec-WebSocket-Key")
    try:
        return key is not None and len(base64.b64decode(key)) == 16
    except binascii.Error:
        return False


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """What the relay keeps of a client's upgrade request: the headers a node is sent, the
    query (every parameter, in order) and the client's address. Its repr shows neither the
    headers nor the query: both may carry the client's token."""

    headers: CIMultiDict[str] = field(repr=False)
    query: tuple[tuple[str, str], ...] = field(repr=False)
    remote: str | None

    @classmethod
    def of(
        cls,
        headers: CIMultiDictProxy[str] | CIMultiDict[str],
        query: Iterable[tuple[str, str]],
        remote: str | None,
    ) -> UpgradeRequest:
        kept: CIMultiDict[str] = CIMultiDict()
        for name in _KEPT_HEADERS:
            for value in headers.getall(name, ()):
                kept.add(name, value)
        return cls(kept, tuple(query), remote)
