"""``PoolSpec``: a ``WebSocketPool`` resource's spec, parsed once at the edge into a frozen value.

The API server already rejects bad specs at admission (the CRD's structural schema and CEL
rules, crds/); this parser repeats the checks that the operator relies on, so a spec stored
before a schema change, or read from a cluster without CEL, still fails with the JSON path of
the offending field instead of producing a broken Deployment. The values are checked by the
rules of :mod:`wspool.core.checks`, as the gateways' ``PoolConfig`` is, and the defaults are
the pool config's and the node's own (they match the CRD's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wspool.core import checks
from wspool.core.checks import Invalid
from wspool.core.config import DRAIN_WINDOW, MAX_PUBLISH_DELAY
from wspool.core.poolconfig import (
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HEALTH_THRESHOLD,
    DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    MAX_SECONDS,
    StrategyName,
)

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
"""The farm never runs more server nodes than this (the largest farm sized and tested)."""


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
    interval: float = DEFAULT_HEALTH_INTERVAL
    timeout: float = DEFAULT_HEALTH_TIMEOUT


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    health_threshold: int = DEFAULT_HEALTH_THRESHOLD
    health_check: HealthCheckSpec = field(default_factory=HealthCheckSpec)
    drain_window: float = DRAIN_WINDOW
    publish_delay: float = 0.0
    seamless: bool = True
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
            "seamless": self.seamless,
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

    def get(self, key: str, check: Callable[[Any], Any], default: Any) -> Any:
        """The value at ``key`` checked by ``check``, or ``default`` when it is absent."""
        value = self._document.get(key)
        if value is None:
            return default
        try:
            return check(value)
        except Invalid as error:
            raise PoolSpecError(f"{self.path}.{key}", str(error)) from None


_NODES = checks.integer(1, MAX_NODES)
_COUNT = checks.integer(1)
_LIMIT = checks.integer(0, MAX_LIMIT)
_POSITIVE_SECONDS = checks.seconds(0, MAX_SECONDS, above=True)


def _redis(spec: _Reader) -> RedisSpec:
    if not spec.has("redis"):
        raise PoolSpecError("spec.redis", "is required: give url or secretRef")
    redis = spec.section("redis")
    url = redis.get("url", checks.redis_url, "")
    secret = None
    if redis.has("secretRef"):
        ref = redis.section("secretRef")
        secret = SecretKeyRef(ref.get("name", checks.text, ""), ref.get("key", checks.text, "url"))
        if not secret.name:
            raise PoolSpecError(f"{ref.path}.name", "is required")
    if bool(url) == (secret is not None):
        raise PoolSpecError(redis.path, "give exactly one of url and secretRef")
    return RedisSpec(url, secret, redis.get("keyPrefix", checks.key_prefix, ""))


def _auth(spec: _Reader) -> AuthSpec:
    auth = spec.section("auth")
    name = auth.section("secretRef").get("name", checks.text, "") if auth.has("secretRef") else ""
    insecure = auth.get("insecure", checks.boolean, False)
    if not name and not insecure:
        raise PoolSpecError(auth.path, "give secretRef (the pool's keys), or insecure: true")
    proxies = auth.get("trustedProxies", checks.networks, PRIVATE_NETWORKS)
    return AuthSpec(name, insecure, proxies)


def _limits(spec: _Reader) -> LimitsSpec:
    limits = spec.section("limits")
    return LimitsSpec(
        connections_per_address=limits.get("connectionsPerAddress", _LIMIT, None),
        connection_attempts_per_address=limits.get("connectionAttemptsPerAddress", _LIMIT, None),
        messages_per_second=limits.get("messagesPerSecond", checks.number(0, MAX_LIMIT), None),
        # The nodes need room for one message at least whenever a rate applies.
        message_burst=limits.get("messageBurst", checks.integer(1, MAX_LIMIT), None),
        channels_per_connection=limits.get("channelsPerConnection", _LIMIT, None),
    )


def parse_pool_spec(document: Mapping[str, Any]) -> PoolSpec:
    """The frozen ``PoolSpec`` of a resource's ``spec``, or :class:`PoolSpecError`."""
    spec = _Reader(document, "spec")
    health = spec.section("healthCheck")
    scaling = spec.section("autoscaling")
    gateway = spec.section("gateway")
    defaults = PoolSpec(RedisSpec(), AuthSpec())
    parsed = PoolSpec(
        redis=_redis(spec),
        auth=_auth(spec),
        image=spec.get("image", checks.text, ""),
        image_pull_policy=spec.get(
            "imagePullPolicy",
            checks.choice("Always", "IfNotPresent", "Never"),
            defaults.image_pull_policy,
        ),
        strategy=StrategyName(
            spec.get("strategy", checks.choice(*StrategyName), defaults.strategy)
        ),
        replicas=spec.get("replicas", _NODES, defaults.replicas),
        min_replicas=spec.get("minReplicas", _NODES, defaults.min_replicas),
        max_replicas=spec.get("maxReplicas", _NODES, defaults.max_replicas),
        max_connections=spec.get("maxConnections", _COUNT, defaults.max_connections),
        health_threshold=spec.get("healthThreshold", _COUNT, defaults.health_threshold),
        health_check=HealthCheckSpec(
            interval=health.get("interval", _POSITIVE_SECONDS, defaults.health_check.interval),
            timeout=health.get("timeout", _POSITIVE_SECONDS, defaults.health_check.timeout),
        ),
        drain_window=spec.get("drainWindow", checks.seconds(0, MAX_SECONDS), defaults.drain_window),
        publish_delay=spec.get(
            "publishDelay", checks.seconds(0, MAX_PUBLISH_DELAY), defaults.publish_delay
        ),
        seamless=spec.get("seamless", checks.boolean, defaults.seamless),
        resources=spec.get("resources", checks.mapping, {}),
        autoscaling=AutoscalingSpec(
            enabled=scaling.get("enabled", checks.boolean, defaults.autoscaling.enabled),
            target_connections_per_node=scaling.get(
                "targetConnectionsPerNode", _COUNT, defaults.autoscaling.target_connections_per_node
            ),
            scale_down_stabilization_seconds=scaling.get(
                "scaleDownStabilizationSeconds",
                checks.integer(0, MAX_SECONDS),
                defaults.autoscaling.scale_down_stabilization_seconds,
            ),
            scale_up_step=scaling.get("scaleUpStep", _NODES, defaults.autoscaling.scale_up_step),
        ),
        gateway=GatewaySpec(
            replicas=gateway.get("replicas", _NODES, defaults.gateway.replicas),
            service_type=gateway.get(
                "serviceType",
                checks.choice("ClusterIP", "NodePort", "LoadBalancer"),
                defaults.gateway.service_type,
            ),
            resources=gateway.get("resources", checks.mapping, {}),
            trusted_proxies=gateway.get("trustedProxies", checks.networks, ()),
        ),
        limits=_limits(spec),
    )
    if parsed.min_replicas > parsed.max_replicas:
        raise PoolSpecError("spec.minReplicas", "must not exceed spec.maxReplicas")
    if parsed.health_check.timeout > parsed.health_check.interval:
        raise PoolSpecError("spec.healthCheck.timeout", "must not exceed healthCheck.interval")
    return parsed
