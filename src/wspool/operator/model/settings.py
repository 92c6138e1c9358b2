"""Settings of ``wspool operator``, declared once as an option table (flag, variable, parser).

The operator itself logs in like ``kubectl`` does: in a pod with its service account, else
from ``$KUBECONFIG`` or ``~/.kube/config``. What it reconciles is bounded by ``--namespace``
(several, comma-separated; none: every namespace, which needs the chart's ClusterRole).
With ``--leader-election`` several replicas run and only the holder of a Lease acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wspool.core.options import (
    LOG_OPTIONS,
    ConfigError,
    Option,
    parse_boolean,
    parse_list,
    parse_port,
    parse_redis_url,
)

__all__ = ["OPERATOR_OPTIONS", "OperatorSettings"]

# RFC 1123 label: what Kubernetes accepts as a namespace name.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _namespace(text: str) -> str:
    if not _NAMESPACE.fullmatch(text):
        raise ValueError(f"must be namespace names (not {text!r})")
    return text


def _lease_name(text: str) -> str:
    if not _NAMESPACE.fullmatch(text):
        raise ValueError(f"must be a lower-case DNS label like wspool-operator (not {text!r})")
    return text


def _interval(text: str) -> float:
    value = float(text)
    if not 0.1 <= value <= 3600:
        raise ValueError("must be between 0.1 and 3600 seconds")
    return value


def _lease_duration(text: str) -> float:
    value = float(text)
    if not 2 <= value <= 300:
        raise ValueError("must be between 2 and 300 seconds")
    return value


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    redis_url: str | None = None
    image: str = ""
    sync_interval: float = 10.0
    health_port: int = 0
    metrics_port: int = 8000
    leader_election: bool = False
    lease_name: str = "wspool-operator"
    lease_namespace: str = ""
    lease_duration: float = 15.0
    log_format: str = "json"
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.leader_election and not self.lease_namespace:
            raise ConfigError(
                "--lease-namespace",
                "give the namespace of the Lease (the operator's own) with --leader-election",
                missing=True,
            )


OPERATOR_OPTIONS: tuple[Option, ...] = (
    Option(
        "namespaces",
        "--namespace",
        "WSPOOL_NAMESPACE",
        parse_list(_namespace),
        "comma-separated namespaces to reconcile; empty: every namespace",
        metavar="NAMESPACES",
    ),
    Option(
        "redis_url",
        "--redis-url",
        "WSPOOL_OPERATOR_REDIS_URL",
        parse_redis_url,
        "read stats and write pool config here for every pool, instead of each pool's own Redis",
        metavar="URL",
    ),
    Option(
        "image",
        "--image",
        "WSPOOL_IMAGE",
        str,
        "container image of pools whose spec names none (the chart sets its own)",
        metavar="IMAGE",
    ),
    Option(
        "sync_interval",
        "--sync-interval",
        "WSPOOL_SYNC_INTERVAL",
        _interval,
        "seconds between status refreshes and autoscaling decisions of each pool",
        metavar="SECONDS",
    ),
    Option(
        "health_port",
        "--health-port",
        "WSPOOL_HEALTH_PORT",
        parse_port,
        "port of the liveness endpoint /healthz; 0: none",
        metavar="PORT",
    ),
    Option(
        "metrics_port",
        "--metrics-port",
        "WSPOOL_METRICS_PORT",
        parse_port,
        "port of the Prometheus endpoint /metrics (reconciles, scaling, nodes per pool); 0: none",
        metavar="PORT",
    ),
    Option(
        "leader_election",
        "--leader-election",
        "WSPOOL_LEADER_ELECTION",
        parse_boolean,
        "act only while holding a Lease, so several replicas can run and one acts",
        switch=True,
    ),
    Option(
        "lease_name",
        "--lease-name",
        "WSPOOL_LEASE_NAME",
        _lease_name,
        "name of the Lease that replicas of one operator share",
        metavar="NAME",
    ),
    Option(
        "lease_namespace",
        "--lease-namespace",
        "WSPOOL_LEASE_NAMESPACE",
        _namespace,
        "namespace of the Lease (the chart sets the operator's own)",
        metavar="NAMESPACE",
    ),
    Option(
        "lease_duration",
        "--lease-duration",
        "WSPOOL_LEASE_DURATION",
        _lease_duration,
        "seconds without renewal after which a standby replica takes the Lease over",
        metavar="SECONDS",
    ),
    *LOG_OPTIONS,
)
