"""The node control channel: commands the pool manager (the gateway's REST API) sends a node.

Each node listens on a channel of its own, :func:`channel`, carried by the same pub/sub as
WebSocket channels. Its name starts with ``#``, outside the wire protocol's channel alphabet,
so no client can subscribe or publish to it; and it keeps no history
(:func:`is_control_channel`): a command is for whoever listens now, and a node that was not
listening learns of closes from their tombstones instead.

A command travels as a compact JSON object, ``{"command": "close", "connectionId": "…"}`` or
``{"command": "drain"}``; :func:`encode` writes one and :func:`decode` reads one back, with
:class:`ControlError` saying what is wrong with a malformed frame. The bus adds an
``"offset"`` member to every frame it carries; members a command does not name are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CloseConnection",
    "Command",
    "ControlError",
    "DrainNode",
    "channel",
    "decode",
    "encode",
    "is_control_channel",
]

_PREFIX = "#node:"


def channel(server_id: str) -> str:
    """The channel on which node ``server_id`` takes commands."""
    return f"{_PREFIX}{server_id}"


def is_control_channel(name: str) -> bool:
    """Whether ``name`` is a node's control channel (and so keeps no history)."""
    return name.startswith(_PREFIX)


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the connection ``connection_id`` (1000, "closed by the pool manager")."""

    connection_id: str


@dataclass(frozen=True, slots=True)
class DrainNode:
    """Drain: take no new connections, close every client with 1012 over the drain window,
    then stop (as on SIGTERM)."""


Command = CloseConnection | DrainNode
"""Every command a node takes."""


class ControlError(ValueError):
    """A control frame that is not a command; the message says why."""


def encode(command: Command) -> str:
    """The frame that carries ``command``."""
    fields = (
        {"command": "drain"}
        if isinstance(command, DrainNode)
        else {"command": "close", "connectionId": command.connection_id}
    )
    return json.dumps(fields, separators=(",", ":"))


def decode(frame: str) -> Command:
    """The command a frame carries; :class:`ControlError` when it carries none."""
    try:
        document: Any = json.loads(frame)
    except ValueError:
        raise ControlError("a command must be JSON") from None
    if not isinstance(document, dict):
        raise ControlError("a command must be a JSON object")
    name = document.get("command")
    if name == "drain":
        return DrainNode()
    if name != "close":
        raise ControlError(f"unknown command {name!r:.64}")
    connection_id = document.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        raise ControlError("close needs a connectionId (a non-empty string)")
    return CloseConnection(connection_id)
