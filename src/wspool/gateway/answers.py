"""What the relay answers a client with, besides the node's 101 and the frames after it:
the bytes, which the client's connection writes before it ends (``wspool.gateway.front``).

- :func:`refusal`: the gateway's own refusals, as WebSocket closes (browsers see close
  codes, not statuses): the handshake completed, then a closing frame;
- :func:`node_refusal`: a node's refusal of the client, as the node wrote it (status, body
  and the headers that explain it).
"""

from __future__ import annotations

from http import HTTPStatus

from wspool.core.protocol import CloseCode
from wspool.gateway.model.framing import close_frame
from wspool.gateway.upstream import ClientRefusedError, websocket_accept

__all__ = ["LINGER", "node_refusal", "refusal"]

LINGER = 5.0
"""Seconds a client has to close its side after the gateway closed its own."""


def refusal(key: str, code: CloseCode, reason: str) -> bytes:
    """Complete the handshake whose ``Sec-WebSocket-Key`` is ``key`` and close at once."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {websocket_accept(key)}\r\n\r\n"
    )
    return head.encode("latin-1") + close_frame(code, reason.encode())


def node_refusal(refusal: ClientRefusedError) -> bytes:
    """The node's refusal, as the node wrote it: status, body and the headers that explain it."""
    try:
        phrase = HTTPStatus(refusal.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {refusal.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in refusal.headers.items()]
    lines += [f"Content-Length: {len(refusal.body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + refusal.body
