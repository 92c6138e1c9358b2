"""Connection tickets: the gateway's signed word that a connection may open on one node.

In direct mode the gateway picks a node, reserves a connection id and hands the client a
ticket; the node accepts the WebSocket only with a valid, unexpired ticket naming itself,
so clients cannot bypass the strategy, the pool limit or a draining node. The relay path
mints one per upstream connection the same way. A ticket is a compact JWT (RFC 7519,
HS256) whose audience is the node, with the reserved connection id as ``jti``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

__all__ = ["TICKET_TTL", "Ticket", "TicketError", "issue_ticket", "verify_ticket"]

TICKET_TTL = 30.0
"""Seconds a ticket stays valid: long enough to connect, too short to be worth stealing."""

_LEEWAY = 2.0
"""Clock skew tolerated between the gateway and the nodes."""


class TicketError(Exception):
    """The ticket is missing, forged, expired, or meant for another node."""


@dataclass(frozen=True, slots=True)
class Ticket:
    connection_id: str
    client_id: str
    server_id: str


def _audience(server_id: str) -> str:
    return f"wspool-node:{server_id}"


def issue_ticket(secret: str, ticket: Ticket, now: float, ttl: float = TICKET_TTL) -> str:
    claims = {
        "aud": _audience(ticket.server_id),
        "sub": ticket.client_id,
        "jti": ticket.connection_id,
        "iat": int(now),
        "exp": int(now + ttl) + 1,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_ticket(secret: str, token: str, server_id: str) -> Ticket:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=_audience(server_id),
            leeway=_LEEWAY,
            options={"require": ["aud", "exp", "jti", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TicketError("ticket expired") from None
    except jwt.InvalidAudienceError:
        raise TicketError("ticket is for another server") from None
    except jwt.PyJWTError as error:
        raise TicketError(f"invalid ticket: {error}") from None
    return Ticket(connection_id=claims["jti"], client_id=claims["sub"], server_id=server_id)
