"""``PoolSpec``: a ``WebSocketPool`` resource's spec, parsed once at the edge into a frozen value.

The API server already rejects bad specs at admission (the CRD's structural schema and CEL
rules, crds/); this parser repeats the checks that the operator relies on, so a spec stored
before a schema change, or read from a cluster without CEL, still fails with the JSON path of
the offending field instead of producing a broken Deployment. Defaults match the CRD's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wspool.core.addresses import parse_networks
from wspool.core.poolconfig import StrategyName

__all__ = [
    "MAX_LIMIT",
    "MAX_NODES",
    "AuthSpec",
    "AutoscalingSpec",
    "GatewaySpec",
    "HealthCheckSpec",
    "LimitsSpec",
    "PoolSpec",
    "PoolSpecError",
    "RedisSpec",
    "SecretKeyRef",
    "parse_pool_spec",
]

MAX_NODES = 10
"""The farm never runs more server nodes than this (the spec's scaling target)."""


class PoolSpecError(ValueError):
    """A spec the operator cannot act on; ``field`` is the JSON path (``spec.maxReplicas``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class RedisSpec:
    """Where the pool keeps its state: an inline URL, or a key of a Secret."""

    url: str = ""
    secret: SecretKeyRef | None = None
    key_prefix: str = ""


PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
"""Where pod networks live. Trusting them is safe when the pool has a ``ticketSecret``: then
nodes take connections only from the gateways, whatever else runs in the cluster."""


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """The Secret holding ``jwtSecret``, ``adminToken`` and ``ticketSecret`` (each optional)."""

    secret_name: str = ""
    insecure: bool = False
    trusted_proxies: tuple[str, ...] = PRIVATE_NETWORKS
    """Whose ``X-Forwarded-For`` the nodes believe: the gateways' pod network."""


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    interval: float = 5.0
    timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class AutoscalingSpec:
    enabled: bool = True
    target_connections_per_node: int = 1000
    scale_down_stabilization_seconds: int = 300
    scale_up_step: int = 4


MAX_LIMIT = 1_000_000
"""The highest value a per-address or per-connection limit takes (0 turns a limit off)."""


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    """The nodes' limits per client address and per connection; None keeps the node's default.

    Behind a load balancer that rewrites source addresses, every client shares the balancer's
    address: raise ``connections_per_address`` (or set 0, no limit), or list the balancer in
    ``gateway.trustedProxies`` when it sends ``X-Forwarded-For``.
    """

    connections_per_address: int | None = None
    connection_attempts_per_address: int | None = None
    messages_per_second: float | None = None
    message_burst: int | None = None
    channels_per_connection: int | None = None


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    replicas: int = 2
    service_type: str = "ClusterIP"
    resources: Mapping[str, Any] = field(default_factory=dict)
    trusted_proxies: tuple[str, ...] = ()
    """Proxies in front of the gateways (a load balancer, an ingress) whose
    ``X-Forwarded-For`` is believed, on top of ``auth.trustedProxies``."""


@dataclass(frozen=True, slots=True)
class PoolSpec:
    redis: RedisSpec
    auth: AuthSpec
    image: str = ""
    image_pull_policy: str = "IfNotPresent"
    strategy: StrategyName = StrategyName.LEAST_CONNECTIONS
    replicas: int = 3
    min_replicas: int = 1
    max_replicas: int = MAX_NODES
    max_connections: int = 100_000
    health_threshold: int = 3
    health_check: HealthCheckSpec = field(default_factory=HealthCheckSpec)
    drain_window: float = 10.0
    resources: Mapping[str, Any] = field(default_factory=dict)
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    gateway: GatewaySpec = field(default_factory=GatewaySpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)

    @property
    def node_trusted_proxies(self) -> tuple[str, ...]:
        """Whom the nodes believe: the gateways, and whatever the gateways stand behind (a node
        reads the whole ``X-Forwarded-For`` chain, to which each gateway adds its own peer)."""
        return tuple(dict.fromkeys((*self.auth.trusted_proxies, *self.gateway.trusted_proxies)))

    def clamp(self, replicas: int) -> int:
        """``replicas`` within [minReplicas, maxReplicas]."""
        return max(self.min_replicas, min(self.max_replicas, replicas))

    def pool_config(self) -> dict[str, Any]:
        """The part of the gateways' ``PoolConfig`` that the resource declares."""
        return {
            "strategy": self.strategy.value,
            "maxConnections": self.max_connections,
            "healthThreshold": self.health_threshold,
            "healthCheck": {
                "interval": self.health_check.interval,
                "timeout": self.health_check.timeout,
            },
        }


class _Reader:
    """Typed access to one JSON object, naming the path of whatever is wrong."""

    def __init__(self, document: Any, path: str) -> None:
        if not isinstance(document, Mapping):
            raise PoolSpecError(path, "must be an object")
        self._document: Mapping[str, Any] = document
        self.path = path

    def has(self, key: str) -> bool:
        return self._document.get(key) is not None

    def section(self, key: str) -> _Reader:
        return _Reader(self._document.get(key) or {}, f"{self.path}.{key}")

    def get(self, key: str, check: Callable[[str, Any], Any], default: Any) -> Any:
        value = self._document.get(key)
        return default if value is None else check(f"{self.path}.{key}", value)


def _integer(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PoolSpecError(path, "must be an integer")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise PoolSpecError(path, f"must be {bounds}")
        return value

    return check


def _seconds(low: float, high: float, *, positive: bool) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PoolSpecError(path, "must be a number of seconds")
        # NaN fails every comparison: only "not within" refuses it.
        if not (low < value <= high if positive else low <= value <= high):
            lowest = f"above {low:g}" if positive else f"at least {low:g}"
            raise PoolSpecError(path, f"must be {lowest} and at most {high:g}")
        return float(value)

    return check


def _number(low: float, high: float) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PoolSpecError(path, "must be a number")
        # NaN fails both comparisons, so it is refused with infinities.
        if not low <= value <= high:
            raise PoolSpecError(path, f"must be between {low:g} and {high:g}")
        return float(value)

    return check


def _text(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PoolSpecError(path, "must be a non-empty string")
    return value


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise PoolSpecError(path, f"must be one of {', '.join(choices)}")
        return str(value)

    return check


def _boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PoolSpecError(path, "must be true or false")
    return value


def _redis_url(path: str, value: Any) -> str:
    text = _text(path, value)
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.hostname
    ):
        raise PoolSpecError(path, "must be a redis://, rediss:// or unix:// URL")
    return text


def _mapping(path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PoolSpecError(path, "must be an object")
    return dict(value)


def _redis(spec: _Reader) -> RedisSpec:
    if not spec.has("redis"):
        raise PoolSpecError("spec.redis", "is required: give url or secretRef")
    redis = spec.section("redis")
    url = redis.get("url", _redis_url, "")
    secret = None
    if redis.has("secretRef"):
        ref = redis.section("secretRef")
        secret = SecretKeyRef(ref.get("name", _text, ""), ref.get("key", _text, "url"))
        if not secret.name:
            raise PoolSpecError(f"{ref.path}.name", "is required")
    if bool(url) == (secret is not None):
        raise PoolSpecError(redis.path, "give exactly one of url and secretRef")
    return RedisSpec(url, secret, redis.get("keyPrefix", lambda _p, v: str(v), ""))


def _auth(spec: _Reader) -> AuthSpec:
    auth = spec.section("auth")
    name = auth.section("secretRef").get("name", _text, "") if auth.has("secretRef") else ""
    insecure = auth.get("insecure", _boolean, False)
    if not name and not insecure:
        raise PoolSpecError(auth.path, "give secretRef (the pool's keys), or insecure: true")
    proxies = auth.get("trustedProxies", _networks, PRIVATE_NETWORKS)
    return AuthSpec(name, insecure, proxies)


def _networks(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PoolSpecError(path, "must be a list of addresses or CIDR blocks")
    try:
        parse_networks(value)
    except ValueError as error:
        raise PoolSpecError(path, str(error)) from None
    return tuple(value)


def _limits(spec: _Reader) -> LimitsSpec:
    limits = spec.section("limits")
    count = _integer(0, MAX_LIMIT)
    return LimitsSpec(
        connections_per_address=limits.get("connectionsPerAddress", count, None),
        connection_attempts_per_address=limits.get("connectionAttemptsPerAddress", count, None),
        messages_per_second=limits.get("messagesPerSecond", _number(0, MAX_LIMIT), None),
        # The nodes need room for one message at least whenever a rate applies.
        message_burst=limits.get("messageBurst", _integer(1, MAX_LIMIT), None),
        channels_per_connection=limits.get("channelsPerConnection", count, None),
    )


def parse_pool_spec(document: Mapping[str, Any]) -> PoolSpec:
    """The frozen ``PoolSpec`` of a resource's ``spec``, or :class:`PoolSpecError`."""
    spec = _Reader(document, "spec")
    nodes = _integer(1, MAX_NODES)
    health = spec.section("healthCheck")
    scaling = spec.section("autoscaling")
    gateway = spec.section("gateway")
    parsed = PoolSpec(
        redis=_redis(spec),
        auth=_auth(spec),
        image=spec.get("image", _text, ""),
        image_pull_policy=spec.get(
            "imagePullPolicy", _choice("Always", "IfNotPresent", "Never"), "IfNotPresent"
        ),
        strategy=StrategyName(
            spec.get("strategy", _choice(*(s.value for s in StrategyName)), "least-connections")
        ),
        replicas=spec.get("replicas", nodes, 3),
        min_replicas=spec.get("minReplicas", nodes, 1),
        max_replicas=spec.get("maxReplicas", nodes, MAX_NODES),
        max_connections=spec.get("maxConnections", _integer(1), 100_000),
        health_threshold=spec.get("healthThreshold", _integer(1), 3),
        health_check=HealthCheckSpec(
            interval=health.get("interval", _seconds(0, 3600, positive=True), 5.0),
            timeout=health.get("timeout", _seconds(0, 3600, positive=True), 3.0),
        ),
        drain_window=spec.get("drainWindow", _seconds(0, 3600, positive=False), 10.0),
        resources=spec.get("resources", _mapping, {}),
        autoscaling=AutoscalingSpec(
            enabled=scaling.get("enabled", _boolean, True),
            target_connections_per_node=scaling.get("targetConnectionsPerNode", _integer(1), 1000),
            scale_down_stabilization_seconds=scaling.get(
                "scaleDownStabilizationSeconds", _integer(0, 3600), 300
            ),
            scale_up_step=scaling.get("scaleUpStep", nodes, 4),
        ),
        gateway=GatewaySpec(
            replicas=gateway.get("replicas", nodes, 2),
            service_type=gateway.get(
                "serviceType", _choice("ClusterIP", "NodePort", "LoadBalancer"), "ClusterIP"
            ),
            resources=gateway.get("resources", _mapping, {}),
            trusted_proxies=gateway.get("trustedProxies", _networks, ()),
        ),
        limits=_limits(spec),
    )
    if parsed.min_replicas > parsed.max_replicas:
        raise PoolSpecError("spec.minReplicas", "must not exceed spec.maxReplicas")
    if parsed.health_check.timeout > parsed.health_check.interval:
        raise PoolSpecError("spec.healthCheck.timeout", "must not exceed healthCheck.interval")
    return parsed
