"""The security settings shared by server nodes and the gateway, declared once.

Both parts carry a ``security: SecuritySettings`` section and include its options by group:
``auth`` (keys, origins, trusted proxies) everywhere, ``limits`` on the nodes (and ``wspool
dev``), ``admin`` on the gateway; so a key, a limit or a trusted proxy is configured the same
way everywhere. Key files are read at the edge: :meth:`SecuritySettings.read_files` takes the
reader as an argument, so this module stays free of I/O. Without a key,
:meth:`SecuritySettings.verifier` refuses unless ``insecure``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wspool.core import checks
from wspool.core.addresses import IPNetwork, parse_networks
from wspool.core.auth import MIN_SECRET_BYTES, ApiPolicy, Verifier, parse_jwks
from wspool.core.checks import Check, Invalid
from wspool.core.options import ConfigError, Secret, option, secret

__all__ = ["SecuritySettings"]


def _origin(value: Any) -> str:
    text = checks.text(value)
    parts = urlsplit(text)
    if text != "*" and (
        parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query
    ):
        raise Invalid(f"must be origins like https://app.example.com (not {text!r})")
    return text.lower()


_origins = checks.each(Check(_origin), "origins")


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Who may connect and what they may do; limits per address and per connection.

    A limit of 0 turns that limit off.
    """

    insecure: bool = option(
        False,
        "--insecure",
        "WSPOOL_INSECURE",
        checks.boolean,
        "accept every client without a token (development only)",
        switch=True,
        group="auth",
    )
    jwt_secret: Secret | None = option(
        None,
        "--jwt-secret",
        "WSPOOL_JWT_SECRET",
        secret,
        f"HS256 shared secret, >= {MIN_SECRET_BYTES} bytes (prefer the variable or the file:"
        " flags show in ps)",
        metavar="SECRET",
        group="auth",
    )
    jwt_secret_file: str = option(
        "",
        "--jwt-secret-file",
        "WSPOOL_JWT_SECRET_FILE",
        checks.text,
        "file holding the HS256 shared secret",
        metavar="PATH",
        group="auth",
    )
    jwt_public_key_file: str = option(
        "",
        "--jwt-public-key-file",
        "WSPOOL_JWT_PUBLIC_KEY_FILE",
        checks.text,
        "PEM public key: RSA (RS256) or P-256 (ES256)",
        metavar="PATH",
        group="auth",
    )
    jwks_file: str = option(
        "",
        "--jwks-file",
        "WSPOOL_JWKS_FILE",
        checks.text,
        "JWKS document with RS256/ES256 keys, chosen by the token's kid",
        metavar="PATH",
        group="auth",
    )
    jwt_public_key: str = ""
    """PEM text, read from ``jwt_public_key_file``."""
    jwks: str = ""
    """JSON text, read from ``jwks_file``."""
    jwt_issuer: str = option(
        "",
        "--jwt-issuer",
        "WSPOOL_JWT_ISSUER",
        checks.text,
        "required iss",
        metavar="ISSUER",
        group="auth",
    )
    jwt_audience: str = option(
        "",
        "--jwt-audience",
        "WSPOOL_JWT_AUDIENCE",
        checks.text,
        "required aud",
        metavar="AUDIENCE",
        group="auth",
    )
    jwt_leeway: float = option(
        5.0,
        "--jwt-leeway",
        "WSPOOL_JWT_LEEWAY",
        checks.seconds(0),
        "seconds of clock skew allowed on exp and nbf",
        metavar="SECONDS",
        group="auth",
    )
    allowed_origins: tuple[str, ...] = option(
        (),
        "--allowed-origins",
        "WSPOOL_ALLOWED_ORIGINS",
        _origins,
        "comma-separated browser origins allowed to connect (others get 403); empty: any",
        metavar="ORIGINS",
        group="auth",
    )
    trusted_proxies: tuple[str, ...] = option(
        (),
        "--trusted-proxies",
        "WSPOOL_TRUSTED_PROXIES",
        checks.networks,
        "comma-separated addresses/CIDRs whose X-Forwarded-For is believed",
        metavar="CIDRS",
        group="auth",
    )
    max_connections_per_ip: int = option(
        100,
        "--max-connections-per-ip",
        "WSPOOL_MAX_CONNECTIONS_PER_IP",
        checks.integer(0),
        "open connections per client address across the pool; 0: no limit",
        metavar="N",
        group="limits",
    )
    connection_attempts_per_ip: int = option(
        20,
        "--connection-attempts-per-ip",
        "WSPOOL_CONNECTION_ATTEMPTS_PER_IP",
        checks.integer(0),
        "connection attempts per client address per second across the pool; 0: no limit",
        metavar="RATE",
        group="limits",
    )
    messages_per_second: float = option(
        100.0,
        "--messages-per-second",
        "WSPOOL_MESSAGES_PER_SECOND",
        checks.number(0),
        "client messages per second per connection; 0: no limit",
        metavar="RATE",
        group="limits",
    )
    message_burst: int = option(
        200,
        "--message-burst",
        "WSPOOL_MESSAGE_BURST",
        checks.integer(0),
        "messages a connection may send at once above its rate",
        metavar="N",
        group="limits",
    )
    max_channels_per_connection: int = option(
        100,
        "--max-channels-per-connection",
        "WSPOOL_MAX_CHANNELS_PER_CONNECTION",
        checks.integer(0),
        "channels one connection may subscribe to; 0: no limit",
        metavar="N",
        group="limits",
    )
    admin_token: Secret | None = option(
        None,
        "--admin-token",
        "WSPOOL_ADMIN_TOKEN",
        secret,
        "static admin credential for the REST API (a token with role admin also works)",
        metavar="TOKEN",
        group="admin",
    )
    admin_token_file: str = option(
        "",
        "--admin-token-file",
        "WSPOOL_ADMIN_TOKEN_FILE",
        checks.text,
        "file holding the static admin credential",
        metavar="PATH",
        group="admin",
    )
    api_open_reads: bool = option(
        False,
        "--api-open-reads",
        "WSPOOL_API_OPEN_READS",
        checks.boolean,
        "let anyone read the REST API (stats, health, connections)",
        switch=True,
        group="admin",
    )

    def __post_init__(self) -> None:
        if self.messages_per_second > 0 and self.message_burst < 1:
            raise ConfigError("--message-burst", "must be at least 1 with --messages-per-second")

    def read_files(self, read: Callable[[str], str]) -> SecuritySettings:
        """A copy with each ``*_file`` replaced by its content, read with ``read``.

        Secret files (Kubernetes mounts them) often end with a newline; it is stripped.
        """
        changes: dict[str, object] = {}
        for path_field, flag, value_field, hidden in (
            ("jwt_secret_file", "--jwt-secret-file", "jwt_secret", True),
            ("jwt_public_key_file", "--jwt-public-key-file", "jwt_public_key", False),
            ("jwks_file", "--jwks-file", "jwks", False),
            ("admin_token_file", "--admin-token-file", "admin_token", True),
        ):
            path = getattr(self, path_field)
            if not path:
                continue
            try:
                text = read(path)
            except OSError as error:
                raise ConfigError(flag, f"cannot read {path}: {error.strerror or error}") from None
            text = text.strip()
            if not text:
                raise ConfigError(flag, f"{path} is empty")
            changes[value_field] = Secret(text) if hidden else text
            changes[path_field] = ""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def verifier(self) -> Verifier | None:
        """The token verifier, None when ``insecure``; :class:`ConfigError` names what is
        wrong or missing. Call after :meth:`read_files`."""
        sources = [
            (flag, value)
            for flag, value in (
                ("--jwt-secret", self.jwt_secret),
                ("--jwt-public-key-file", self.jwt_public_key or self.jwt_public_key_file),
                ("--jwks-file", self.jwks or self.jwks_file),
            )
            if value
        ]
        if self.insecure:
            if sources:
                raise ConfigError("--insecure", f"contradicts {sources[0][0]}; give one of them")
            return None
        if not sources:
            raise ConfigError(
                "--jwt-secret",
                "give a key to verify tokens (--jwt-secret-file, $WSPOOL_JWT_SECRET, "
                "--jwt-public-key-file or --jwks-file), or --insecure to let anyone connect",
                missing=True,
            )
        if len(sources) > 1:
            raise ConfigError(sources[1][0], f"give only one key source, not also {sources[0][0]}")
        if self.jwt_public_key_file or self.jwks_file:
            raise ConfigError(sources[0][0], "the file was not read")  # a caller's mistake
        flag = sources[0][0]
        try:
            return Verifier(
                secret=self.jwt_secret.reveal() if self.jwt_secret else None,
                public_key_pem=self.jwt_public_key or None,
                jwks=parse_jwks(self.jwks) if self.jwks else None,
                issuer=self.jwt_issuer or None,
                audience=self.jwt_audience or None,
                leeway=self.jwt_leeway,
            )
        except (ValueError, json.JSONDecodeError) as error:
            raise ConfigError(flag, str(error)) from None

    def api_policy(self) -> ApiPolicy:
        """Who may call the gateway's REST API (see :func:`wspool.core.auth.authorize_api`)."""
        verifier = self.verifier()
        return ApiPolicy(
            verifier=verifier,
            admin_token=self.admin_token.reveal() if self.admin_token else None,
            open_reads=self.api_open_reads,
            insecure=self.insecure,
        )

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers send ``Origin``; other clients do not and are not checked here."""
        if not self.allowed_origins or origin is None or "*" in self.allowed_origins:
            return True
        return origin.lower() in self.allowed_origins
