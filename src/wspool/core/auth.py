"""Who a client is and what it may do: JSON Web Tokens, channel permissions, admin access.

Pure: the key material arrives as text (the command line reads files and environment) and
verification runs in memory with PyJWT. A :class:`Verifier` turns a token into
:class:`Claims` or raises :class:`AuthError`; :func:`token_from_handshake` finds the token in
a WebSocket handshake (for browsers, among the :func:`offered_subprotocols`);
:func:`authorize_api` decides whether a REST call may proceed, :func:`authorize_publish`
whether a REST publish may.

Token claims (docs/security.md): ``sub`` is the client id, ``exp`` is required, ``nbf`` is
honoured, ``iss``/``aud`` are checked when configured, and

    "channels": {"subscribe": ["prices.*", "news"], "publish": ["chat.room-1"]},
    "roles": ["admin"]

grant channel patterns (shell-style globs: ``*``, ``?``) and roles. A token without
``channels`` may neither subscribe nor publish.

A token is JSON input like any other: at most :data:`~wspool.core.jsoninput.MAX_TOKEN_BYTES`,
its header and claims nested at most :data:`~wspool.core.jsoninput.MAX_DEPTH` levels, checked
before PyJWT parses anything.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeGuard
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from wspool.core import jsoninput

__all__ = [
    "ADMIN_ROLE",
    "CLIENT_ID_RULE",
    "MIN_SECRET_BYTES",
    "SUBPROTOCOL",
    "ApiAccess",
    "ApiPolicy",
    "AuthError",
    "ChannelPatterns",
    "Claims",
    "PermissionDeniedError",
    "Verifier",
    "authorize_api",
    "authorize_publish",
    "is_client_id",
    "offered_subprotocols",
    "open_claims",
    "parse_jwks",
    "token_from_handshake",
]

SUBPROTOCOL = "wspool"
"""The subprotocol a node selects when a client offers it (with the token beside it)."""

_BEARER_PREFIX = "bearer."
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key must be at least as long as the hash
ADMIN_ROLE = "admin"
MAX_PATTERNS = 256
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
CLIENT_ID_RULE = "1-128 characters of letters, digits and . _ : @ -"
"""What a client id must be, wherever it comes from: a token's ``sub``, a node's or a
gateway's ``?clientId=``, the body of ``POST /api/v1/connections``, the client a ticket names."""


def is_client_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a client id by :data:`CLIENT_ID_RULE` (the one check of it)."""
    return isinstance(value, str) and _CLIENT_ID.fullmatch(value) is not None


class AuthError(Exception):
    """No credential, or one that is not valid: the REST API answers 401, a node 401 or 1008."""


class PermissionDeniedError(Exception):
    """A valid credential that does not allow this: 403, or ``FORBIDDEN`` on the wire."""


class ChannelPatterns:
    """A set of glob patterns, compiled once into one regular expression."""

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(fnmatch.translate(p) for p in self.patterns)
        self._regex = re.compile(joined) if joined else None

    def allows(self, channel: str) -> bool:
        return self._regex is not None and self._regex.match(channel) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChannelPatterns) and self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"ChannelPatterns({list(self.patterns)!r})"


NOTHING = ChannelPatterns(())
EVERYTHING = ChannelPatterns(("*",))


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who the client is, until when, and what it may do."""

    client_id: str
    expires_at: float | None = None
    subscribe: ChannelPatterns = NOTHING
    publish: ChannelPatterns = NOTHING
    roles: frozenset[str] = field(default_factory=frozenset)

    def may_subscribe(self, channel: str) -> bool:
        return self.subscribe.allows(channel)

    def may_publish(self, channel: str) -> bool:
        return self.publish.allows(channel)


def open_claims(client_id: str) -> Claims:
    """The claims of every client when authentication is off (``--insecure``, ``wspool dev``)."""
    return Claims(client_id, None, EVERYTHING, EVERYTHING, frozenset())


def _patterns(raw: Any, name: str) -> ChannelPatterns:
    if raw is None:
        return NOTHING
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise AuthError(f"claim channels.{name} must be a list of non-empty strings")
    if len(raw) > MAX_PATTERNS:
        raise AuthError(f"claim channels.{name} holds more than {MAX_PATTERNS} patterns")
    return ChannelPatterns(raw)


def _claims(payload: Mapping[str, Any]) -> Claims:
    sub = payload.get("sub")
    if not is_client_id(sub):
        raise AuthError(f"claim sub must be {CLIENT_ID_RULE}")
    channels = payload.get("channels", {})
    if not isinstance(channels, dict):
        raise AuthError("claim channels must be an object with subscribe and publish lists")
    roles = payload.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("claim roles must be a list of strings")
    return Claims(
        client_id=sub,
        expires_at=float(payload["exp"]),
        subscribe=_patterns(channels.get("subscribe"), "subscribe"),
        publish=_patterns(channels.get("publish"), "publish"),
        roles=frozenset(roles),
    )


def _public_key(pem: str) -> tuple[Any, list[str]]:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise ValueError("not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("RSA keys must have at least 2048 bits")
        return key, ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, ["ES256"]
    raise ValueError("only RSA (RS256) and P-256 (ES256) public keys are supported")


class Verifier:
    """Verifies tokens against one key source: a shared secret, a public key, or a JWKS.

    The accepted algorithm follows from the key, never from the token's header, so a token
    cannot pick ``none`` or sign with HS256 using the public key as the secret.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key_pem: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 5.0,
    ) -> None:
        """Raise ``ValueError`` (with the reason) for unusable key material."""
        if sum(source is not None for source in (secret, public_key_pem, jwks)) != 1:
            raise ValueError("give exactly one of a secret, a public key or a JWKS")
        self._keys: dict[str | None, tuple[Any, list[str]]] = {}
        if secret is not None:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"an HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
            self._keys[None] = (secret.encode(), ["HS256"])
        elif public_key_pem is not None:
            self._keys[None] = _public_key(public_key_pem)
        else:
            assert jwks is not None
            try:
                keyset = jwt.PyJWKSet.from_dict(dict(jwks))
            except (jwt.PyJWTError, AttributeError, TypeError) as error:
                raise ValueError(f"not a usable JWKS: {error}") from None
            for key in keyset.keys:
                if key.algorithm_name in ("RS256", "ES256"):
                    self._keys[key.key_id] = (key.key, [key.algorithm_name])
            if not self._keys:
                raise ValueError("the JWKS holds no RS256 or ES256 key")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if None in self._keys and len(self._keys) == 1:
            return self._keys[None]
        kid = jwt.get_unverified_header(token).get("kid")
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise AuthError("token signed by an unknown key (kid)")

    def verify(self, token: str) -> Claims:
        """The token's claims, or :class:`AuthError` saying why it is refused."""
        _check_json(token)
        try:
            key, algorithms = self._key_for(token)
            payload = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"invalid token: {error}") from None
        except (ValueError, TypeError, KeyError):  # malformed input PyJWT does not wrap
            raise AuthError("invalid token: malformed") from None
        return _claims(payload)


def _check_json(token: str) -> None:
    """Hold the token's header and claims to the rule of every JSON input."""
    if len(token) > jsoninput.MAX_TOKEN_BYTES:
        raise AuthError(f"invalid token: exceeds {jsoninput.MAX_TOKEN_BYTES} bytes")
    for part, what in zip(token.split(".")[:2], ("header", "claims"), strict=False):
        try:
            text = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            return  # not base64: PyJWT says so
        try:
            jsoninput.check(text, max_bytes=jsoninput.MAX_TOKEN_BYTES, what=f"token {what}")
        except jsoninput.JsonInputError as error:
            raise AuthError(f"invalid token: {error}") from None


def offered_subprotocols(headers: Iterable[str]) -> list[str]:
    """The subprotocols a client offered, from its ``Sec-WebSocket-Protocol`` headers
    (RFC 6455 §11.3.4: comma-separated, and the header may repeat)."""
    return [name.strip() for header in headers for name in header.split(",") if name.strip()]


def token_from_handshake(
    authorization: str | None, query: str, subprotocols: Sequence[str]
) -> str | None:
    """The token a client presented, in order: ``Authorization: Bearer``, ``?token=``,
    or the subprotocol ``bearer.<token>`` offered beside ``wspool`` (browsers cannot set
    headers on a WebSocket). Raises :class:`AuthError` for a malformed presentation."""
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return token.strip()
    tokens = parse_qs(query).get("token")
    if tokens:
        if len(tokens) > 1:
            raise AuthError("give one token query parameter")
        return tokens[0]
    offered = [p for p in subprotocols if p.startswith(_BEARER_PREFIX)]
    if offered:
        if len(offered) > 1 or SUBPROTOCOL not in subprotocols:
            raise AuthError(
                f"offer the subprotocols '{SUBPROTOCOL}' and one 'bearer.<token>' together"
            )
        return offered[0][len(_BEARER_PREFIX) :]
    return None


class ApiAccess(StrEnum):
    """What a REST call does: reads (GET) or changes (config, closing connections)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class ApiPolicy:
    """Who may call the REST API. ``verifier`` None with ``insecure`` opens everything."""

    verifier: Verifier | None = None
    admin_token: str | None = None
    open_reads: bool = False
    insecure: bool = False


def authorize_api(policy: ApiPolicy, access: ApiAccess, authorization: str | None) -> Claims | None:
    """Allow a REST call or raise: :class:`AuthError` → 401, :class:`PermissionDeniedError`
    → 403. An admin credential is the static admin token, or a token with the ``admin``
    role. Returns the caller's claims when a token was checked."""
    if policy.insecure or (access is ApiAccess.READ and policy.open_reads):
        return None
    claims = _api_caller(policy, authorization, "this call needs an admin credential")
    if claims is not None and ADMIN_ROLE not in claims.roles:
        raise PermissionDeniedError(f"this call needs the {ADMIN_ROLE!r} role")
    return claims


def authorize_publish(
    policy: ApiPolicy, authorization: str | None
) -> Callable[[Iterable[str]], None]:
    """Check the credential of a REST publish; returns the check of its channels.

    The caller is known before the body is read (strangers get nothing parsed); the
    returned function raises :class:`PermissionDeniedError` unless every channel is one an
    admin credential, or the token's ``channels.publish`` patterns, allow.
    """
    if policy.insecure:
        return _allow_all
    claims = _api_caller(
        policy, authorization, "publishing needs an admin credential or a token that may publish"
    )
    if claims is None or ADMIN_ROLE in claims.roles:
        return _allow_all

    def check(channels: Iterable[str]) -> None:
        for channel in channels:
            if not claims.may_publish(channel):
                raise PermissionDeniedError(f"this token may not publish to {channel}")

    return check


def _allow_all(channels: Iterable[str]) -> None:
    """The channel check of an admin credential: every channel."""


def _api_caller(policy: ApiPolicy, authorization: str | None, needed: str) -> Claims | None:
    """The claims of the token shown, or None for the static admin token."""
    if authorization is None:
        raise AuthError(f"{needed}: Authorization: Bearer <token>")
    token = token_from_handshake(authorization, "", ())
    assert token is not None
    if policy.admin_token is not None and hmac.compare_digest(
        token.encode(), policy.admin_token.encode()
    ):
        return None
    if policy.verifier is None:
        raise AuthError("invalid admin token")
    return policy.verifier.verify(token)


def parse_jwks(text: str) -> dict[str, Any]:
    """A JWKS document from its JSON text; ``ValueError`` when it is not one."""
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is a JSON object with a "keys" list')
    return document
