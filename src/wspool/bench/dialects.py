"""What the generator says over a WebSocket: the wspool protocol, Socket.IO's, or Centrifugo's.

:class:`~wspool.bench.wire.WireConnection` moves frames; a dialect knows the request path,
what to say once the WebSocket is up, whether a frame carries several messages, how a data
message starts (those go to the counting callback undecoded), what every other message
means, and how to subscribe and publish. Every dialect puts the send time in a
``"payload":<ns>`` field so one regular expression reads it from any of them.
:func:`dialect_for` gives the dialect of a name, with the token it presents (Centrifugo's).

Socket.IO v5 over Engine.IO v4 on a raw WebSocket (``?EIO=4&transport=websocket``): the
server opens with ``0{...}``, the client joins the default namespace with ``40`` and is in
once ``40{"sid":...}`` comes back; events are ``42["name",data]``, an event with an ack id
is ``42<id>[...]`` answered by ``43<id>[...]``; the server's ping ``2`` wants a pong ``3``.

Centrifugo's client protocol v2 in JSON (``/connection/websocket``): the client speaks first,
``{"id":1,"connect":{"token":JWT}}``, and is in once ``{"id":1,"connect":{...}}`` comes back;
every command carries an ``id`` > 0 and its reply the same ``id`` (or an ``error``);
publications arrive as ``{"push":{"channel":...,"pub":{"data":...}}}``. One WebSocket frame
may carry several replies and pushes, one per line. The server's ping is an empty ``{}``,
answered by ``{}``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jwt

if TYPE_CHECKING:
    from wspool.bench.wire import WireConnection

__all__ = [
    "DIALECTS",
    "CentrifugoDialect",
    "Dialect",
    "SocketIODialect",
    "Subscription",
    "WspoolDialect",
    "centrifugo_token",
    "dialect_for",
]

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Subscription:
    """The answer to a subscribe: ``problem`` None when it took effect.

    ``offset`` is the channel's position then (nodes with channel history), ``recovered``
    whether every message after the ``since`` given follows (None: no ``since`` given).
    """

    problem: str | None = None
    offset: str = ""
    recovered: bool | None = None


class Dialect(Protocol):
    name: str
    data_prefix: bytes
    batched: bool  # a frame may hold several messages, one per line

    def path(self, path: str) -> str: ...

    def greet(self, connection: WireConnection) -> None: ...

    def on_control(self, connection: WireConnection, payload: bytes) -> None: ...

    async def subscribe(
        self, connection: WireConnection, channel: str, since: str = ""
    ) -> Subscription: ...

    def publish_frame(self, channel: str, stamp: int, number: int) -> bytes: ...


class WspoolDialect:
    """The node's own protocol (docs/protocol.md): JSON frames with a ``type``."""

    name = "wspool"
    data_prefix = b'{"type":"data"'
    batched = False

    def path(self, path: str) -> str:
        return path

    def greet(self, connection: WireConnection) -> None:
        pass  # the node speaks first: ``connected``

    def on_control(self, connection: WireConnection, payload: bytes) -> None:
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "connected":
            connection.server_id = str(message.get("payload", {}).get("serverId", ""))
            connection.mark_open()
            return
        if kind == "error":
            connection.errors.append(str(message.get("payload", {}).get("code")))
        connection.answer(str(message.get("messageId")), message)

    async def subscribe(
        self, connection: WireConnection, channel: str, since: str = ""
    ) -> Subscription:
        message_id = f"r{next(_ids)}"
        request: dict[str, str] = {"type": "subscribe", "channel": channel}
        if since:
            request["since"] = since  # resume after this position (docs/recovery.md)
        request["messageId"] = message_id
        reply = await connection.request(message_id, json.dumps(request).encode())
        if reply.get("type") != "subscribed":
            return Subscription(problem=str(reply.get("payload")))
        return Subscription(None, str(reply.get("offset") or ""), reply.get("recovered"))

    def publish_frame(self, channel: str, stamp: int, number: int) -> bytes:
        return b'{"type":"data","channel":"%s","payload":%d,"messageId":"%d"}' % (
            channel.encode(),
            stamp,
            number,
        )


class SocketIODialect:
    """The peer's protocol: ``subscribe`` joins a room, ``publish`` emits ``data`` to it."""

    name = "socketio"
    data_prefix = b'42["data",'
    batched = False

    def path(self, path: str) -> str:
        return f"{path}?EIO=4&transport=websocket"

    def greet(self, connection: WireConnection) -> None:
        pass  # the server speaks first: Engine.IO's open ``0{...}``

    def on_control(self, connection: WireConnection, payload: bytes) -> None:
        if payload == b"2":  # Engine.IO ping
            connection.send_text(b"3")
        elif payload.startswith(b"0{"):  # Engine.IO open: join the default namespace
            connection.send_text(b"40")
        elif payload.startswith(b"40"):
            body = json.loads(payload[2:] or b"{}")
            connection.server_id = str(body.get("sid", ""))
            connection.mark_open()
        elif payload.startswith(b"43"):  # ack: 43<id>[...]
            end = payload.index(b"[")
            connection.answer(payload[2:end].decode(), {"ack": json.loads(payload[end:])})
        elif payload.startswith(b"44"):  # namespace connect refused
            connection.errors.append("CONNECT_ERROR")
            connection.fail(ConnectionError(payload.decode(errors="replace")))
        elif payload.startswith(b"1"):  # Engine.IO close
            connection.fail(ConnectionError("server closed the Engine.IO session"))

    async def subscribe(
        self, connection: WireConnection, channel: str, since: str = ""
    ) -> Subscription:
        # Socket.IO rooms keep no history: ``since`` has nothing to resume from.
        ack = str(next(_ids))
        frame = b'42%s["subscribe",%s]' % (ack.encode(), json.dumps(channel).encode())
        reply: dict[str, Any] = await connection.request(ack, frame)
        if reply.get("ack") == ["subscribed"]:
            return Subscription()
        return Subscription(problem=f"ack {reply.get('ack')}")

    def publish_frame(self, channel: str, stamp: int, number: int) -> bytes:
        return b'42["publish",{"channel":"%s","payload":%d}]' % (channel.encode(), stamp)


def centrifugo_token(secret: str, user: str = "wspool-bench") -> str:
    """A connection token Centrifugo accepts with ``client.token.hmac_secret_key`` = secret."""
    return jwt.encode({"sub": user}, secret, algorithm="HS256")


class CentrifugoDialect:
    """Centrifugo's JSON protocol: ``connect`` with a JWT, ``subscribe``, ``publish``."""

    name = "centrifugo"
    data_prefix = b'{"push":{"channel":'
    batched = True

    def __init__(self, token: str = "") -> None:
        self.token = token

    def path(self, path: str) -> str:
        return path

    def greet(self, connection: WireConnection) -> None:
        connect = {"id": next(_ids), "connect": {"token": self.token, "name": "wspool-bench"}}
        connection.send_text(json.dumps(connect).encode())

    def on_control(self, connection: WireConnection, payload: bytes) -> None:
        if payload == b"{}":  # the server's ping
            connection.send_text(b"{}")
            return
        if payload.endswith(b'"publish":{}}'):  # a publish went through: nothing to do
            return
        message = json.loads(payload)
        if "connect" in message:
            connection.mark_open()
            return
        if "error" in message:
            connection.errors.append(str(message["error"].get("code")))
            if not connection.opened.done():  # the connect command was refused
                connection.fail(ConnectionError(f"connect refused: {message['error']}"))
                return
        if "id" in message:
            connection.answer(str(message["id"]), message)

    async def subscribe(
        self, connection: WireConnection, channel: str, since: str = ""
    ) -> Subscription:
        # Without history configured (as in the bench), there is no position to resume from.
        command_id = next(_ids)
        command = {"id": command_id, "subscribe": {"channel": channel}}
        reply = await connection.request(str(command_id), json.dumps(command).encode())
        if "subscribe" in reply:
            return Subscription()
        error = reply.get("error", {})
        return Subscription(problem=f"{error.get('code')} {error.get('message')}")

    def publish_frame(self, channel: str, stamp: int, number: int) -> bytes:
        return b'{"id":%d,"publish":{"channel":"%s","data":{"payload":%d}}}' % (
            number + 1,  # 0 is no id: Centrifugo takes it for a pong
            channel.encode(),
            stamp,
        )


DIALECTS: dict[str, Dialect] = {"wspool": WspoolDialect(), "socketio": SocketIODialect()}
"""The dialects that need no credential; :func:`dialect_for` makes Centrifugo's."""


def dialect_for(name: str, token: str = "") -> Dialect:
    """The dialect called ``name``; Centrifugo's presents ``token`` when it connects."""
    if name == "centrifugo":
        return CentrifugoDialect(token)
    return DIALECTS[name]
