"""What a ``WebSocketPool`` becomes: the Kubernetes objects the operator applies, as plain dicts.

Every object carries the pool's labels and an ownerReference to the pool (controller, so
``kubectl delete pool`` garbage-collects all of it), and is rendered whole, so the operator
can apply it with server-side apply on every reconcile and the result is the same each time.

- ConfigMap ``<pool>-config``: the non-secret settings as environment variables (both
  Deployments load it with ``envFrom``) and the declared pool config as ``poolConfig.json``;
  a checksum of what the pods read only at start is a pod template annotation, so changing
  that rolls the pods. The pool config (strategy, maxConnections, health checks) is not in
  it: the operator pushes it into Redis and the gateways follow it live.
- Deployment ``<pool>-server``: ``wspool server`` nodes. A node drains on SIGTERM over
  ``drainWindow``; ``terminationGracePeriodSeconds`` covers the preStop pause, that window and
  a margin, and the liveness probe tolerates the 503 that ``/health`` answers while draining.
- Deployment ``<pool>-gateway``: ``wspool gateway`` replicas, which find the nodes in Redis.
- Service ``<pool>-server`` (headless: clients that connect to nodes directly resolve each
  pod) and Service ``<pool>-gateway`` (the pool's entry point).
- PodDisruptionBudgets ``<pool>-server`` and ``<pool>-gateway``: voluntary evictions (a node
  drain, a cluster upgrade) take one node and one gateway at a time.

Variables the pods read are named by the option tables of :mod:`wspool.core.config`, so a
renamed option cannot leave a manifest setting a variable nobody reads.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wspool.core.config import GATEWAY_OPTIONS, SERVER_OPTIONS
from wspool.core.options import Option
from wspool.operator.model.poolspec import PoolSpec

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "GATEWAY_PORT",
    "KIND",
    "PLURAL",
    "PRESTOP_SECONDS",
    "SERVER_PORT",
    "PoolRef",
    "grace_period",
    "key_prefix",
    "pool_labels",
    "render_configmap",
    "render_gateway_deployment",
    "render_gateway_pdb",
    "render_gateway_service",
    "render_pool",
    "render_server_deployment",
    "render_server_pdb",
    "render_server_service",
    "selector_string",
]

API_GROUP = "realtime.acc.io"
API_VERSION = "v1alpha1"
KIND = "WebSocketPool"
PLURAL = "websocketpools"
SERVER_PORT = 8081
GATEWAY_PORT = 8080
PRESTOP_SECONDS = 2
"""Pause before SIGTERM, so endpoints stop sending new clients before the node drains."""
GRACE_MARGIN_SECONDS = 10
"""Time after the drain window for the node to deregister and exit."""
PROBE_PERIOD_SECONDS = 5
MANAGER = "wspool-operator"


@dataclass(frozen=True, slots=True)
class PoolRef:
    """Which resource the objects belong to."""

    name: str
    namespace: str
    uid: str
    default_image: str = ""

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def pool_labels(pool: str, component: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "websocket-pool",
        "app.kubernetes.io/instance": pool,
        "app.kubernetes.io/managed-by": MANAGER,
    }
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def _selector(pool: str, component: str) -> dict[str, str]:
    labels = pool_labels(pool, component)
    del labels["app.kubernetes.io/managed-by"]
    return labels


def selector_string(pool: str, component: str = "server") -> str:
    """The label selector of the pool's nodes, as the scale subresource reports it."""
    return ",".join(f"{k}={v}" for k, v in sorted(_selector(pool, component).items()))


def grace_period(spec: PoolSpec) -> int:
    """Seconds Kubernetes waits for a stopping node: preStop, the drain, a margin."""
    return PRESTOP_SECONDS + math.ceil(spec.drain_window) + GRACE_MARGIN_SECONDS


def _metadata(ref: PoolRef, name: str, component: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": pool_labels(ref.name, component),
        "ownerReferences": [ref.owner_reference()],
    }


def _environment(spec: PoolSpec, ref: PoolRef) -> dict[str, str]:
    env = {
        "WSPOOL_KEY_PREFIX": spec.redis.key_prefix or f"{ref.namespace}.{ref.name}:",
        "WSPOOL_STRATEGY": spec.strategy.value,
        "WSPOOL_MAX_CONNECTIONS": str(spec.max_connections),
        "WSPOOL_DRAIN_WINDOW": f"{spec.drain_window:g}",
        "WSPOOL_LOG_FORMAT": "json",
    }
    if spec.redis.url:
        env["REDIS_URL"] = spec.redis.url
    if spec.auth.insecure:
        env["WSPOOL_INSECURE"] = "true"
    return env


def key_prefix(spec: PoolSpec, ref: PoolRef) -> str:
    """The pool's Redis key prefix: the spec's, or ``<namespace>.<name>:``."""
    return _environment(spec, ref)["WSPOOL_KEY_PREFIX"]


def render_configmap(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    data = dict(_environment(spec, ref))
    data["poolConfig.json"] = json.dumps(spec.pool_config(), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, f"{ref.name}-config", None),
        "data": data,
    }


LIVE_KEYS = frozenset({"poolConfig.json", "WSPOOL_STRATEGY", "WSPOOL_MAX_CONNECTIONS"})
"""ConfigMap keys that need no restart: the gateways take them from the pool config in Redis
(the environment only seeds a gateway that finds none there)."""


def _checksum(configmap: Mapping[str, Any]) -> str:
    data = {k: v for k, v in configmap["data"].items() if k not in LIVE_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _secret_env(spec: PoolSpec, *keys: tuple[str, str, bool]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if spec.redis.secret is not None:
        redis = {"name": spec.redis.secret.name, "key": spec.redis.secret.key}
        env.append({"name": "REDIS_URL", "valueFrom": {"secretKeyRef": redis}})
    if spec.auth.secret_name:
        for variable, key, optional in keys:
            ref: dict[str, Any] = {"name": spec.auth.secret_name, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": variable, "valueFrom": {"secretKeyRef": ref}})
    return env


def _variable(options: Sequence[Option], field: str) -> str:
    """The environment variable of the option that fills ``field``."""
    return next(option.env for option in options if option.field == field)


def _number(value: float) -> str:
    # "%g" would write a million as 1e+06, which the node's integer options refuse.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _server_settings_env(spec: PoolSpec) -> list[dict[str, Any]]:
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
        {"name": _variable(SERVER_OPTIONS, field), "value": _number(value)}
        for field, value in values
        if value is not None
    ]


def _field(variable: str, path: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"fieldRef": {"fieldPath": path}}}


_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _deployment(
    ref: PoolRef,
    component: str,
    replicas: int,
    container: dict[str, Any],
    checksum: str,
    grace: int,
) -> dict[str, Any]:
    name = f"{ref.name}-{component}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(ref, name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(ref.name, component)},
            "strategy": {
                "type": "RollingUpdate",
                # Bring the new node up before an old one starts draining.
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pool_labels(ref.name, component),
                    "annotations": {f"{API_GROUP}/config-checksum": checksum},
                },
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [container],
                },
            },
        },
    }


def _container(
    spec: PoolSpec, ref: PoolRef, command: str, port: int, resources: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "name": command,
        "image": spec.image or ref.default_image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": [command],
        "ports": [{"name": "ws" if command == "server" else "http", "containerPort": port}],
        "envFrom": [{"configMapRef": {"name": f"{ref.name}-config"}}],
        "resources": dict(resources),
        "securityContext": _SECURITY_CONTEXT,
    }


def _probe(port: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "periodSeconds": PROBE_PERIOD_SECONDS,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def render_server_deployment(
    spec: PoolSpec, ref: PoolRef, replicas: int, checksum: str
) -> dict[str, Any]:
    grace = grace_period(spec)
    container = _container(spec, ref, "server", SERVER_PORT, spec.resources)
    container["env"] = [
        _field("WSPOOL_SERVER_ID", "metadata.name"),
        _field("POD_IP", "status.podIP"),
        {"name": "WSPOOL_PORT", "value": str(SERVER_PORT)},
        {"name": "WSPOOL_ADVERTISE_URL", "value": f"ws://$(POD_IP):{SERVER_PORT}/ws"},
        # Clients are counted by the address the gateways forward, not the gateways' own.
        {
            "name": _variable(SERVER_OPTIONS, "security.trusted_proxies"),
            "value": ",".join(spec.node_trusted_proxies),
        },
        *_server_settings_env(spec),
        *_secret_env(
            spec,
            ("WSPOOL_JWT_SECRET", "jwtSecret", spec.auth.insecure),
            ("WSPOOL_TICKET_SECRET", "ticketSecret", True),
        ),
    ]
    container["readinessProbe"] = _probe(SERVER_PORT, 1)
    # /health answers 503 for the whole drain (by design, to leave rotation); liveness must
    # not restart a draining node, so it tolerates failures for longer than the grace period.
    container["livenessProbe"] = _probe(SERVER_PORT, math.ceil(grace / PROBE_PERIOD_SECONDS) + 1)
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}}
    return _deployment(ref, "server", replicas, container, checksum, grace)


def render_gateway_deployment(spec: PoolSpec, ref: PoolRef, checksum: str) -> dict[str, Any]:
    container = _container(spec, ref, "gateway", GATEWAY_PORT, spec.gateway.resources)
    container["env"] = [
        _field("WSPOOL_GATEWAY_ID", "metadata.name"),
        {"name": "WSPOOL_PORT", "value": str(GATEWAY_PORT)},
        *_secret_env(
            spec,
            ("WSPOOL_JWT_SECRET", "jwtSecret", spec.auth.insecure),
            ("WSPOOL_ADMIN_TOKEN", "adminToken", True),
            ("WSPOOL_TICKET_SECRET", "ticketSecret", True),
        ),
    ]
    if spec.gateway.trusted_proxies:
        container["env"].append(
            {
                "name": _variable(GATEWAY_OPTIONS, "security.trusted_proxies"),
                "value": ",".join(spec.gateway.trusted_proxies),
            }
        )
    container["readinessProbe"] = _probe(GATEWAY_PORT, 1)
    container["livenessProbe"] = _probe(GATEWAY_PORT, 3)
    return _deployment(ref, "gateway", spec.gateway.replicas, container, checksum, 30)


def render_server_service(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref, f"{ref.name}-server", "server"),
        "spec": {
            "clusterIP": "None",
            "selector": _selector(ref.name, "server"),
            "ports": [{"name": "ws", "port": SERVER_PORT, "targetPort": "ws"}],
        },
    }


def render_gateway_service(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref, f"{ref.name}-gateway", "gateway"),
        "spec": {
            "type": spec.gateway.service_type,
            "selector": _selector(ref.name, "gateway"),
            "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}],
        },
    }


def _pdb(ref: PoolRef, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(ref, f"{ref.name}-{component}", component),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": _selector(ref.name, component)},
        },
    }


def render_server_pdb(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    return _pdb(ref, "server")


def render_gateway_pdb(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    """One gateway at a time: with several replicas the others keep serving; a single one
    may still be evicted, so it never blocks draining a Kubernetes node."""
    return _pdb(ref, "gateway")


def render_pool(spec: PoolSpec, ref: PoolRef, replicas: int) -> list[dict[str, Any]]:
    """Every object of the pool, in the order to apply them (config before its users)."""
    configmap = render_configmap(spec, ref)
    checksum = _checksum(configmap)
    return [
        configmap,
        render_server_service(spec, ref),
        render_gateway_service(spec, ref),
        render_server_deployment(spec, ref, replicas, checksum),
        render_gateway_deployment(spec, ref, checksum),
        render_server_pdb(spec, ref),
        render_gateway_pdb(spec, ref),
    ]
