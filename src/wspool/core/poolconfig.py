"""``PoolConfig``: how the gateway spreads connections and watches nodes.

Parsed once at the edge (``POST /api/v1/pool/config``, the stored copy in Redis) into a
frozen value. A change is a *partial* document merged over the current config; every
field is checked (by the rules of :mod:`wspool.core.checks`, as a pool's spec is) and the
first bad one is named by its JSON path (``healthCheck.interval``), so a rejected change
leaves the running config exactly as it was. The defaults are named here once: a gateway's
flags and a ``WebSocketPool``'s spec start from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wspool.core import checks
from wspool.core.checks import Invalid

__all__ = [
    "DEFAULT_HEALTH_INTERVAL",
    "DEFAULT_HEALTH_THRESHOLD",
    "DEFAULT_HEALTH_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_SECONDS",
    "CircuitConfig",
    "HealthCheckConfig",
    "PoolConfig",
    "PoolConfigError",
    "StrategyName",
]

DEFAULT_MAX_CONNECTIONS = 100_000
DEFAULT_HEALTH_THRESHOLD = 3
DEFAULT_HEALTH_INTERVAL = 5.0
DEFAULT_HEALTH_TIMEOUT = 3.0
MAX_SECONDS = 3600
"""The longest time any field of the config (or of a pool's spec) takes."""


class StrategyName(StrEnum):
    """How the gateway picks the node for a new connection (``gateway/model/strategies.py``)."""

    ROUND_ROBIN = "round-robin"
    LEAST_CONNECTIONS = "least-connections"
    WEIGHTED = "weighted"


class PoolConfigError(ValueError):
    """A config change was rejected; ``field`` is the JSON path of the offending value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    interval: float = DEFAULT_HEALTH_INTERVAL
    """Seconds between checks of a healthy node."""
    timeout: float = DEFAULT_HEALTH_TIMEOUT
    """Seconds a check may take before it counts as failed."""
    fast_interval: float = 1.0
    """Seconds between checks after a failure, until the node is settled either way."""
    healthy_threshold: int = 2
    """Consecutive good checks that bring a node that was down back into rotation."""


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    failure_threshold: int = 3
    """Consecutive failed connects to a node that open its circuit."""
    open_seconds: float = 5.0
    """How long an open circuit refuses connections before trying again."""
    trial_connections: int = 1
    """Connections let through while half-open; as many successes close it."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    strategy: StrategyName = StrategyName.LEAST_CONNECTIONS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections the whole pool accepts; new ones beyond it are refused."""
    health_threshold: int = DEFAULT_HEALTH_THRESHOLD
    """Consecutive failed health checks that mark a node down."""
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    circuit_breaker: CircuitConfig = field(default_factory=CircuitConfig)
    weights: Mapping[str, int] = field(default_factory=dict)
    """Per-node weight overrides by server id; a node not named keeps its own weight."""
    slow_start: float = 10.0
    """Seconds over which a node that joins or recovers ramps up to its full share."""
    seamless: bool = True
    """Whether the gateway moves the clients of a node that drains or is lost to another
    node, their WebSockets open; off, they are closed with 1012 and reconnect."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = _to_json(self)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> PoolConfig:
        return cls().merged(document)

    def merged(self, patch: Mapping[str, Any]) -> PoolConfig:
        """This config with ``patch`` (a partial JSON document) applied, or PoolConfigError."""
        merged: PoolConfig = _merge(self, patch, "")
        return merged


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, StrategyName):
        return value.value
    return value


def _strategy(value: Any) -> StrategyName:
    try:
        return StrategyName(value)
    except ValueError:
        choices = ", ".join(s.value for s in StrategyName)
        raise Invalid(f"unknown strategy {value!r} (one of {choices})") from None


_WEIGHT = checks.integer(0)


def _weights(path: str, value: Any) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise PoolConfigError(path, "must be an object of server id → weight")
    return {str(k): _checked(_WEIGHT, f"{path}.{k}", v) for k, v in value.items()}


def _checked(check: Callable[[Any], Any], path: str, value: Any) -> Any:
    try:
        return check(value)
    except Invalid as error:
        raise PoolConfigError(path, str(error)) from None


_SECONDS = checks.seconds(0, MAX_SECONDS)
_POSITIVE_SECONDS = checks.seconds(0, MAX_SECONDS, above=True)
_COUNT = checks.integer(1)

_FIELDS: dict[type[Any], dict[str, Callable[[Any], Any]]] = {
    PoolConfig: {
        "strategy": _strategy,
        "max_connections": _COUNT,
        "health_threshold": _COUNT,
        "slow_start": _SECONDS,
        "seamless": checks.boolean,
    },
    HealthCheckConfig: {
        "interval": _POSITIVE_SECONDS,
        "timeout": _POSITIVE_SECONDS,
        "fast_interval": _POSITIVE_SECONDS,
        "healthy_threshold": _COUNT,
    },
    CircuitConfig: {
        "failure_threshold": _COUNT,
        "open_seconds": _POSITIVE_SECONDS,
        "trial_connections": _COUNT,
    },
}


def _merge(current: Any, patch: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(patch, Mapping):
        raise PoolConfigError(where, "must be a JSON object")
    by_json = {_camel(f.name): f for f in dataclasses.fields(current)}
    rules = _FIELDS[type(current)]
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        path = f"{prefix}{key}"
        known = by_json.get(key)
        if known is None:
            raise PoolConfigError(path, "unknown field")
        if known.name == "weights":
            changes[known.name] = _weights(path, value)
        elif known.name in rules:
            changes[known.name] = _checked(rules[known.name], path, value)
        else:  # a nested section, merged field by field
            changes[known.name] = _merge(getattr(current, known.name), value, f"{path}.")
    return dataclasses.replace(current, **changes)
