"""The client's credentials: a token provider, when to renew, and URLs fit for a log.

The application hands the client a token, or a provider: a callable, plain or async, that
returns a current token. The client calls it before every connection (so a reconnect after
the token expired shows a fresh one) and again before the token's ``exp``, to renew it on
the open connection (``{"type": "auth"}``). The token travels as ``Authorization: Bearer``;
it never appears in a log line of the client's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from wspool.client.messages import AuthenticationError, RequestError

__all__ = [
    "TokenProvider",
    "fetch_token",
    "keep_renewed",
    "loggable_url",
    "refusal_reason",
    "renewal_delay",
    "token_expiry",
]

log = logging.getLogger(__name__)

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns the token to show the pool now; called again whenever one is needed."""

RENEW_AHEAD = 0.2
"""Share of a token's remaining lifetime before its ``exp`` at which the client renews it."""

RENEW_MARGIN = (5.0, 60.0)
"""Least and most seconds before ``exp`` at which the client renews a token."""


async def fetch_token(provider: TokenProvider) -> str:
    """The provider's current token; :class:`AuthenticationError` when it gives none."""
    try:
        token = provider()
        if inspect.isawaitable(token):
            token = await token
    except Exception as error:  # the application's own code: its failure is the app's
        raise AuthenticationError(f"the token provider failed: {type(error).__name__}") from error
    if not isinstance(token, str) or not token:
        raise AuthenticationError("the token provider returned no token")
    return token


def token_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it (the node verifies); None for a
    token that is not a JWT or has no ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    expires = claims.get("exp") if isinstance(claims, dict) else None
    return float(expires) if isinstance(expires, int | float) else None


def renewal_delay(expires_at: float, now: float) -> float:
    """Seconds from ``now`` until a token expiring at ``expires_at`` should be renewed."""
    remaining = expires_at - now
    low, high = RENEW_MARGIN
    margin = min(high, max(low, remaining * RENEW_AHEAD))
    return max(0.0, remaining - margin)


def loggable_url(url: str) -> str:
    """``url`` without its query, where a ``?token=`` would be."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def refusal_reason(body: bytes | bytearray | None) -> str:
    """What a node's refusal says (``{"error": {"message"}}``); a node never echoes a token."""
    try:
        message = json.loads(body or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return "credential refused"
    return str(message)[:200]


async def keep_renewed(
    provider: TokenProvider, token: str, show: Callable[[str], Awaitable[None]]
) -> None:
    """Show the node (``show``: the ``auth`` request) a fresh token ahead of each ``exp``,
    for as long as the provider gives one that lasts longer.

    When none comes (the provider returns the same token, fails, or the node refuses the new
    one), the node closes the connection at ``exp`` and the reconnect asks again.
    """
    expires = token_expiry(token)
    while expires is not None:
        await asyncio.sleep(renewal_delay(expires, time.time()))
        try:
            token = await fetch_token(provider)
        except AuthenticationError as error:
            log.warning("no token to renew with: %s", error)
            return
        renewed = token_expiry(token)
        if renewed is None or renewed <= expires:
            return
        try:
            await show(token)
        except RequestError as error:
            log.warning("the node refused a renewed token: %s", error.code)
            return
        except (ConnectionError, TimeoutError):
            return
        expires = renewed
