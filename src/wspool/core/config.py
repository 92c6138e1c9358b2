"""Settings of the data plane's commands, each option declared once (:mod:`wspool.core.options`).

- :class:`PlaneSettings`: what every process of the data plane has (where it listens, the
  Redis it shares, how it logs, and the frame and buffer limits a node enforces that the
  gateway in front of it enforces too);
- :class:`NodeSettings`: what a server node runs with, however it is started;
- :class:`ServerSettings` (``wspool server``), :class:`GatewaySettings` (``wspool gateway``)
  and :class:`DevSettings` (``wspool dev``, the whole data plane in one process) add their own.

The operator renders the variables of server and gateway pods from these declarations
(:mod:`wspool.operator.model.manifests`). A rule that ties two fields together is checked in
``__post_init__`` and names the flag at fault.
"""

from __future__ import annotations

import dataclasses
import platform
import uuid
from dataclasses import dataclass
from typing import Any

from wspool.core import checks
from wspool.core.auth import MIN_SECRET_BYTES
from wspool.core.checks import Check, Invalid
from wspool.core.history import HistoryPolicy
from wspool.core.options import (
    LOG_FORMAT,
    LOG_LEVEL,
    ConfigError,
    Option,
    option,
    options_of,
    section,
)
from wspool.core.poolconfig import DEFAULT_MAX_CONNECTIONS, StrategyName
from wspool.core.security import SecuritySettings

__all__ = [
    "DEV_OPTIONS",
    "DRAIN_WINDOW",
    "GATEWAY_OPTIONS",
    "GATEWAY_PORT",
    "MAX_PUBLISH_DELAY",
    "SERVER_OPTIONS",
    "SERVER_PORT",
    "DevSettings",
    "GatewaySettings",
    "NodeSettings",
    "PlaneSettings",
    "ServerSettings",
]

SERVER_PORT = 8081
GATEWAY_PORT = 8080
DRAIN_WINDOW = 10.0
"""Seconds over which a stopping node spreads its 1012 closes, or its handovers to a seamless
gateway (``wspool dev``: 2)."""
MAX_PUBLISH_DELAY = 1.0
"""The longest ``--publish-delay``: a live view should not wait longer for its messages."""
LOOPBACK = ("127.0.0.0/8", "::1/128")
MAX_DEV_SERVERS = 10


def _ticket_secret(value: Any) -> str:
    # RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
    text = checks.text(value)
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise Invalid(f"must be at least {MIN_SECRET_BYTES} characters")
    return text


_HOST = Option(
    "", "--host", "WSPOOL_HOST", checks.text.text, "address to listen on", metavar="ADDRESS"
)
_PORT = Option(
    "", "--port", "WSPOOL_PORT", checks.integer(0, 65535).text, "port to listen on", metavar="PORT"
)
_TICKET_SECRET = Option(
    "",
    "--ticket-secret",
    "WSPOOL_TICKET_SECRET",
    Check(_ticket_secret).text,
    "secret shared by the gateway and the nodes; when set, a node accepts only"
    " connections with a gateway ticket for itself",
    metavar="SECRET",
)


@dataclass(frozen=True, slots=True)
class PlaneSettings:
    """What every process of the data plane is configured with."""

    host: str = _HOST.declare("0.0.0.0")
    port: int = _PORT.declare(SERVER_PORT)
    redis_url: str | None = option(
        None,
        "--redis-url",
        "REDIS_URL",
        checks.redis_url,
        "Redis URL: redis://host[:port][/db], a cluster's redis+cluster://host:port[,host:port…]"
        " or Sentinel's redis+sentinel://host:port[,host:port…]/primary-name (rediss… for TLS);"
        " without it, the in-memory engine (one process only)",
        metavar="URL",
    )
    key_prefix: str = option(
        "",
        "--key-prefix",
        "WSPOOL_KEY_PREFIX",
        checks.key_prefix,
        "prefix of every Redis key and channel, to share one Redis between pools (no braces)",
        metavar="PREFIX",
    )
    max_frame_bytes: int = option(
        1024 * 1024,
        "--max-frame-bytes",
        "WSPOOL_MAX_FRAME_BYTES",
        checks.integer(1),
        "frames above this close the connection with 1009 (gateways: their nodes' value)",
        metavar="BYTES",
    )
    send_buffer_limit: int = option(
        1024 * 1024,
        "--send-buffer-limit",
        "WSPOOL_SEND_BUFFER_LIMIT",
        checks.integer(1),
        "bytes queued to a client before it is closed as a slow consumer (1008)",
        metavar="BYTES",
    )
    history_size: int = option(
        10_000,
        "--history-size",
        "WSPOOL_HISTORY_SIZE",
        checks.integer(0),
        "messages kept per channel for recovery (0: none); same on every node and gateway",
        metavar="N",
    )
    history_ttl: float = option(
        300.0,
        "--history-ttl",
        "WSPOOL_HISTORY_TTL",
        checks.seconds(0, above=True),
        "seconds a message stays in its channel's history; same on every node and gateway",
        metavar="SECONDS",
    )
    log_format: str = LOG_FORMAT.declare("json")
    log_level: str = LOG_LEVEL.declare("info")

    @property
    def history(self) -> HistoryPolicy:
        return HistoryPolicy(self.history_size, self.history_ttl)


def _seconds(default: float, flag: str, env: str, meaning: str) -> float:
    """A duration option: a finite number of seconds above 0."""
    return option(default, flag, env, checks.seconds(0, above=True), meaning, metavar="SECONDS")


_DRAIN_WINDOW = Option(
    "",
    "--drain-window",
    "WSPOOL_DRAIN_WINDOW",
    checks.seconds(0).text,
    "seconds over which a draining node spreads its 1012 closes (or handovers)",
    metavar="SECONDS",
)


@dataclass(frozen=True, slots=True)
class NodeSettings(PlaneSettings):
    """What a server node runs with, whether ``wspool server`` or ``wspool dev`` starts it."""

    max_message_bytes: int = option(
        64 * 1024,
        "--max-message-bytes",
        "WSPOOL_MAX_MESSAGE_BYTES",
        checks.integer(1),
        "frames above this get a TOO_LARGE error; the connection lives",
        metavar="BYTES",
    )
    ping_interval: float = _seconds(
        20.0, "--ping-interval", "WSPOOL_PING_INTERVAL", "seconds between keepalive pings"
    )
    ping_timeout: float = _seconds(
        20.0,
        "--ping-timeout",
        "WSPOOL_PING_TIMEOUT",
        "seconds to wait for a pong before dropping the peer",
    )
    drain_window: float = _DRAIN_WINDOW.declare(DRAIN_WINDOW)
    publish_delay: float = option(
        0.0,
        "--publish-delay",
        "WSPOOL_PUBLISH_DELAY",
        checks.seconds(0, MAX_PUBLISH_DELAY),
        "least seconds between two publishes of a node; what its clients send meanwhile "
        "goes in one batch (0: publish at once); less CPU per message for up to that much "
        "latency",
        metavar="SECONDS",
    )
    heartbeat_interval: float = _seconds(
        2.0,
        "--heartbeat-interval",
        "WSPOOL_HEARTBEAT_INTERVAL",
        "seconds between registry heartbeats",
    )
    node_ttl: float = _seconds(
        6.0,
        "--node-ttl",
        "WSPOOL_NODE_TTL",
        "seconds after the last heartbeat when a node counts as dead and is swept",
    )
    activity_flush_interval: float = _seconds(
        5.0,
        "--activity-flush-interval",
        "WSPOOL_ACTIVITY_FLUSH_INTERVAL",
        "seconds between writes of lastActivity (coalesced)",
    )
    session_ttl: float = _seconds(
        3600.0,
        "--session-ttl",
        "WSPOOL_SESSION_TTL",
        "seconds after which a session record nobody refreshes expires from Redis",
    )

    def __post_init__(self) -> None:
        if self.max_message_bytes > self.max_frame_bytes:
            raise ConfigError("--max-message-bytes", "must not exceed --max-frame-bytes")
        if self.node_ttl <= self.heartbeat_interval:
            raise ConfigError("--node-ttl", "must be longer than --heartbeat-interval")
        if self.session_ttl <= self.activity_flush_interval:
            raise ConfigError("--session-ttl", "must be longer than --activity-flush-interval")


@dataclass(frozen=True, slots=True)
class ServerSettings(NodeSettings):
    """Settings of one server node (``wspool server``)."""

    id: str = option(
        "",
        "--id",
        "WSPOOL_SERVER_ID",
        checks.text,
        "node id (default: hostname and a suffix)",
        metavar="ID",
    )
    advertise_url: str = option(
        "",
        "--advertise-url",
        "WSPOOL_ADVERTISE_URL",
        checks.url("ws", "wss"),
        "URL at which clients and the gateway reach this node",
        metavar="URL",
    )
    weight: int = option(
        1,
        "--weight",
        "WSPOOL_WEIGHT",
        checks.integer(1),
        "the node's weight for the weighted strategies",
        metavar="N",
    )
    ticket_secret: str = _TICKET_SECRET.declare("", hidden=True)
    security: SecuritySettings = section(SecuritySettings, "auth", "limits")

    def resolved(self) -> ServerSettings:
        """Fill in the node id when none was given: the host name and a random suffix."""
        if self.id:
            return self
        return dataclasses.replace(self, id=f"{platform.node() or 'node'}-{uuid.uuid4().hex[:6]}")


_URLS = checks.each(checks.url("ws", "wss"), "ws:// URLs")


def _node_urls(value: Any) -> tuple[str, ...]:
    urls = _URLS(value)
    if not urls:
        raise Invalid("must list at least one ws:// URL")
    return urls


@dataclass(frozen=True, slots=True)
class GatewaySettings(PlaneSettings):
    """Settings of one gateway replica (``wspool gateway``)."""

    port: int = _PORT.declare(GATEWAY_PORT)
    id: str = option(
        "",
        "--id",
        "WSPOOL_GATEWAY_ID",
        checks.text,
        "replica id (default: hostname and a suffix)",
        metavar="ID",
    )
    servers: tuple[str, ...] = option(
        (),
        "--servers",
        "WSPOOL_SERVER_URLS",
        Check(_node_urls, _URLS.read),
        "a static list of node URLs (ws://a:8081,ws://b:8081) instead of the Redis registry",
        metavar="URLS",
        old_env="WSPOOL_SERVERS",
    )
    strategy: str = option(
        StrategyName.LEAST_CONNECTIONS.value,
        "--strategy",
        "WSPOOL_STRATEGY",
        checks.choice(*StrategyName),
        "initial strategy, used until the pool config in Redis says otherwise",
        metavar="STRATEGY",
    )
    max_connections: int = option(
        DEFAULT_MAX_CONNECTIONS,
        "--max-connections",
        "WSPOOL_MAX_CONNECTIONS",
        checks.integer(1),
        "initial pool-wide connection limit, until the pool config says otherwise",
        metavar="N",
    )
    seamless: bool = option(
        True,
        "--seamless",
        "WSPOOL_SEAMLESS",
        checks.boolean,
        "initially move the clients of a draining or lost node to another node with their"
        " WebSockets open (false: close them with 1012), until the pool config says otherwise",
        metavar="BOOL",
    )
    connect_timeout: float = _seconds(
        2.0,
        "--connect-timeout",
        "WSPOOL_CONNECT_TIMEOUT",
        "seconds an upstream connect and handshake may take before trying another node",
    )
    connect_attempts: int = option(
        3,
        "--connect-attempts",
        "WSPOOL_CONNECT_ATTEMPTS",
        checks.integer(1),
        "nodes tried for one client handshake before giving up with 1013",
        metavar="N",
    )
    refresh_interval: float = _seconds(
        0.5,
        "--refresh-interval",
        "WSPOOL_REFRESH_INTERVAL",
        "seconds between reads of the node registry and the shared pool config",
    )
    handshake_timeout: float = _seconds(
        10.0,
        "--handshake-timeout",
        "WSPOOL_HANDSHAKE_TIMEOUT",
        "seconds a client has to send its whole request; also how long an idle HTTP"
        " connection stays open",
    )
    file_reserve: int = option(
        256,
        "--file-reserve",
        "WSPOOL_FILE_RESERVE",
        checks.integer(1),
        "open files kept free for Redis, health checks and probes: beyond the limit minus"
        " this, new connections are refused",
        metavar="FILES",
    )
    ticket_secret: str = _TICKET_SECRET.declare("", hidden=True)
    security: SecuritySettings = section(SecuritySettings, "auth", "admin")

    def require_nodes_source(self) -> None:
        """A standalone gateway finds nodes in a static list or in the Redis registry."""
        if not self.servers and not self.redis_url:
            raise ConfigError("--servers", "give the nodes' URLs, or --redis-url to find them")

    def resolved(self) -> GatewaySettings:
        if self.id:
            return self
        suffix = uuid.uuid4().hex[:6]
        return dataclasses.replace(self, id=f"gw-{platform.node() or 'host'}-{suffix}")


def _open_security() -> SecuritySettings:
    # dev runs open, and its banner says so; the nodes count clients by the address their
    # gateway forwards
    return SecuritySettings(insecure=True, trusted_proxies=LOOPBACK)


@dataclass(frozen=True, slots=True)
class DevSettings(NodeSettings):
    """Settings of ``wspool dev``: the whole data plane in one process.

    The gateway listens on ``port`` and the nodes on the ports after it; both run with the
    node settings given (:meth:`node_settings`, :meth:`gateway_settings`).
    """

    host: str = _HOST.declare("127.0.0.1")
    port: int = dataclasses.replace(
        _PORT, help="the gateway's port; server nodes take the ports after it"
    ).declare(GATEWAY_PORT)
    drain_window: float = _DRAIN_WINDOW.declare(2.0)
    log_format: str = LOG_FORMAT.declare("text")
    servers: int = option(
        3,
        "--servers",
        "WSPOOL_DEV_SERVERS",
        checks.integer(1),
        "number of server nodes",
        metavar="N",
        old_env="WSPOOL_SERVERS",
    )
    security: SecuritySettings = section(_open_security, "limits")

    def __post_init__(self) -> None:
        NodeSettings.__post_init__(self)
        if self.servers > MAX_DEV_SERVERS:
            raise ConfigError("--servers", f"must be between 1 and {MAX_DEV_SERVERS}")
        if self.port and self.port + self.servers > 65535:
            raise ConfigError("--port", "leaves no room for the server ports that follow it")

    def _plane(self, cls: type[PlaneSettings]) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(cls)}

    def node_settings(self, index: int) -> ServerSettings:
        """Settings of the index-th node (0-based), listening on the ports after ``port``."""
        port = self.port + 1 + index if self.port else 0
        shared = self._plane(NodeSettings) | {"port": port}
        return ServerSettings(**shared, id=f"node-{index + 1}", security=self.security)

    def gateway_settings(self) -> GatewaySettings:
        """Settings of the gateway, which enforces the nodes' limits too."""
        return GatewaySettings(**self._plane(PlaneSettings), id="gateway", security=self.security)


SERVER_OPTIONS = options_of(ServerSettings)
GATEWAY_OPTIONS = options_of(GatewaySettings)
DEV_OPTIONS = options_of(DevSettings)
