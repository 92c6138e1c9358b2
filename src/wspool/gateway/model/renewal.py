"""A relayed client's token renewed on its connection, carried to the node its session moves to.

A client may renew its token without reconnecting (``auth``, docs/security.md). A session that
moves to another node presents its client's handshake again, so it must present the newest
token its node accepted, or the new node refuses it once the first token has expired.

:class:`Renewals` follows both halves: the client's ``auth`` messages (:meth:`~Renewals.sent`,
a :class:`~wspool.gateway.model.framing.FrameScanner`'s ``watch`` on the client's masked
frames, unmasking no more than it must: 10 or 11 bytes of a message that begins with its
``type``) and the node's ``authenticated`` answers (:meth:`~Renewals.accepted`, handed on by
the :class:`~wspool.gateway.model.sessionview.SessionView`). :func:`with_token` puts the
token where the client's handshake carried its own: the ``Authorization`` header, the
``token`` query parameter or the ``bearer.<token>`` subprotocol, in the order a node looks
(:func:`wspool.core.auth.token_from_handshake`).

Only a token of a JWT's shape (base64url segments and dots, at most
:data:`~wspool.core.jsoninput.MAX_TOKEN_BYTES`) is followed: it is written into a request
line or header as it is.
"""

from __future__ import annotations

import re
import struct
from typing import Any, NamedTuple

import orjson

from wspool.core.jsoninput import MAX_TOKEN_BYTES
from wspool.gateway.model.framing import masked

__all__ = ["AUTH_MESSAGE_LIMIT", "Handshake", "Renewals", "carries_token", "with_token"]

AUTH_MESSAGE_LIMIT = MAX_TOKEN_BYTES + 1024
"""The longest client message read as a possible ``auth``: a token of the longest a node
accepts, and room for the rest of the message."""
_PENDING = 8
"""``auth`` messages kept until their answer: a client renews once per token, not in bursts."""
_SHORTEST = len(b'{"type":"auth","payload":{"token":"a.b.c"},"messageId":"m"}')
"""No ``auth`` message with a token of a JWT's shape is shorter."""
_HEAD = struct.Struct("!IQH")
"""A client message's mask key, then its first 8 and the next 2 bytes, masked."""
_TYPE = int.from_bytes(b'{"type":', "big")
"""How a message that names its type first begins; then a quote (compact JSON), or a space
and a quote (Python's default)."""
_QUOTE = ord('"')
_SPACE_QUOTE = int.from_bytes(b' "', "big")
_A = ord("a")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BEARER = "bearer."


class Renewals:
    """The newest token a client renewed on its connection and its node accepted.

    :attr:`token` is None until then: the handshake's own token still holds.
    """

    __slots__ = ("_pending", "token")

    def __init__(self) -> None:
        self.token: str | None = None
        self._pending: list[tuple[str, str]] = []
        """``(messageId, token)`` of each ``auth`` sent and not answered yet, in order (a
        list: a session holds one for its life, and it is nearly always empty)."""

    def sent(self, data: bytes, start: int, stop: int) -> None:
        """One text message from the client, its 4-byte mask key at ``data[start:]`` and the
        masked payload up to ``stop`` (a message that names its type twice is taken by the
        first: at worst a renewal is missed, and the move is refused as without one)."""
        if stop - start - 4 < _SHORTEST:
            return
        key, head, then = _HEAD.unpack_from(data, start)
        if head ^ (key << 32 | key) == _TYPE:  # it names its type first: is it auth?
            then ^= key >> 16
            if then >> 8 == _QUOTE:
                if then & 0xFF != _A:
                    return  # the common case: only auth begins with an a
            elif then == _SPACE_QUOTE and data[start + 14] ^ (key >> 8 & 0xFF) != _A:
                return  # the same, laid out with a space
        payload = masked(data[start + 4 : stop], data[start : start + 4])
        if b'"auth"' not in payload:
            return
        try:
            renewal = _renewal(orjson.loads(payload))
        except orjson.JSONDecodeError:
            return
        if renewal is not None:
            self._pending.append(renewal)
            del self._pending[:-_PENDING]

    def accepted(self, answer: dict[str, Any]) -> None:
        """The node's ``authenticated``: the token of the ``auth`` it answers holds now.

        A node answers a client's messages in order, so the ``auth`` messages before it were
        answered already (refused)."""
        message_id = answer.get("messageId")
        for n, (sent_id, token) in enumerate(self._pending):
            if sent_id == message_id:
                self.token = token
                del self._pending[: n + 1]
                return


def _renewal(message: object) -> tuple[str, str] | None:
    """``(messageId, token)`` of an ``auth`` message a node would read, whose token has a
    JWT's shape."""
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    message_id = message.get("messageId")
    payload = message.get("payload")
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(message_id, str) or not isinstance(token, str):
        return None
    if len(token) > MAX_TOKEN_BYTES or not _JWT.fullmatch(token):
        return None
    return message_id, token


class Handshake(NamedTuple):
    """Where a client's handshake may carry its token."""

    authorization: str | None
    query: list[tuple[str, str]]
    subprotocols: list[str]


def carries_token(handshake: Handshake) -> bool:
    """Whether ``handshake`` presents a token: only then is there one to renew (a node that
    checks tokens refuses a client without, and an open node refuses ``auth``)."""
    authorization, query, subprotocols = handshake
    return (
        authorization is not None
        or any(name == "token" for name, _ in query)
        or any(p.startswith(_BEARER) for p in subprotocols)
    )


def with_token(handshake: Handshake, token: str) -> Handshake:
    """``handshake`` presenting ``token`` in the place of its own (unchanged if it carried
    none: a node that checks no token accepts no renewal either)."""
    authorization, query, subprotocols = handshake
    if authorization is not None:
        return handshake._replace(authorization=f"Bearer {token}")
    if any(name == "token" for name, _ in query):
        return handshake._replace(
            query=[(name, token if name == "token" else value) for name, value in query]
        )
    if any(p.startswith(_BEARER) for p in subprotocols):
        return handshake._replace(
            subprotocols=[_BEARER + token if p.startswith(_BEARER) else p for p in subprotocols]
        )
    return handshake
