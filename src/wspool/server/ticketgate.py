"""The node's ticket gate: with a ticket secret, a connection opens only on a gateway ticket.

Two steps, around the guard's own handshake checks:

- :meth:`TicketGate.check` before them: the ticket is there, signed by the pool's secret,
  unexpired and for this node (401 otherwise);
- :meth:`TicketGate.use` after them, when the client is known: the ticket is for this
  client (:func:`wspool.core.tickets.ticket_refusal`), and it was never used. Its id is
  marked used atomically in the store (``SET NX``, until the ticket expires), so a ticket
  opens one connection even against a node restarted under the same id; the node also
  remembers the ids it took, so that a store outage does not reopen them here.

A refused attempt does not use the ticket up: a stranger holding someone else's ticket
cannot spend it.
"""

from __future__ import annotations

import time
import weakref
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from wspool.core.protocol import ErrorCode
from wspool.core.tickets import Ticket, TicketError, ticket_refusal, used_for, verify_ticket
from wspool.server.http import refusal
from wspool.state.engine import ConnectionStore, EngineUnavailableError

__all__ = ["TicketGate"]


class TicketGate:
    """Checks and uses up the tickets of one node."""

    def __init__(self, secret: str, server_id: str, store: ConnectionStore) -> None:
        self._secret = secret
        self._server_id = server_id
        self._store = store
        self._checked: weakref.WeakKeyDictionary[ServerConnection, Ticket] = (
            weakref.WeakKeyDictionary()
        )
        self._used: dict[str, float] = {}  # ticket id -> when it can no longer be used

    def check(self, connection: ServerConnection, request: Request) -> Response | None:
        """A refusal, or None when the request carries a valid ticket for this node."""
        token = parse_qs(urlsplit(request.path).query).get("ticket", [""])[0]
        if not token:
            return refusal(
                connection, HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED, "ticket required"
            )
        try:
            self._checked[connection] = verify_ticket(self._secret, token, self._server_id)
        except TicketError as error:
            return refusal(connection, HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED, str(error))
        return None

    async def use(self, connection: ServerConnection, client_id: str | None) -> Response | None:
        """Use the checked ticket for ``client_id`` (None: the client names none); a
        refusal if it is someone else's or used already."""
        ticket = self._checked[connection]
        reason = ticket_refusal(ticket, client_id)
        if reason is None and not await self._first_use(ticket):
            reason = "ticket already used"
        if reason is not None:
            del self._checked[connection]
            return refusal(connection, HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED, reason)
        return None

    def take(self, connection: ServerConnection) -> Ticket | None:
        """The ticket a connection was admitted with (once), for its handler."""
        return self._checked.pop(connection, None)

    async def _first_use(self, ticket: Ticket) -> bool:
        now = time.time()
        for ticket_id in [t for t, lapses in self._used.items() if lapses <= now]:
            del self._used[ticket_id]
        if ticket.connection_id in self._used:
            return False
        ttl = used_for(ticket, now)
        self._used[ticket.connection_id] = now + ttl  # before awaiting: no second may race in
        try:
            first = await self._store.use_ticket(ticket.connection_id, ttl)
        except EngineUnavailableError:
            return True  # this node is the only one that takes it, and it remembers
        return first
