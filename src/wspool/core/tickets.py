"""Connection tickets: the gateway's signed word that a connection may open on one node.

In direct mode the gateway picks a node, reserves a connection id and hands the client a
ticket; the node accepts the WebSocket only with a valid, unexpired ticket naming itself,
so clients cannot bypass the strategy, the pool limit or a draining node. The relay path
mints one per upstream connection the same way; in a seamless pool its ``hov`` claim tells
the node that the gateway takes a drain's handover notice instead of the close
(``wspool.gateway.handover``). A ticket is a compact JWT (RFC 7519, HS256) whose audience
is the node, with the reserved connection id as ``jti``.

A ticket opens one connection, for the client it names, within its lifetime: the node
that accepts it marks its ``jti`` used until it expires (:func:`ticket_refusal` is the rule
on who may use it). A direct-mode ticket names its client (``sub``); a relay ticket names
none (its ``sub`` is its ``jti``), because the gateway relays the client's own credentials
and ``clientId`` and the node judges them as it judges a direct client's. So does a
direct-mode ticket asked for without a ``clientId`` in open mode: anyone may ask for any
id there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jwt

from wspool.core.auth import CLIENT_ID_RULE, is_client_id

__all__ = [
    "TICKET_TTL",
    "Ticket",
    "TicketError",
    "issue_ticket",
    "ticket_refusal",
    "used_for",
    "verify_ticket",
]

TICKET_TTL = 30.0
"""Seconds a ticket stays valid: long enough to connect, too short to be worth stealing."""

_LEEWAY = 2.0
"""Clock skew tolerated between the gateway and the nodes."""


class TicketError(Exception):
    """The ticket is missing, forged, expired, used, or meant for another node or client."""


@dataclass(frozen=True, slots=True)
class Ticket:
    connection_id: str
    client_id: str | None
    """The client the ticket is for; None when the node decides (a relay ticket)."""
    server_id: str
    expires_at: float = field(default=0.0, compare=False)
    handover: bool = False
    """Whether the gateway takes a drain's handover notice instead of the close (a relay
    ticket of a seamless pool)."""


def _audience(server_id: str) -> str:
    return f"wspool-node:{server_id}"


def issue_ticket(secret: str, ticket: Ticket, now: float, ttl: float = TICKET_TTL) -> str:
    claims = {
        "aud": _audience(ticket.server_id),
        # A ticket naming no client names its connection instead, as tickets always did for
        # anonymous clients: nodes and gateways of either side of an upgrade read it alike.
        "sub": ticket.connection_id if ticket.client_id is None else ticket.client_id,
        "jti": ticket.connection_id,
        "iat": int(now),
        "exp": int(now + ttl) + 1,
    }
    if ticket.handover:
        claims["hov"] = True
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
    client_id, connection_id = claims["sub"], claims["jti"]
    if not isinstance(connection_id, str) or not isinstance(client_id, str):
        raise TicketError("invalid ticket: malformed claims")
    named = None if client_id == connection_id else client_id
    if named is not None and not is_client_id(named):
        raise TicketError(f"invalid ticket: sub must be {CLIENT_ID_RULE}")
    return Ticket(connection_id, named, server_id, float(claims["exp"]), claims.get("hov") is True)


def used_for(ticket: Ticket, now: float) -> float:
    """Seconds to keep a ticket marked used: until no node would take it any more."""
    return max(1.0, ticket.expires_at + _LEEWAY - now)


def ticket_refusal(ticket: Ticket, client_id: str | None) -> str | None:
    """Why a connection of ``client_id`` (from its token, or the ``clientId`` it asks for;
    None when it names none) may not use ``ticket``; None when it may."""
    if ticket.client_id is None or client_id is None or client_id == ticket.client_id:
        return None
    return "ticket is for another client"
