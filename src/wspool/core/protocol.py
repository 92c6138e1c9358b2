"""The wire protocol: parse client frames, encode server frames.

Everything here is synchronous and does no I/O; the server node feeds frames in and sends
what comes out. Frames are JSON text. Server frames are encoded once and, for ``data``,
fanned out as the same bytes to every subscriber.

Extension for token renewal (docs/security.md): a client sends
``{"type": "auth", "payload": {"token": "<JWT>"}, "messageId": "..."}`` before its token
expires; the node answers ``{"type": "authenticated", "payload": {"clientId", "expiresAt"},
"messageId"}`` and the connection lives until the new ``exp``, or an ``error`` (the old
token still holds). The new token must name the same ``sub``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import orjson

from wspool.core import jsoninput
from wspool.core.history import StreamPosition

__all__ = [
    "CHANNEL_PATTERN",
    "HANDOVER_BARRIER",
    "HANDOVER_NOTICE",
    "ClientMessage",
    "CloseCode",
    "ErrorCode",
    "MessageType",
    "ProtocolError",
    "encode_authenticated",
    "encode_connected",
    "encode_data",
    "encode_error",
    "encode_pong",
    "encode_subscribed",
    "encode_unsubscribed",
    "error_body",
    "error_detail",
    "parse_client_frame",
]

# Channel names: 1-128 characters, letters, digits and ``. _ - : / @``. Narrow on purpose:
# they appear in Redis keys, logs, metrics and token permission patterns.
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")
MAX_MESSAGE_ID_LENGTH = 128


class MessageType(StrEnum):
    """Client → server message types."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    PING = "ping"
    DATA = "data"
    AUTH = "auth"  # extension: a fresh token before the current one expires


class ErrorCode(StrEnum):
    """``error.payload.code`` values."""

    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_LARGE = "TOO_LARGE"
    NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
    INTERNAL = "INTERNAL"


class CloseCode(IntEnum):
    """WebSocket close codes used by the farm (RFC 6455 §7.4.1, IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008  # auth failures, persistent abuse, slow consumers
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # node draining: reconnect through the gateway
    TRY_AGAIN_LATER = 1013  # no capacity (pool full, no healthy node)


HANDOVER_NOTICE = b"wspool-handover"
"""The payload of the ping a draining node sends, instead of its 1012, on a connection whose
gateway moves sessions itself (a relay ticket with ``hov``): the gateway moves the session
to another node and never passes this ping on. Not part of the client protocol."""

HANDOVER_BARRIER = "wspool-handover"
"""The ``messageId`` of the protocol ``ping`` a gateway sends a draining node behind what
its client sent before the handover notice. The node answers a connection's messages in
order, so its ``pong`` comes after every answer to them; the gateway takes that ``pong``
out of the stream and only then makes the next node ready."""


class ProtocolError(Exception):
    """A client frame that cannot be honoured; answered with an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str, message_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A validated client frame."""

    type: MessageType
    message_id: str
    channel: str | None = None
    payload: Any = None
    since: StreamPosition | None = None


_NEEDS_CHANNEL = frozenset({MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE, MessageType.DATA})


def parse_client_frame(frame: str | bytes, max_bytes: int) -> ClientMessage:
    """Validate one client frame, or raise :class:`ProtocolError` saying what is wrong.

    ``max_bytes`` is the soft size limit: larger frames get ``TOO_LARGE`` and the connection
    lives (the hard limit that closes with 1009 is enforced by the WebSocket layer). Frames
    nested deeper than :data:`~wspool.core.jsoninput.MAX_DEPTH` get ``BAD_REQUEST``.
    """
    if isinstance(frame, bytes):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "binary frames are not supported; send JSON text"
        )
    try:
        raw = jsoninput.loads(frame, max_bytes=max_bytes, what="frame")
    except jsoninput.JsonTooLargeError as error:
        raise ProtocolError(ErrorCode.TOO_LARGE, str(error)) from None
    except jsoninput.JsonInputError as error:
        # Strict RFC 8259 (NaN and Infinity are refused) and at most MAX_DEPTH levels, so
        # that whatever is accepted can be encoded again. Integers beyond 64 bits are read
        # as doubles, which is how browsers read every JSON number.
        raise ProtocolError(ErrorCode.BAD_REQUEST, str(error)) from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame must be a JSON object")
    message_id = raw.get("messageId")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"messageId must be a string of 1-{MAX_MESSAGE_ID_LENGTH} characters",
        )
    try:
        kind = MessageType(str(raw.get("type")))
    except ValueError:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"unknown type {raw.get('type')!r}; expected one of "
            + ", ".join(t.value for t in MessageType),
            message_id,
        ) from None
    channel = raw.get("channel")
    if kind in _NEEDS_CHANNEL:
        if channel is None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{kind} needs a channel", message_id)
        if not isinstance(channel, str) or not CHANNEL_PATTERN.fullmatch(channel):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST,
                "invalid channel name: 1-128 characters of letters, digits and . _ - : / @",
                message_id,
            )
    else:
        channel = None
    if kind is MessageType.AUTH:
        payload = raw.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, 'auth needs a payload {"token": "<JWT>"}', message_id
            )
    since = raw.get("since")
    position = None
    if since is not None:
        if kind is not MessageType.SUBSCRIBE or not isinstance(since, str):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST,
                "since is a string offset, valid on subscribe only",
                message_id,
            )
        try:
            position = StreamPosition.parse(since)
        except ValueError as error:
            raise ProtocolError(ErrorCode.BAD_REQUEST, str(error), message_id) from None
    return ClientMessage(kind, message_id, channel, raw.get("payload"), position)


def _encode(frame: dict[str, Any]) -> str:
    # orjson writes compact JSON several times faster than the json module (a node encodes
    # every message it sends). JSON text never holds a raw newline (RFC 8259 escapes it in
    # strings), so nodes pack several frames into one pub/sub message.
    return orjson.dumps(frame).decode()


def encode_connected(connection_id: str, server_id: str, client_id: str) -> str:
    return _encode(
        {
            "type": "connected",
            "payload": {
                "connectionId": connection_id,
                "serverId": server_id,
                "clientId": client_id,
            },
        }
    )


def encode_subscribed(
    channel: str,
    message_id: str,
    offset: StreamPosition | None = None,
    recovered: bool | None = None,
) -> str:
    """``subscribed``; with ``offset`` (extension) the channel's position when the
    subscription took effect, and with ``recovered`` (extension, answering ``since``)
    whether every message after ``since`` follows."""
    frame: dict[str, Any] = {"type": "subscribed", "channel": channel, "messageId": message_id}
    if offset is not None:
        frame["offset"] = offset.token
    if recovered is not None:
        frame["recovered"] = recovered
    return _encode(frame)


def encode_unsubscribed(channel: str, message_id: str) -> str:
    return _encode({"type": "unsubscribed", "channel": channel, "messageId": message_id})


def encode_pong(message_id: str) -> str:
    return _encode({"type": "pong", "messageId": message_id})


def encode_data(channel: str, payload: Any, message_id: str) -> str:
    return _encode(
        {"type": "data", "channel": channel, "payload": payload, "messageId": message_id}
    )


def encode_authenticated(message_id: str, client_id: str, expires_at: float | None) -> str:
    """The reply to ``auth``: the connection now lives until the new token's ``exp``."""
    return _encode(
        {
            "type": "authenticated",
            "payload": {"clientId": client_id, "expiresAt": expires_at},
            "messageId": message_id,
        }
    )


def error_detail(code: str, message: str) -> dict[str, str]:
    """What every error says, wherever it goes: ``{"code", "message"}``, the payload of an
    ``error`` frame (:func:`encode_error`) and the heart of :func:`error_body`."""
    return {"code": code, "message": message}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every HTTP error, a node's refused handshake and the gateway's REST
    API alike: ``{"error": {"code", "message"}}``."""
    return {"error": error_detail(code, message)}


def encode_error(code: ErrorCode, message: str, message_id: str | None = None) -> str:
    frame: dict[str, Any] = {"type": "error", "payload": error_detail(code.value, message)}
    if message_id is not None:
        frame["messageId"] = message_id
    return _encode(frame)
