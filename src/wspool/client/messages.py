"""What a :class:`wspool.client.Client` hands to the application: typed, immutable messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AuthenticationError", "Data", "Error", "Message", "RequestError", "Resubscribed"]


@dataclass(frozen=True, slots=True)
class Data:
    """A message published on a channel the client subscribes to."""

    channel: str
    payload: Any
    message_id: str
    offset: str | None
    """The message's position in its channel's history (``"<epoch>:<n>"``)."""


@dataclass(frozen=True, slots=True)
class Resubscribed:
    """The client reconnected and subscribed to ``channel`` again.

    ``recovered`` is True when every message published meanwhile follows (replayed from the
    channel's history); False when the history no longer held them all, so the application
    should reload its state for this channel: nothing before the next message is replayed.
    """

    channel: str
    recovered: bool
    server_id: str


@dataclass(frozen=True, slots=True)
class Error:
    """An ``error`` frame not tied to a request the client awaits: a refused publish, or a
    resubscribe after a reconnect refused for good (``channel``: the client no longer
    receives it)."""

    code: str
    message: str
    message_id: str | None
    channel: str | None = None


Message = Data | Resubscribed | Error


class RequestError(Exception):
    """The server refused a request (``subscribe``, ``unsubscribe``, ``ping``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AuthenticationError(Exception):
    """The pool refused the client's credential (401/403 at the handshake), or the token
    provider gave none: the client stops, since trying again would only be refused again.

    ``connect()``, ``publish()``, ``subscribe()`` and ``ping()`` raise it from then on, and
    ``messages()`` ends after an :class:`Error` with code ``UNAUTHORIZED``.
    """
