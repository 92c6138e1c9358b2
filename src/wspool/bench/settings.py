"""Options of ``wspool bench``: a table of :class:`~wspool.core.options.Option`, each naming
the :class:`BenchSettings` field it fills.

A load generator only ever aims at this machine: every target and metrics URL must be in
127.0.0.0/8 (or ``localhost``), checked before anything connects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wspool.bench.peers import PEERS
from wspool.core import checks
from wspool.core.checks import Invalid
from wspool.core.config import MAX_PUBLISH_DELAY
from wspool.core.options import ConfigError, Option

__all__ = [
    "BENCH_OPTIONS",
    "SCENARIOS",
    "BenchSettings",
    "Target",
    "is_loopback",
    "parse_targets",
]

SCENARIOS = (
    "connect",
    "throughput",
    "latency",
    "fanout",
    "failover",
    "many-channels",
    "subscribe-storm",
)
ROUTES = ("gateway", "direct")
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Target:
    """A WebSocket endpoint the generator connects to (always an IPv4 loopback address)."""

    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in _LOOPBACK
    except ValueError:
        return False


def _loopback_host(text: str, scheme: str) -> tuple[str, int | None, str]:
    parts = urlsplit(text)
    if parts.scheme != scheme or not parts.hostname:
        raise Invalid(f"{text!r} must be a {scheme}://host:port URL")
    if not is_loopback(parts.hostname):
        raise Invalid(
            f"must be on this machine (127.0.0.0/8 or localhost), not {parts.hostname}: "
            "the load generator only loads loopback"
        )
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    return host, parts.port, parts.path


def parse_targets(text: str) -> tuple[Target, ...]:
    """``ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws`` → targets; refuses other hosts."""
    targets = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, port, path = _loopback_host(item, "ws")
        targets.append(Target(host, port or 80, path or "/"))
    if not targets:
        raise Invalid("must name at least one ws:// URL")
    return tuple(targets)


def _metrics_urls(text: str) -> tuple[str, ...]:
    urls = tuple(filter(None, (part.strip() for part in text.split(","))))
    for url in urls:
        _loopback_host(url, "http")
    return urls


_count = checks.integer(0).text
_positive_int = checks.integer(1).text
_positive_seconds = checks.seconds(0, above=True).text


def _rates(text: str) -> tuple[float, ...]:
    problem = "must be rates in messages/s, comma separated (0 = as fast as possible)"
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise Invalid(problem) from None
    if not rates or any(not 0 <= rate < float("inf") for rate in rates):
        raise Invalid(problem)
    return rates


def _routes(text: str) -> tuple[str, ...]:
    routes = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not routes or any(route not in ROUTES for route in routes):
        raise Invalid("must be gateway, direct, or both (comma separated)")
    return routes


def _peer(text: str) -> str:
    if text not in PEERS:
        raise Invalid(f"must be one of {', '.join(PEERS)}")
    return text


def _validated(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """Check the text now (bad input fails before anything starts); keep it as text."""

    def check(text: str) -> str:
        parse(text)
        return text

    return check


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What to load, how hard, and where to write the results.

    Scenario-shaped counts left at None take each scenario's own default.
    """

    url: str = "ws://127.0.0.1:8081/ws"
    metrics_url: str = ""
    spawn_servers: int = 0
    spawn_gateway: bool = False
    via: str = ""
    peer: str = ""
    at_most_once: bool = False
    seamless: bool = True
    redis_url: str = ""
    publish_delay: float = 0.0
    workers: int = 2
    connections: int | None = None
    publishers: int | None = None
    subscribers: int | None = None
    channels: int | None = None
    rate: str = ""
    window: int = 200
    duration: float = 5.0
    concurrency: int = 64
    json: str = ""
    chart: str = ""

    def __post_init__(self) -> None:
        if self.spawn_servers > 10:
            raise ConfigError("--spawn-servers", "must be between 0 and 10")
        if self.redis_url and not self.spawn_servers:
            raise ConfigError("--redis-url", "is only used with --spawn-servers")
        if self.spawn_gateway and not self.spawn_servers:
            raise ConfigError("--spawn-gateway", "needs --spawn-servers (the nodes behind it)")
        if self.peer and not self.spawn_servers:
            raise ConfigError("--peer", "needs --spawn-servers (how many peer servers to start)")
        if self.peer and self.spawn_gateway:
            raise ConfigError("--peer", "runs without the gateway (the peer has its own clients)")
        if self.via and not self.spawn_gateway:
            raise ConfigError("--via", "is only used with --spawn-gateway")
        if not self.seamless and not self.spawn_gateway:
            raise ConfigError("--seamless", "is only used with --spawn-gateway")
        if self.publish_delay and (not self.spawn_servers or self.peer):
            raise ConfigError(
                "--publish-delay", "is only used with --spawn-servers, without --peer"
            )

    @property
    def targets(self) -> tuple[Target, ...]:
        return parse_targets(self.url)

    @property
    def metrics_urls(self) -> tuple[str, ...]:
        """The /metrics endpoints to read: as given, else those of the targets."""
        given = _metrics_urls(self.metrics_url)
        return given or tuple(dict.fromkeys(t.metrics_url for t in self.targets))

    def check_scenarios(self, scenarios: Sequence[str]) -> None:
        """Refuse, before anything starts, a scenario these settings cannot run."""
        if "failover" in scenarios and not (self.spawn_servers >= 2 and self.spawn_gateway):
            raise ConfigError(
                "failover", "needs --spawn-servers 2 (or more) and --spawn-gateway: it kills a node"
            )
        if "failover" in scenarios and "direct" in self.routes:
            raise ConfigError("--via", "failover runs through the gateway only")

    @property
    def dialect(self) -> str:
        """What the generator speaks: the wspool protocol, or the peer's."""
        return PEERS[self.peer].dialect if self.peer else "wspool"

    @property
    def routes(self) -> tuple[str, ...]:
        """Which way each scenario runs: through the spawned gateway, straight to the nodes."""
        if self.via:
            return _routes(self.via)
        return ("gateway",) if self.spawn_gateway else ("direct",)

    @property
    def rates(self) -> tuple[float, ...] | None:
        return _rates(self.rate) if self.rate else None


BENCH_OPTIONS: tuple[Option, ...] = (
    Option(
        "url",
        "--url",
        "WSPOOL_BENCH_URL",
        _validated(parse_targets),
        "WebSocket URL(s) to load, comma separated; 127.0.0.0/8 only",
        metavar="URLS",
    ),
    Option(
        "metrics_url",
        "--metrics-url",
        "WSPOOL_BENCH_METRICS_URL",
        _validated(_metrics_urls),
        "node /metrics URL(s) to read CPU and memory from (default: those of --url)",
        metavar="URLS",
    ),
    Option(
        "spawn_servers",
        "--spawn-servers",
        "WSPOOL_BENCH_SPAWN_SERVERS",
        _count,
        "start this many `wspool server` nodes and load them instead of --url",
        metavar="N",
    ),
    Option(
        "spawn_gateway",
        "--spawn-gateway",
        "WSPOOL_BENCH_SPAWN_GATEWAY",
        checks.boolean.text,
        "with --spawn-servers: also start a `wspool gateway` in front of the nodes and load it",
        switch=True,
    ),
    Option(
        "via",
        "--via",
        "WSPOOL_BENCH_VIA",
        _validated(_routes),
        "with --spawn-gateway: gateway, direct, or gateway,direct (each scenario once per "
        "route, on the same nodes; default gateway)",
        metavar="ROUTES",
    ),
    Option(
        "at_most_once",
        "--at-most-once",
        "WSPOOL_BENCH_AT_MOST_ONCE",
        checks.boolean.text,
        "failover: resubscribe without `since` (as a client that keeps no position), so "
        "what was published while it was away is lost",
        switch=True,
    ),
    Option(
        "seamless",
        "--seamless",
        "WSPOOL_BENCH_SEAMLESS",
        checks.boolean.text,
        "with --spawn-gateway: the gateway's --seamless (true: it moves the clients of a lost "
        "node itself; false: they are closed with 1012 and reconnect, as failover measures)",
        metavar="BOOL",
    ),
    Option(
        "peer",
        "--peer",
        "WSPOOL_BENCH_PEER",
        _peer,
        "with --spawn-servers: start that many peer servers instead of nodes, for a side by "
        "side (socketio: python-socketio with its Redis manager, needs the `bench` extra; "
        "socketio-node: Socket.IO on Node.js with its Redis adapter, needs node and npm; "
        "centrifugo, centrifugo-redis: Centrifugo v6 with its memory or Redis engine, "
        "built by `make peers` or, when missing, with go; centrifugo-redis-history: the "
        "Redis engine with channel history, as a node keeps it)",
        metavar="PEER",
    ),
    Option(
        "redis_url",
        "--redis-url",
        "WSPOOL_BENCH_REDIS_URL",
        checks.redis_url.text,
        "Redis for the spawned nodes, one server, a cluster or Sentinel's primary (default:"
        " start a redis-server on a free port)",
        metavar="URL",
    ),
    Option(
        "publish_delay",
        "--publish-delay",
        "WSPOOL_BENCH_PUBLISH_DELAY",
        checks.seconds(0, MAX_PUBLISH_DELAY).text,
        "with --spawn-servers: the spawned nodes' --publish-delay (default 0)",
        metavar="SECONDS",
    ),
    Option(
        "workers",
        "--workers",
        "WSPOOL_BENCH_WORKERS",
        _positive_int,
        "client processes",
        metavar="N",
    ),
    Option(
        "connections",
        "--connections",
        "WSPOOL_BENCH_CONNECTIONS",
        _positive_int,
        "connect: connections to open and hold (default 1000)",
        metavar="N",
    ),
    Option(
        "publishers",
        "--publishers",
        "WSPOOL_BENCH_PUBLISHERS",
        _positive_int,
        "publishing connections (scenario default)",
        metavar="N",
    ),
    Option(
        "subscribers",
        "--subscribers",
        "WSPOOL_BENCH_SUBSCRIBERS",
        _count,
        "subscribing connections, spread over the channels (scenario default)",
        metavar="N",
    ),
    Option(
        "channels",
        "--channels",
        "WSPOOL_BENCH_CHANNELS",
        _positive_int,
        "channels published to (scenario default)",
        metavar="N",
    ),
    Option(
        "rate",
        "--rate",
        "WSPOOL_BENCH_RATE",
        _validated(_rates),
        "total publish rate in msg/s, 0 = as fast as the node takes them; "
        "several (comma separated) run the scenario once per rate",
        metavar="RATES",
    ),
    Option(
        "window",
        "--window",
        "WSPOOL_BENCH_WINDOW",
        _positive_int,
        "at full rate: messages a publisher may have in flight (sent, not yet echoed)",
        metavar="N",
    ),
    Option(
        "duration",
        "--duration",
        "WSPOOL_BENCH_DURATION",
        _positive_seconds,
        "seconds of load (connect: seconds the connections are held)",
        metavar="SECONDS",
    ),
    Option(
        "concurrency",
        "--concurrency",
        "WSPOOL_BENCH_CONCURRENCY",
        _positive_int,
        "opening handshakes in flight at once, over all workers",
        metavar="N",
    ),
    Option(
        "json",
        "--json",
        "WSPOOL_BENCH_JSON",
        str,
        "write the results to this JSON file",
        metavar="PATH",
    ),
    Option(
        "chart",
        "--chart",
        "WSPOOL_BENCH_CHART",
        str,
        "latency: draw latency against rate into this PNG (needs the `bench` extra)",
        metavar="PATH",
    ),
)
