"""What a ``WebSocketPool`` becomes: the Kubernetes objects the operator applies, as plain dicts.

Every object carries the pool's labels and an ownerReference to the pool (controller, so
``kubectl delete pool`` garbage-collects all of it), and is rendered whole, so the operator
can apply it with server-side apply on every reconcile and the result is the same each time.

- ConfigMap ``<pool>-config``: the non-secret settings as environment variables (both
  Deployments load it with ``envFrom``; every variable of the pods comes from
  :mod:`~wspool.operator.model.podenv`) and the declared pool config as ``poolConfig.json``;
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

"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wspool.core.config import GATEWAY_PORT, SERVER_PORT
from wspool.operator.model.podenv import (
    LIVE_KEYS,
    config_environment,
    gateway_environment,
    server_environment,
)
from wspool.operator.model.poolspec import PoolSpec

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "PLURAL",
    "PRESTOP_SECONDS",
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
PRESTOP_SECONDS = 2
"""Pause before SIGTERM, so endpoints stop sending new clients before the node drains."""
GRACE_MARGIN_SECONDS = 10
"""Time after the drain window for the node to finish its handovers, deregister and exit."""
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


def key_prefix(spec: PoolSpec, ref: PoolRef) -> str:
    """The pool's Redis key prefix: the spec's, or ``<namespace>.<name>:``."""
    return spec.redis.key_prefix or f"{ref.namespace}.{ref.name}:"


def render_configmap(spec: PoolSpec, ref: PoolRef) -> dict[str, Any]:
    data = config_environment(spec, key_prefix(spec, ref))
    data["poolConfig.json"] = json.dumps(spec.pool_config(), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, f"{ref.name}-config", None),
        "data": data,
    }


def _checksum(configmap: Mapping[str, Any]) -> str:
    data = {k: v for k, v in configmap["data"].items() if k not in LIVE_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


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
    container["env"] = server_environment(spec)
    container["readinessProbe"] = _probe(SERVER_PORT, 1)
    # /health answers 503 for the whole drain (by design, to leave rotation); liveness must
    # not restart a draining node, so it tolerates failures for longer than the grace period.
    container["livenessProbe"] = _probe(SERVER_PORT, math.ceil(grace / PROBE_PERIOD_SECONDS) + 1)
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}}
    return _deployment(ref, "server", replicas, container, checksum, grace)


def render_gateway_deployment(spec: PoolSpec, ref: PoolRef, checksum: str) -> dict[str, Any]:
    container = _container(spec, ref, "gateway", GATEWAY_PORT, spec.gateway.resources)
    container["env"] = gateway_environment(spec)
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
