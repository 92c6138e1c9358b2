"""``PoolConfig``: how the gateway spreads connections and watches nodes.

Parsed once at the edge (``POST /api/v1/pool/config``, the stored copy in Redis) into a
frozen value. A change is a *partial* document merged over the current config; every
field is checked and the first bad one is named by its JSON path (``healthCheck.interval``),
so a rejected change leaves the running config exactly as it was.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CircuitConfig", "HealthCheckConfig", "PoolConfig", "PoolConfigError", "StrategyName"]


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
    interval: float = 5.0
    """Seconds between checks of a healthy node."""
    timeout: float = 3.0
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
    max_connections: int = 100_000
    """Connections the whole pool accepts; new ones beyond it are refused."""
    health_threshold: int = 3
    """Consecutive failed health checks that mark a node down."""
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    circuit_breaker: CircuitConfig = field(default_factory=CircuitConfig)
    weights: Mapping[str, int] = field(default_factory=dict)
    """Per-node weight overrides by server id; a node not named keeps its own weight."""
    slow_start: float = 10.0
    """Seconds over which a node that joins or recovers ramps up to its full share."""

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


def _integer(minimum: int) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PoolConfigError(path, "must be an integer")
        if value < minimum:
            raise PoolConfigError(path, f"must be at least {minimum}")
        return value

    return check


def _seconds(*, positive: bool) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PoolConfigError(path, "must be a number of seconds")
        if not math.isfinite(value):  # NaN passes every comparison below
            raise PoolConfigError(path, "must be a finite number of seconds")
        if value < 0 or (positive and value == 0):
            raise PoolConfigError(path, "must be greater than 0" if positive else "must be ≥ 0")
        if value > 3600:
            raise PoolConfigError(path, "must be at most 3600")
        return float(value)

    return check


def _strategy(path: str, value: Any) -> StrategyName:
    try:
        return StrategyName(value)
    except ValueError:
        choices = ", ".join(s.value for s in StrategyName)
        raise PoolConfigError(path, f"unknown strategy {value!r} (one of {choices})") from None


def _weights(path: str, value: Any) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise PoolConfigError(path, "must be an object of server id → weight")
    check = _integer(0)
    return {str(k): check(f"{path}.{k}", v) for k, v in value.items()}


_FIELDS: dict[type[Any], dict[str, Callable[[str, Any], Any]]] = {
    PoolConfig: {
        "strategy": _strategy,
        "max_connections": _integer(1),
        "health_threshold": _integer(1),
        "weights": _weights,
        "slow_start": _seconds(positive=False),
    },
    HealthCheckConfig: {
        "interval": _seconds(positive=True),
        "timeout": _seconds(positive=True),
        "fast_interval": _seconds(positive=True),
        "healthy_threshold": _integer(1),
    },
    CircuitConfig: {
        "failure_threshold": _integer(1),
        "open_seconds": _seconds(positive=True),
        "trial_connections": _integer(1),
    },
}


def _merge(current: Any, patch: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(patch, Mapping):
        raise PoolConfigError(where, "must be a JSON object")
    by_json = {_camel(f.name): f for f in dataclasses.fields(current)}
    checks = _FIELDS[type(current)]
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        path = f"{prefix}{key}"
        known = by_json.get(key)
        if known is None:
            raise PoolConfigError(path, "unknown field")
        if known.name in checks:
            changes[known.name] = checks[known.name](path, value)
        else:  # a nested section, merged field by field
            changes[known.name] = _merge(getattr(current, known.name), value, f"{path}.")
    return dataclasses.replace(current, **changes)
