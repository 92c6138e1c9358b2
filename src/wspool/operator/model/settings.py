"""Settings of ``wspool operator``, each option declared once (:mod:`wspool.core.options`).

The operator itself logs in like ``kubectl`` does: in a pod with its service account, else
from ``$KUBECONFIG`` or ``~/.kube/config``. What it reconciles is bounded by ``--namespace``
(several, comma-separated; none: every namespace, which needs the chart's ClusterRole).
With ``--leader-election`` several replicas run and only the holder of a Lease acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wspool.core import checks
from wspool.core.checks import Check, Invalid
from wspool.core.options import LOG_FORMAT, LOG_LEVEL, ConfigError, option, options_of

__all__ = ["OPERATOR_OPTIONS", "OperatorSettings"]

# RFC 1123 label: what Kubernetes accepts as a namespace name.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _namespace(value: Any) -> str:
    if not isinstance(value, str) or not _NAMESPACE.fullmatch(value):
        raise Invalid(f"must be namespace names (not {value!r})")
    return value


def _lease_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAMESPACE.fullmatch(value):
        raise Invalid(f"must be a lower-case DNS label like wspool-operator (not {value!r})")
    return value


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = option(
        (),
        "--namespace",
        "WSPOOL_NAMESPACE",
        checks.each(Check(_namespace), "namespace names"),
        "comma-separated namespaces to reconcile; empty: every namespace",
        metavar="NAMESPACES",
    )
    redis_url: str | None = option(
        None,
        "--redis-url",
        "WSPOOL_OPERATOR_REDIS_URL",
        checks.redis_url,
        "read stats and write pool config here for every pool, instead of each pool's own Redis",
        metavar="URL",
    )
    image: str = option(
        "",
        "--image",
        "WSPOOL_IMAGE",
        Check(str),
        "container image of pools whose spec names none (the chart sets its own)",
        metavar="IMAGE",
    )
    sync_interval: float = option(
        10.0,
        "--sync-interval",
        "WSPOOL_SYNC_INTERVAL",
        checks.seconds(0.1, 3600),
        "seconds between status refreshes and autoscaling decisions of each pool",
        metavar="SECONDS",
    )
    health_port: int = option(
        0,
        "--health-port",
        "WSPOOL_HEALTH_PORT",
        checks.integer(0, 65535),
        "port of the liveness endpoint /healthz; 0: none",
        metavar="PORT",
    )
    metrics_port: int = option(
        8000,
        "--metrics-port",
        "WSPOOL_METRICS_PORT",
        checks.integer(0, 65535),
        "port of the Prometheus endpoint /metrics (reconciles, scaling, nodes per pool); 0: none",
        metavar="PORT",
    )
    leader_election: bool = option(
        False,
        "--leader-election",
        "WSPOOL_LEADER_ELECTION",
        checks.boolean,
        "act only while holding a Lease, so several replicas can run and one acts",
        switch=True,
    )
    lease_name: str = option(
        "wspool-operator",
        "--lease-name",
        "WSPOOL_LEASE_NAME",
        Check(_lease_name),
        "name of the Lease that replicas of one operator share",
        metavar="NAME",
    )
    lease_namespace: str = option(
        "",
        "--lease-namespace",
        "WSPOOL_LEASE_NAMESPACE",
        Check(_namespace),
        "namespace of the Lease (the chart sets the operator's own)",
        metavar="NAMESPACE",
    )
    lease_duration: float = option(
        15.0,
        "--lease-duration",
        "WSPOOL_LEASE_DURATION",
        checks.seconds(2, 300),
        "seconds without renewal after which a standby replica takes the Lease over",
        metavar="SECONDS",
    )
    log_format: str = LOG_FORMAT.declare("json")
    log_level: str = LOG_LEVEL.declare("info")

    def __post_init__(self) -> None:
        if self.leader_election and not self.lease_namespace:
            raise ConfigError(
                "--lease-namespace",
                "give the namespace of the Lease (the operator's own) with --leader-election",
                missing=True,
            )


OPERATOR_OPTIONS = options_of(OperatorSettings)
