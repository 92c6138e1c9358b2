"""The security settings shared by server nodes and the gateway, and their option tables.

Both parts carry a ``security: SecuritySettings`` field and include the same options
(``SECURITY_OPTIONS``; the gateway adds ``ADMIN_OPTIONS``), so a key, a limit or a trusted
proxy is configured the same way everywhere. Key files are read at the edge:
:meth:`SecuritySettings.read_files` takes the reader as an argument, so this module stays
free of I/O. Without a key, :meth:`SecuritySettings.verifier` refuses unless ``insecure``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from wspool.core.addresses import IPNetwork, parse_networks
from wspool.core.auth import ApiPolicy, Verifier, parse_jwks
from wspool.core.options import (
    ConfigError,
    Option,
    Secret,
    parse_boolean,
    parse_list,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_secret,
)

__all__ = [
    "ADMIN_OPTIONS",
    "AUTH_OPTIONS",
    "LIMIT_OPTIONS",
    "SECURITY_OPTIONS",
    "SecuritySettings",
]


def _origin(text: str) -> str:
    parts = urlsplit(text)
    if text != "*" and (
        parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query
    ):
        raise ValueError(f"must be origins like https://app.example.com (not {text!r})")
    return text.lower()


def _network(text: str) -> str:
    parse_networks([text])
    return text


def _path(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Who may connect and what they may do; limits per address and per connection.

    A limit of 0 turns that limit off.
    """

    insecure: bool = False
    jwt_secret: Secret | None = None
    jwt_secret_file: str = ""
    jwt_public_key_file: str = ""
    jwks_file: str = ""
    jwt_public_key: str = ""  # PEM text, from jwt_public_key_file
    jwks: str = ""  # JSON text, from jwks_file
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway: float = 5.0
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    max_connections_per_ip: int = 100
    connection_attempts_per_ip: int = 20
    messages_per_second: float = 100.0
    message_burst: int = 200
    max_channels_per_connection: int = 100
    admin_token: Secret | None = None
    admin_token_file: str = ""
    api_open_reads: bool = False

    def __post_init__(self) -> None:
        if self.messages_per_second > 0 and self.message_burst < 1:
            raise ConfigError("--message-burst", "must be at least 1 with --messages-per-second")

    def read_files(self, read: Callable[[str], str]) -> SecuritySettings:
        """A copy with each ``*_file`` replaced by its content, read with ``read``.

        Secret files (Kubernetes mounts them) often end with a newline; it is stripped.
        """
        changes: dict[str, object] = {}
        for path_field, flag, value_field, secret in (
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
            changes[value_field] = Secret(text) if secret else text
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


AUTH_OPTIONS: tuple[Option, ...] = (
    Option(
        "security.insecure",
        "--insecure",
        "WSPOOL_INSECURE",
        parse_boolean,
        "accept every client without a token (development only)",
        switch=True,
    ),
    Option(
        "security.jwt_secret",
        "--jwt-secret",
        "WSPOOL_JWT_SECRET",
        parse_secret,
        "HS256 shared secret, >= 32 bytes (prefer the variable or the file: flags show in ps)",
        metavar="SECRET",
    ),
    Option(
        "security.jwt_secret_file",
        "--jwt-secret-file",
        "WSPOOL_JWT_SECRET_FILE",
        _path,
        "file holding the HS256 shared secret",
        metavar="PATH",
    ),
    Option(
        "security.jwt_public_key_file",
        "--jwt-public-key-file",
        "WSPOOL_JWT_PUBLIC_KEY_FILE",
        _path,
        "PEM public key: RSA (RS256) or P-256 (ES256)",
        metavar="PATH",
    ),
    Option(
        "security.jwks_file",
        "--jwks-file",
        "WSPOOL_JWKS_FILE",
        _path,
        "JWKS document with RS256/ES256 keys, chosen by the token's kid",
        metavar="PATH",
    ),
    Option(
        "security.jwt_issuer",
        "--jwt-issuer",
        "WSPOOL_JWT_ISSUER",
        _path,
        "required iss",
        metavar="ISSUER",
    ),
    Option(
        "security.jwt_audience",
        "--jwt-audience",
        "WSPOOL_JWT_AUDIENCE",
        _path,
        "required aud",
        metavar="AUDIENCE",
    ),
    Option(
        "security.jwt_leeway",
        "--jwt-leeway",
        "WSPOOL_JWT_LEEWAY",
        parse_non_negative_float,
        "seconds of clock skew allowed on exp and nbf",
        metavar="SECONDS",
    ),
    Option(
        "security.allowed_origins",
        "--allowed-origins",
        "WSPOOL_ALLOWED_ORIGINS",
        parse_list(_origin),
        "comma-separated browser origins allowed to connect (others get 403); empty: any",
        metavar="ORIGINS",
    ),
    Option(
        "security.trusted_proxies",
        "--trusted-proxies",
        "WSPOOL_TRUSTED_PROXIES",
        parse_list(_network),
        "comma-separated addresses/CIDRs whose X-Forwarded-For is believed",
        metavar="CIDRS",
    ),
)

LIMIT_OPTIONS: tuple[Option, ...] = (
    Option(
        "security.max_connections_per_ip",
        "--max-connections-per-ip",
        "WSPOOL_MAX_CONNECTIONS_PER_IP",
        parse_non_negative_int,
        "open connections per client address across the pool; 0: no limit",
        metavar="N",
    ),
    Option(
        "security.connection_attempts_per_ip",
        "--connection-attempts-per-ip",
        "WSPOOL_CONNECTION_ATTEMPTS_PER_IP",
        parse_non_negative_int,
        "connection attempts per client address per second across the pool; 0: no limit",
        metavar="RATE",
    ),
    Option(
        "security.messages_per_second",
        "--messages-per-second",
        "WSPOOL_MESSAGES_PER_SECOND",
        parse_non_negative_float,
        "client messages per second per connection; 0: no limit",
        metavar="RATE",
    ),
    Option(
        "security.message_burst",
        "--message-burst",
        "WSPOOL_MESSAGE_BURST",
        parse_non_negative_int,
        "messages a connection may send at once above its rate",
        metavar="N",
    ),
    Option(
        "security.max_channels_per_connection",
        "--max-channels-per-connection",
        "WSPOOL_MAX_CHANNELS_PER_CONNECTION",
        parse_non_negative_int,
        "channels one connection may subscribe to; 0: no limit",
        metavar="N",
    ),
)

SECURITY_OPTIONS: tuple[Option, ...] = (*AUTH_OPTIONS, *LIMIT_OPTIONS)

ADMIN_OPTIONS: tuple[Option, ...] = (
    Option(
        "security.admin_token",
        "--admin-token",
        "WSPOOL_ADMIN_TOKEN",
        parse_secret,
        "static admin credential for the REST API (a token with role admin also works)",
        metavar="TOKEN",
    ),
    Option(
        "security.admin_token_file",
        "--admin-token-file",
        "WSPOOL_ADMIN_TOKEN_FILE",
        _path,
        "file holding the static admin credential",
        metavar="PATH",
    ),
    Option(
        "security.api_open_reads",
        "--api-open-reads",
        "WSPOOL_API_OPEN_READS",
        parse_boolean,
        "let anyone read the REST API (stats, health, connections)",
        switch=True,
    ),
)
