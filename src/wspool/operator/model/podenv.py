"""The environment of a pool's pods: every variable named by the option it sets.

A variable is looked up by the settings field it fills in the declarations of
:mod:`wspool.core.config` (``_server("drain_window")``), never written out, so a renamed option
cannot leave a pod with a variable nobody reads. The ConfigMap feeds both Deployments; the
variables in it are read by one command or the other (the same name when both read it).
"""

from __future__ import annotations

from typing import Any

from wspool.core.config import GATEWAY_OPTIONS, GATEWAY_PORT, SERVER_OPTIONS, SERVER_PORT
from wspool.core.options import variable
from wspool.operator.model.poolspec import PoolSpec

__all__ = [
    "LIVE_KEYS",
    "POD_IP",
    "config_environment",
    "gateway_environment",
    "server_environment",
]

POD_IP = "POD_IP"
"""The one variable of the server pods that wspool does not read: the pod spec itself does,
to write the node's advertised URL."""


def _server(path: str) -> str:
    """The variable ``wspool server`` reads for the field at ``path``."""
    return variable(SERVER_OPTIONS, path)


def _gateway(path: str) -> str:
    """The variable ``wspool gateway`` reads for the field at ``path``."""
    return variable(GATEWAY_OPTIONS, path)


def _both(path: str) -> str:
    """The variable both commands read for the field at ``path`` (the ConfigMap and the
    pool's Secrets feed both Deployments, so it must be one name)."""
    name = _server(path)
    if _gateway(path) != name:
        raise LookupError(f"{path} is ${name} to a node but ${_gateway(path)} to a gateway")
    return name


def config_environment(spec: PoolSpec, key_prefix: str) -> dict[str, str]:
    """The ConfigMap's variables, which both Deployments load."""
    env = {
        _both("key_prefix"): key_prefix,
        _gateway("strategy"): spec.strategy.value,
        _gateway("max_connections"): str(spec.max_connections),
        _server("drain_window"): f"{spec.drain_window:g}",
        _server("publish_delay"): f"{spec.publish_delay:g}",
        _both("log_format"): "json",
    }
    if spec.redis.url:
        env[_both("redis_url")] = spec.redis.url
    if spec.auth.insecure:
        env[_both("security.insecure")] = "true"
    return env


LIVE_KEYS = frozenset({"poolConfig.json", _gateway("strategy"), _gateway("max_connections")})
"""ConfigMap keys that need no restart: the gateways take them from the pool config in Redis
(the environment only seeds a gateway that finds none there)."""


def _secret_env(spec: PoolSpec, *keys: tuple[str, str, bool]) -> list[dict[str, Any]]:
    """Variables read from the pool's Secrets: ``keys`` are (variable, key, optional)."""
    env: list[dict[str, Any]] = []
    if spec.redis.secret is not None:
        redis = {"name": spec.redis.secret.name, "key": spec.redis.secret.key}
        env.append({"name": _both("redis_url"), "valueFrom": {"secretKeyRef": redis}})
    if spec.auth.secret_name:
        for name, key, optional in keys:
            ref: dict[str, Any] = {"name": spec.auth.secret_name, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _number(value: float) -> str:
    # "%g" would write a million as 1e+06, which the node's integer options refuse.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _limits_env(spec: PoolSpec) -> list[dict[str, Any]]:
    """The node's limits the spec sets (the others keep the node's defaults)."""
    limits = spec.limits
    values = (
        ("security.max_connections_per_ip", limits.connections_per_address),
        ("security.connection_attempts_per_ip", limits.connection_attempts_per_address),
        ("security.messages_per_second", limits.messages_per_second),
        ("security.message_burst", limits.message_burst),
        ("security.max_channels_per_connection", limits.channels_per_connection),
    )
    return [
        {"name": _server(field), "value": _number(value)}
        for field, value in values
        if value is not None
    ]


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def server_environment(spec: PoolSpec) -> list[dict[str, Any]]:
    """The server container's own variables (on top of the ConfigMap's)."""
    return [
        _field(_server("id"), "metadata.name"),
        _field(POD_IP, "status.podIP"),
        {"name": _server("port"), "value": str(SERVER_PORT)},
        {"name": _server("advertise_url"), "value": f"ws://$({POD_IP}):{SERVER_PORT}/ws"},
        # Clients are counted by the address the gateways forward, not the gateways' own.
        {
            "name": _server("security.trusted_proxies"),
            "value": ",".join(spec.node_trusted_proxies),
        },
        *_limits_env(spec),
        *_secret_env(
            spec,
            (_server("security.jwt_secret"), "jwtSecret", spec.auth.insecure),
            (_server("ticket_secret"), "ticketSecret", True),
        ),
    ]


def gateway_environment(spec: PoolSpec) -> list[dict[str, Any]]:
    """The gateway container's own variables (on top of the ConfigMap's)."""
    env = [
        _field(_gateway("id"), "metadata.name"),
        {"name": _gateway("port"), "value": str(GATEWAY_PORT)},
        *_secret_env(
            spec,
            (_gateway("security.jwt_secret"), "jwtSecret", spec.auth.insecure),
            (_gateway("security.admin_token"), "adminToken", True),
            (_gateway("ticket_secret"), "ticketSecret", True),
        ),
    ]
    if spec.gateway.trusted_proxies:
        env.append(
            {
                "name": _gateway("security.trusted_proxies"),
                "value": ",".join(spec.gateway.trusted_proxies),
            }
        )
    return env
