"""The node's guard: who may connect, what each connection may do, and how much of it.

The rules come from :mod:`wspool.core.auth`, :mod:`wspool.server.model.ratelimit` and the security
settings; this module applies them at the three points a node offers:

- the handshake (:meth:`Guard.check_handshake`): Origin allow-list (403), connection
  attempts per client address across the pool (429), a valid token (401);
- the start of a connection (:meth:`Guard.admit`): open connections per client address
  across the pool (``RATE_LIMITED``, then close 1013), and a timer that closes the
  connection with 1008 when its token expires;
- every client frame (:meth:`Guard.meter`, :meth:`Guard.screen`): messages per second
  (``RATE_LIMITED``; persistent abuse closes with 1008), channel permissions
  (``FORBIDDEN``), channels per connection (``RATE_LIMITED``), and ``auth`` renewals.

If the store is unreachable, the pool-wide limits let connections through (the node is
degraded, not closed); the per-connection limits hold regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from wspool.core.addresses import client_address
from wspool.core.auth import (
    SUBPROTOCOL,
    AuthError,
    Claims,
    offered_subprotocols,
    open_claims,
    token_from_handshake,
)
from wspool.core.config import ServerSettings
from wspool.core.protocol import (
    ClientMessage,
    CloseCode,
    ErrorCode,
    MessageType,
    ProtocolError,
    encode_authenticated,
    encode_error,
)
from wspool.server.http import refusal
from wspool.server.model.ratelimit import MessageLimiter, Verdict
from wspool.server.session import Session
from wspool.state.engine import AddressLimits, EngineUnavailableError
from wspool.tasks import cancel_and_wait

__all__ = ["Answer", "CloseHandler", "Guard", "select_subprotocol"]

log = logging.getLogger(__name__)

ATTEMPT_WINDOW = 1.0
"""Seconds over which connection attempts per address are counted."""

CloseHandler = Callable[[Session, CloseCode, str], None]


def select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Select ``wspool`` when offered (a token may ride beside it as ``bearer.<token>``,
    which is never echoed back); clients that offer nothing get no subprotocol."""
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in subprotocols else None


@dataclass(frozen=True, slots=True)
class Answer:
    """The guard's own reply to a frame, and the channels the connection must leave."""

    frame: str
    revoked: tuple[str, ...] = ()


@dataclass(slots=True)
class _Admission:
    address: str
    claims: Claims | None


@dataclass(slots=True)
class _Watch:
    """What the guard keeps per open connection."""

    address: str
    claims: Claims
    limiter: MessageLimiter | None
    expiry: asyncio.TimerHandle | None = None
    counted: bool = False


class Guard:
    """Applies the security settings of one node."""

    def __init__(
        self, settings: ServerSettings, limits: AddressLimits, close: CloseHandler
    ) -> None:
        self.security = settings.security
        self.verifier = self.security.verifier()  # ConfigError: no key and not --insecure
        self._trusted = self.security.trusted_networks
        self._limits = limits
        self._close = close
        self._slot_ttl = settings.node_ttl
        self._refresh_interval = settings.heartbeat_interval
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, _Admission] = (
            weakref.WeakKeyDictionary()
        )
        self._watches: dict[str, _Watch] = {}
        self._addresses: dict[str, set[str]] = {}
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.security.max_connections_per_ip:
            self._refresher = asyncio.create_task(self._refresh_slots(), name="address-slots")

    async def stop(self) -> None:
        await cancel_and_wait(self._refresher)
        self._refresher = None

    # handshake ---------------------------------------------------------------------------

    async def check_handshake(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """A refusal response, or None to let the WebSocket handshake go on."""
        try:
            return await self._check_handshake(connection, request)
        except MultipleValuesError as error:  # e.g. two Authorization headers
            return refusal(
                connection,
                HTTPStatus.BAD_REQUEST,
                ErrorCode.BAD_REQUEST,
                f"repeated header {error.args[0] if error.args else ''}".strip(),
            )

    async def _check_handshake(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        headers = request.headers
        security = self.security
        if not security.origin_allowed(headers.get("Origin")):
            return refusal(
                connection, HTTPStatus.FORBIDDEN, ErrorCode.FORBIDDEN, "origin not allowed"
            )
        address = client_address(
            str(connection.remote_address[0]), headers.get_all("X-Forwarded-For"), self._trusted
        )
        limit = security.connection_attempts_per_ip
        if limit and not await self._allowed(
            self._limits.record_attempt(address, limit, ATTEMPT_WINDOW)
        ):
            response = refusal(
                connection,
                HTTPStatus.TOO_MANY_REQUESTS,
                ErrorCode.RATE_LIMITED,
                f"more than {limit} connection attempts per second from {address}",
            )
            response.headers["Retry-After"] = "1"
            return response
        claims = None
        if self.verifier is not None:
            try:
                token = token_from_handshake(
                    headers.get("Authorization"),
                    urlsplit(request.path).query,
                    offered_subprotocols(headers.get_all("Sec-WebSocket-Protocol")),
                )
                if token is None:
                    raise AuthError(
                        "a token is required: Authorization: Bearer, ?token=, "
                        f"or the subprotocols {SUBPROTOCOL}, bearer.<token>"
                    )
                claims = self.verifier.verify(token)
            except AuthError as error:
                return refusal(
                    connection, HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED, str(error)
                )
        self._admitted[connection] = _Admission(address, claims)
        return None

    def token_client(self, connection: ServerConnection) -> str | None:
        """The client id a handshake's token proved, once :meth:`check_handshake` let it
        through; None without authentication."""
        admission = self._admitted.get(connection)
        return admission.claims.client_id if admission and admission.claims else None

    async def _allowed(self, check: Awaitable[bool]) -> bool:
        try:
            return await check
        except EngineUnavailableError:
            return True  # degraded: the pool-wide limit cannot be read, so it does not apply

    # connections -------------------------------------------------------------------------

    async def admit(
        self, websocket: ServerConnection, connection_id: str, fallback_client_id: str
    ) -> Claims | None:
        """The connection's claims, or None after refusing it (error frame, close 1013)."""
        admission = self._admitted.pop(websocket, None)
        if admission is None:  # a handshake that skipped check_handshake: never expected
            await websocket.close(CloseCode.INTERNAL_ERROR, "not admitted")
            return None
        claims = admission.claims or open_claims(fallback_client_id)
        limit = self.security.max_connections_per_ip
        counted = False
        if limit:
            try:
                counted = await self._limits.acquire_address_slot(
                    admission.address, connection_id, limit, self._slot_ttl
                )
            except EngineUnavailableError:
                counted = False
            else:
                if not counted:
                    message = f"more than {limit} connections from {admission.address}"
                    await websocket.send(encode_error(ErrorCode.RATE_LIMITED, message))
                    await websocket.close(CloseCode.TRY_AGAIN_LATER, "too many connections")
                    return None
        rate = self.security.messages_per_second
        limiter = (
            MessageLimiter(rate, self.security.message_burst, time.monotonic()) if rate else None
        )
        self._watches[connection_id] = _Watch(admission.address, claims, limiter, None, counted)
        if counted:
            self._addresses.setdefault(admission.address, set()).add(connection_id)
        return claims

    def attach(self, session: Session) -> None:
        """Start the expiry timer of a connection admitted under ``session.id``."""
        watch = self._watches[session.id]
        self._schedule_expiry(session, watch)

    async def release(self, session: Session) -> None:
        """Forget a closed connection and free its slot."""
        watch = self._watches.pop(session.id, None)
        if watch is None:
            return
        if watch.expiry is not None:
            watch.expiry.cancel()
        if watch.counted:
            ids = self._addresses.get(watch.address)
            if ids is not None:
                ids.discard(session.id)
                if not ids:
                    del self._addresses[watch.address]
            with contextlib.suppress(EngineUnavailableError):
                await self._limits.release_address_slot(watch.address, session.id)

    def _schedule_expiry(self, session: Session, watch: _Watch) -> None:
        if watch.expiry is not None:
            watch.expiry.cancel()
            watch.expiry = None
        expires_at = watch.claims.expires_at
        if expires_at is None:
            return
        delay = expires_at + self.security.jwt_leeway - time.time()
        loop = asyncio.get_running_loop()
        watch.expiry = loop.call_at(loop.time() + max(0.0, delay), self._expire, session)

    def _expire(self, session: Session) -> None:
        log.info("token expired", extra={"connectionId": session.id})
        self._close(session, CloseCode.POLICY_VIOLATION, "token expired")

    async def _refresh_slots(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            if self._addresses:
                with contextlib.suppress(EngineUnavailableError):
                    await self._limits.refresh_address_slots(self._addresses, self._slot_ttl)

    # frames ------------------------------------------------------------------------------

    def meter(self, session: Session) -> None:
        """Count one client frame; raise ``RATE_LIMITED`` over the rate, close on abuse."""
        watch = self._watches.get(session.id)
        if watch is None or watch.limiter is None:
            return
        now = time.monotonic()
        verdict = watch.limiter.check(now)
        if verdict is Verdict.ACCEPT:
            return
        rate = self.security.messages_per_second
        if verdict is Verdict.CLOSE and not session.closing:
            session.closing = True
            log.warning("closing: message rate abuse", extra={"connectionId": session.id})
            self._close(session, CloseCode.POLICY_VIOLATION, "message rate abuse")
        raise ProtocolError(
            ErrorCode.RATE_LIMITED,
            f"over {rate:g} messages per second; retry in {watch.limiter.retry_after(now):.2f}s",
        )

    def screen(self, session: Session, message: ClientMessage) -> Answer | None:
        """Check a parsed frame against the token; an :class:`Answer` when the guard
        handled it (``auth``), None to let the node dispatch it. Raises ProtocolError."""
        watch = self._watches[session.id]
        claims = watch.claims
        channel = message.channel
        match message.type:
            case MessageType.SUBSCRIBE:
                assert channel is not None
                if not claims.may_subscribe(channel):
                    raise ProtocolError(
                        ErrorCode.FORBIDDEN,
                        f"the token does not allow subscribing to {channel}",
                        message.message_id,
                    )
                limit = self.security.max_channels_per_connection
                if limit and channel not in session.channels and len(session.channels) >= limit:
                    raise ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"at most {limit} channels per connection",
                        message.message_id,
                    )
            case MessageType.DATA:
                assert channel is not None
                if not claims.may_publish(channel):
                    raise ProtocolError(
                        ErrorCode.FORBIDDEN,
                        f"the token does not allow publishing to {channel}",
                        message.message_id,
                    )
            case MessageType.AUTH:
                return self._renew(session, watch, message)
        return None

    def _renew(self, session: Session, watch: _Watch, message: ClientMessage) -> Answer:
        if self.verifier is None:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "this node does not check tokens", message.message_id
            )
        try:
            claims = self.verifier.verify(message.payload["token"])
        except AuthError as error:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(error), message.message_id) from None
        if claims.client_id != session.client_id:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                "a fresh token must name the same client (sub)",
                message.message_id,
            )
        watch.claims = claims
        self._schedule_expiry(session, watch)
        revoked = tuple(sorted(c for c in session.channels if not claims.may_subscribe(c)))
        return Answer(
            encode_authenticated(message.message_id, claims.client_id, claims.expires_at),
            revoked,
        )
