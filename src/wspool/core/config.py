"""The one configuration loader: typed settings from flags, then environment, then defaults.

Each command declares its options once (flag, environment variable, parser, help); the CLI
builds its argument parser from that table and ``--help`` lists the variables. Any bad value
raises :class:`ConfigError` naming the option, which the CLI prints as one line before
anything listens.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wspool.core.history import HistoryPolicy
from wspool.core.options import (
    LOG_OPTIONS,
    ConfigError,
    Option,
    parse_choice,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_redis_url,
    parse_text,
    parse_url,
)
from wspool.core.security import (
    ADMIN_OPTIONS,
    AUTH_OPTIONS,
    LIMIT_OPTIONS,
    SECURITY_OPTIONS,
    SecuritySettings,
)

LOOPBACK = ("127.0.0.0/8", "::1/128")

__all__ = [
    "DEV_OPTIONS",
    "GATEWAY_OPTIONS",
    "SERVER_OPTIONS",
    "ConfigError",
    "DevSettings",
    "GatewaySettings",
    "Option",
    "SecuritySettings",
    "ServerSettings",
    "deprecated_variables",
    "load_settings",
]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Settings of one server node (``wspool server``)."""

    host: str = "0.0.0.0"
    port: int = 8081
    id: str = ""
    advertise_url: str = ""
    redis_url: str | None = None
    key_prefix: str = ""
    weight: int = 1
    max_message_bytes: int = 64 * 1024
    max_frame_bytes: int = 1024 * 1024
    send_buffer_limit: int = 1024 * 1024
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    drain_window: float = 10.0
    heartbeat_interval: float = 2.0
    node_ttl: float = 6.0
    activity_flush_interval: float = 5.0
    history_size: int = 10_000
    history_ttl: float = 300.0
    session_ttl: float = 3600.0
    log_format: str = "json"
    log_level: str = "info"
    security: SecuritySettings = field(default_factory=SecuritySettings)
    ticket_secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.max_message_bytes > self.max_frame_bytes:
            raise ConfigError("--max-message-bytes", "must not exceed --max-frame-bytes")
        if self.node_ttl <= self.heartbeat_interval:
            raise ConfigError("--node-ttl", "must be longer than --heartbeat-interval")
        if self.session_ttl <= self.activity_flush_interval:
            raise ConfigError("--session-ttl", "must be longer than --activity-flush-interval")

    @property
    def history(self) -> HistoryPolicy:
        return HistoryPolicy(self.history_size, self.history_ttl)

    def resolved(self) -> ServerSettings:
        """Fill in the node id when none was given: the host name and a random suffix."""
        if self.id:
            return self
        return dataclasses.replace(self, id=f"{platform.node() or 'node'}-{uuid.uuid4().hex[:6]}")


_COMMON_OPTIONS: tuple[Option, ...] = (
    Option(
        "redis_url",
        "--redis-url",
        "REDIS_URL",
        parse_redis_url,
        "Redis URL; without it, the in-memory engine (one process only)",
        metavar="URL",
    ),
    Option(
        "key_prefix",
        "--key-prefix",
        "WSPOOL_KEY_PREFIX",
        str,
        "prefix of every Redis key and channel, to share one Redis between pools",
        metavar="PREFIX",
    ),
    *LOG_OPTIONS,
)


def _secret(text: str) -> str:
    # RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes).
    if len(text.encode()) < 32:
        raise ValueError("must be at least 32 characters")
    return text


_TICKET_SECRET = Option(
    "ticket_secret",
    "--ticket-secret",
    "WSPOOL_TICKET_SECRET",
    _secret,
    "secret shared by the gateway and the nodes; when set, a node accepts only"
    " connections with a gateway ticket for itself",
    metavar="SECRET",
)

# Limits a node enforces that the gateway in front of it enforces too, with the same value.
_MAX_FRAME_BYTES = Option(
    "max_frame_bytes",
    "--max-frame-bytes",
    "WSPOOL_MAX_FRAME_BYTES",
    parse_positive_int,
    "frames above this close the connection with 1009 (gateways: their nodes' value)",
    metavar="BYTES",
)
_SEND_BUFFER_LIMIT = Option(
    "send_buffer_limit",
    "--send-buffer-limit",
    "WSPOOL_SEND_BUFFER_LIMIT",
    parse_positive_int,
    "bytes queued to a client before it is closed as a slow consumer (1008)",
    metavar="BYTES",
)

_NODE_OPTIONS: tuple[Option, ...] = (
    Option(
        "max_message_bytes",
        "--max-message-bytes",
        "WSPOOL_MAX_MESSAGE_BYTES",
        parse_positive_int,
        "frames above this get a TOO_LARGE error; the connection lives",
        metavar="BYTES",
    ),
    _MAX_FRAME_BYTES,
    _SEND_BUFFER_LIMIT,
    Option(
        "ping_interval",
        "--ping-interval",
        "WSPOOL_PING_INTERVAL",
        parse_positive_float,
        "seconds between keepalive pings",
        metavar="SECONDS",
    ),
    Option(
        "ping_timeout",
        "--ping-timeout",
        "WSPOOL_PING_TIMEOUT",
        parse_positive_float,
        "seconds to wait for a pong before dropping the peer",
        metavar="SECONDS",
    ),
    Option(
        "drain_window",
        "--drain-window",
        "WSPOOL_DRAIN_WINDOW",
        parse_non_negative_float,
        "seconds over which a draining node spreads its 1012 closes",
        metavar="SECONDS",
    ),
    Option(
        "heartbeat_interval",
        "--heartbeat-interval",
        "WSPOOL_HEARTBEAT_INTERVAL",
        parse_positive_float,
        "seconds between registry heartbeats",
        metavar="SECONDS",
    ),
    Option(
        "node_ttl",
        "--node-ttl",
        "WSPOOL_NODE_TTL",
        parse_positive_float,
        "seconds after the last heartbeat when a node counts as dead and is swept",
        metavar="SECONDS",
    ),
    Option(
        "activity_flush_interval",
        "--activity-flush-interval",
        "WSPOOL_ACTIVITY_FLUSH_INTERVAL",
        parse_positive_float,
        "seconds between writes of lastActivity (coalesced)",
        metavar="SECONDS",
    ),
    Option(
        "history_size",
        "--history-size",
        "WSPOOL_HISTORY_SIZE",
        parse_non_negative_int,
        "messages of history kept per channel for recovery (0: none); same on every node",
        metavar="N",
    ),
    Option(
        "history_ttl",
        "--history-ttl",
        "WSPOOL_HISTORY_TTL",
        parse_positive_float,
        "seconds a message stays in its channel's history; same on every node",
        metavar="SECONDS",
    ),
    Option(
        "session_ttl",
        "--session-ttl",
        "WSPOOL_SESSION_TTL",
        parse_positive_float,
        "seconds after which a session record nobody refreshes expires from Redis",
        metavar="SECONDS",
    ),
)

SERVER_OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "WSPOOL_HOST", parse_text, "address to listen on", metavar="ADDRESS"),
    Option("port", "--port", "WSPOOL_PORT", parse_port, "port to listen on", metavar="PORT"),
    Option(
        "id",
        "--id",
        "WSPOOL_SERVER_ID",
        parse_text,
        "node id (default: hostname and a suffix)",
        metavar="ID",
    ),
    Option(
        "advertise_url",
        "--advertise-url",
        "WSPOOL_ADVERTISE_URL",
        parse_url("ws", "wss"),
        "URL at which clients and the gateway reach this node",
        metavar="URL",
    ),
    Option(
        "weight",
        "--weight",
        "WSPOOL_WEIGHT",
        parse_positive_int,
        "the node's weight for the weighted strategies",
        metavar="N",
    ),
    _TICKET_SECRET,
    *_NODE_OPTIONS,
    *SECURITY_OPTIONS,
    *_COMMON_OPTIONS,
)


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Settings of ``wspool dev``: the whole data plane in one process."""

    host: str = "127.0.0.1"
    port: int = 8080
    servers: int = 3
    redis_url: str | None = None
    key_prefix: str = ""
    max_message_bytes: int = 64 * 1024
    max_frame_bytes: int = 1024 * 1024
    send_buffer_limit: int = 1024 * 1024
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    drain_window: float = 2.0
    heartbeat_interval: float = 2.0
    node_ttl: float = 6.0
    activity_flush_interval: float = 5.0
    history_size: int = 10_000
    history_ttl: float = 300.0
    session_ttl: float = 3600.0
    log_format: str = "text"
    log_level: str = "info"
    # dev runs open, and its banner says so
    security: SecuritySettings = field(
        # the nodes count clients by the address their gateway forwards
        default_factory=lambda: SecuritySettings(insecure=True, trusted_proxies=LOOPBACK)
    )

    def __post_init__(self) -> None:
        if self.servers > 10:
            raise ConfigError("--servers", "must be between 1 and 10")
        if self.port and self.port + self.servers > 65535:
            raise ConfigError("--port", "leaves no room for the server ports that follow it")

    def node_settings(self, index: int) -> ServerSettings:
        """Settings of the index-th node (0-based), listening on the ports after ``port``."""
        shared = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(ServerSettings)
            if hasattr(self, f.name) and f.name not in ("port", "id")
        }
        port = self.port + 1 + index if self.port else 0
        return ServerSettings(**shared, port=port, id=f"node-{index + 1}")


DEV_OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "WSPOOL_HOST", parse_text, "address to listen on", metavar="ADDRESS"),
    Option(
        "port",
        "--port",
        "WSPOOL_PORT",
        parse_port,
        "the gateway's port; server nodes take the ports after it",
        metavar="PORT",
    ),
    Option(
        "servers",
        "--servers",
        "WSPOOL_DEV_SERVERS",
        parse_positive_int,
        "number of server nodes",
        metavar="N",
        old_env="WSPOOL_SERVERS",
    ),
    *_NODE_OPTIONS,
    *LIMIT_OPTIONS,
    *_COMMON_OPTIONS,
)


def _url_list(text: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    if not urls:
        raise ValueError("must list at least one ws:// URL")
    for url in urls:
        parse_url("ws", "wss")(url)
    return urls


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Settings of one gateway replica (``wspool gateway``)."""

    host: str = "0.0.0.0"
    port: int = 8080
    id: str = ""
    redis_url: str | None = None
    key_prefix: str = ""
    servers: tuple[str, ...] = ()
    strategy: str = "least-connections"
    max_connections: int = 100_000
    connect_timeout: float = 2.0
    connect_attempts: int = 3
    refresh_interval: float = 0.5
    max_frame_bytes: int = 1024 * 1024
    send_buffer_limit: int = 1024 * 1024
    handshake_timeout: float = 10.0
    file_reserve: int = 256
    log_format: str = "json"
    log_level: str = "info"
    ticket_secret: str = field(default="", repr=False)
    security: SecuritySettings = field(default_factory=SecuritySettings)

    def require_nodes_source(self) -> None:
        """A standalone gateway finds nodes in a static list or in the Redis registry."""
        if not self.servers and not self.redis_url:
            raise ConfigError("--servers", "give the nodes' URLs, or --redis-url to find them")

    def resolved(self) -> GatewaySettings:
        if self.id:
            return self
        suffix = uuid.uuid4().hex[:6]
        return dataclasses.replace(self, id=f"gw-{platform.node() or 'host'}-{suffix}")


GATEWAY_OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "WSPOOL_HOST", parse_text, "address to listen on", metavar="ADDRESS"),
    Option("port", "--port", "WSPOOL_PORT", parse_port, "port to listen on", metavar="PORT"),
    Option(
        "id",
        "--id",
        "WSPOOL_GATEWAY_ID",
        parse_text,
        "replica id (default: hostname and a suffix)",
        metavar="ID",
    ),
    Option(
        "servers",
        "--servers",
        "WSPOOL_SERVER_URLS",
        _url_list,
        "a static list of node URLs (ws://a:8081,ws://b:8081) instead of the Redis registry",
        metavar="URLS",
        old_env="WSPOOL_SERVERS",
    ),
    Option(
        "strategy",
        "--strategy",
        "WSPOOL_STRATEGY",
        parse_choice("round-robin", "least-connections", "weighted"),
        "initial strategy, used until the pool config in Redis says otherwise",
        metavar="STRATEGY",
    ),
    Option(
        "max_connections",
        "--max-connections",
        "WSPOOL_MAX_CONNECTIONS",
        parse_positive_int,
        "initial pool-wide connection limit, until the pool config says otherwise",
        metavar="N",
    ),
    Option(
        "connect_timeout",
        "--connect-timeout",
        "WSPOOL_CONNECT_TIMEOUT",
        parse_positive_float,
        "seconds an upstream connect and handshake may take before trying another node",
        metavar="SECONDS",
    ),
    Option(
        "connect_attempts",
        "--connect-attempts",
        "WSPOOL_CONNECT_ATTEMPTS",
        parse_positive_int,
        "nodes tried for one client handshake before giving up with 1013",
        metavar="N",
    ),
    Option(
        "refresh_interval",
        "--refresh-interval",
        "WSPOOL_REFRESH_INTERVAL",
        parse_positive_float,
        "seconds between reads of the node registry and the shared pool config",
        metavar="SECONDS",
    ),
    _MAX_FRAME_BYTES,
    _SEND_BUFFER_LIMIT,
    Option(
        "handshake_timeout",
        "--handshake-timeout",
        "WSPOOL_HANDSHAKE_TIMEOUT",
        parse_positive_float,
        "seconds a client has to send its whole request; also how long an idle HTTP"
        " connection stays open",
        metavar="SECONDS",
    ),
    Option(
        "file_reserve",
        "--file-reserve",
        "WSPOOL_FILE_RESERVE",
        parse_positive_int,
        "open files kept free for Redis, health checks and probes: beyond the limit minus"
        " this, new connections are refused",
        metavar="FILES",
    ),
    _TICKET_SECRET,
    *AUTH_OPTIONS,
    *ADMIN_OPTIONS,
    *_COMMON_OPTIONS,
)

SettingsT = TypeVar("SettingsT")


def deprecated_variables(options: Sequence[Option], environ: Mapping[str, str]) -> list[str]:
    """A line for each old variable name still set, to print before starting."""
    return [
        f"${option.old_env} is deprecated and will be ignored in the next release: "
        f"use ${option.env}"
        for option in options
        if option.old_env and option.old_env in environ
    ]


def load_settings(
    cls: type[SettingsT],
    options: Sequence[Option],
    flags: Mapping[str, str | None],
    environ: Mapping[str, str] | None = None,
) -> SettingsT:
    """Build ``cls`` from flag values (by field name), then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for option in options:
        text = flags.get(option.field)
        source = option.flag
        for env in (option.env, option.old_env):
            if text is None and env:
                text = environ.get(env)
                source = f"{option.flag} (from ${env})"
        if text is None:
            continue
        try:
            value = option.parse(text)
        except ValueError as error:
            if option.old_env and source.endswith(f"${option.old_env})"):
                # The old name meant a node count to `dev` and URLs to `gateway`: a value
                # for the other command is left alone (deprecated_variables says why).
                continue
            problem = str(error) if "must" in str(error) else f"{text!r} is not valid"
            raise ConfigError(source, problem) from None
        group, _, name = option.field.rpartition(".")
        (nested.setdefault(group, {}) if group else values)[name] = value
    for group, fields in nested.items():
        # A nested settings object starts from the default of its field in ``cls``.
        default = getattr(cls(), group)
        values[group] = dataclasses.replace(default, **fields)
    return cls(**values)
