"""A pool's ``status``: what the operator observed, and the conditions a user reads.

Conditions follow the Kubernetes API conventions (``type``, ``status`` ``"True"|"False"``,
a CamelCase ``reason``, a human ``message``, ``lastTransitionTime`` that moves only when
``status`` flips, and the ``observedGeneration`` they describe):

- ``Ready``: clients can be served: at least one gateway is ready and at least one server
  node is healthy in the registry as the gateways see it (read from the pool's Redis). Pods
  that Kubernetes calls ready are not enough: a node that never registered, or that every
  gateway has marked down, serves no one.
- ``Progressing``: the Deployments are still moving towards the spec (rollout, scaling,
  pods not yet ready).
- ``Degraded``: something needs a human: the last reconcile failed, the pool's stats cannot
  be read from Redis, or ready nodes are not healthy in the registry.
- ``AutoscalerOverride``: under autoscaling, ``spec.replicas`` (what ``kubectl scale``
  sets) differs from the node count the autoscaler keeps, so it is not what runs.

Every message goes through :func:`one_line`: whatever an error said, the status (and the
events, which use it too) carries one short line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DeploymentCounts",
    "PoolObservation",
    "deployment_counts",
    "format_time",
    "one_line",
    "parse_time",
    "render_conditions",
    "render_status",
]


def format_time(timestamp: float) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes ``metav1.Time``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


MESSAGE_LIMIT = 280
"""Characters of a condition message or an event; longer text is cut with an ellipsis."""

_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one line of at most ``limit`` characters, without URL credentials.

    Errors from clients can span lines (an API server's response dump) and name URLs; a
    status message is read in ``kubectl get``/``describe``, so it is cut, not wrapped, and a
    password in a ``redis://user:password@host`` never reaches it.
    """
    flat = " ".join(_CREDENTIALS.sub(r"\1***@", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class DeploymentCounts:
    desired: int = 0
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    rolled_out: bool = False


def deployment_counts(deployment: Mapping[str, Any] | None) -> DeploymentCounts:
    """A Deployment's replica counts (all 0 when it does not exist yet)."""
    if deployment is None:
        return DeploymentCounts()
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return DeploymentCounts(
        desired=int((deployment.get("spec") or {}).get("replicas", 1)),
        replicas=int(status.get("replicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        rolled_out=int(status.get("observedGeneration", 0)) >= int(generation),
    )


@dataclass(frozen=True, slots=True)
class PoolObservation:
    generation: int
    desired: int
    """The node Deployment's ``spec.replicas``."""
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    rolled_out: bool = False
    """The Deployment controller has seen the latest node Deployment spec."""
    gateways_desired: int = 0
    gateways_ready: int = 0
    healthy_nodes: int | None = None
    """Nodes registered, not draining and not marked down; None when unknown."""
    registered_nodes: int | None = None
    connections: int | None = None
    stats_error: str = ""
    error: str = ""
    """Why the last reconcile failed; empty when it succeeded."""
    spec_replicas: int | None = None
    """The resource's ``spec.replicas``; None when the spec could not be read."""
    autoscaling: tuple[int, int] | None = None
    """``(minReplicas, maxReplicas)`` when the autoscaler owns the node count."""

    @classmethod
    def of(
        cls,
        generation: int,
        servers: DeploymentCounts,
        gateways: DeploymentCounts,
        **observed: Any,
    ) -> PoolObservation:
        return cls(
            generation=generation,
            desired=servers.desired,
            replicas=servers.replicas,
            ready=servers.ready,
            updated=servers.updated,
            rolled_out=servers.rolled_out,
            gateways_desired=gateways.desired,
            gateways_ready=gateways.ready,
            **observed,
        )


def _ready(seen: PoolObservation) -> tuple[bool, str, str]:
    if seen.error:
        return False, "ReconcileFailed", seen.error
    gateways = f"{seen.gateways_ready} of {seen.gateways_desired} gateways ready"
    if seen.stats_error or seen.healthy_nodes is None:
        problem = seen.stats_error or "not read yet"
        return False, "StatsUnavailable", f"cannot read the pool's Redis: {problem}"
    registered = seen.healthy_nodes if seen.registered_nodes is None else seen.registered_nodes
    nodes = f"{seen.healthy_nodes} of {registered} registered server nodes healthy"
    if seen.healthy_nodes == 0:
        return False, "NoHealthyNodes", f"{nodes}; {seen.ready} of {seen.desired} pods ready"
    if seen.gateways_ready == 0:
        return False, "NoReadyGateway", f"{gateways}; {nodes}"
    return True, "Serving", f"{nodes}; {gateways}"


def _progressing(seen: PoolObservation) -> tuple[bool, str, str]:
    if seen.error:
        return False, "ReconcileFailed", seen.error
    if not seen.rolled_out or seen.updated < seen.desired:
        return True, "RollingOut", f"{seen.updated} of {seen.desired} server nodes updated"
    if seen.replicas > seen.desired:
        return True, "ScalingDown", f"{seen.replicas} server nodes, going to {seen.desired}"
    if seen.ready < seen.desired:
        return True, "WaitingForServers", f"{seen.ready} of {seen.desired} server nodes ready"
    if seen.gateways_ready < seen.gateways_desired:
        message = f"{seen.gateways_ready} of {seen.gateways_desired} gateways ready"
        return True, "WaitingForGateways", message
    return False, "Stable", f"{seen.desired} server nodes and {seen.gateways_desired} gateways"


def _degraded(seen: PoolObservation) -> tuple[bool, str, str]:
    if seen.error:
        return True, "ReconcileFailed", seen.error
    if seen.stats_error:
        return True, "StatsUnavailable", f"cannot read the pool's Redis: {seen.stats_error}"
    if seen.healthy_nodes is not None and seen.ready > 0 and seen.healthy_nodes == 0:
        return True, "NoHealthyNodes", f"{seen.ready} ready pods, none healthy in the registry"
    return False, "AsExpected", "no problem seen"


def _override(seen: PoolObservation) -> tuple[bool, str, str] | None:
    if seen.spec_replicas is None:
        return None  # the spec was not read: keep what the condition said
    if seen.autoscaling is None:
        return False, "AutoscalingDisabled", f"spec.replicas {seen.spec_replicas} sets the nodes"
    low, high = seen.autoscaling
    if seen.desired == 0 or seen.desired == seen.spec_replicas:
        return False, "SpecReplicasApplied", f"autoscaling between {low} and {high} nodes"
    return (
        True,
        "SpecReplicasIgnored",
        f"spec.replicas {seen.spec_replicas} ignored: autoscaling between {low} and {high}"
        f" keeps {seen.desired}",
    )


_Judge = Callable[[PoolObservation], tuple[bool, str, str] | None]
_JUDGES: tuple[tuple[str, _Judge], ...] = (
    ("Ready", _ready),
    ("Progressing", _progressing),
    ("Degraded", _degraded),
    ("AutoscalerOverride", _override),
)


def render_conditions(
    seen: PoolObservation, previous: Sequence[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """The conditions, keeping each one's ``lastTransitionTime`` unless it flipped.

    A condition that cannot be judged from ``seen`` (no spec was read) keeps its last entry.
    """
    before = {str(c.get("type")): c for c in previous}
    conditions = []
    for kind, judge in _JUDGES:
        old = before.get(kind)
        verdict = judge(seen)
        if verdict is None:
            if old is not None:
                conditions.append(dict(old))
            continue
        true, reason, message = verdict
        status = "True" if true else "False"
        kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": one_line(message),
                "lastTransitionTime": kept or format_time(now),
                "observedGeneration": seen.generation,
            }
        )
    return conditions


def render_status(
    seen: PoolObservation, previous: Mapping[str, Any], now: float, selector: str
) -> dict[str, Any]:
    """The ``status`` to write (a merge patch: the autoscaler's own fields are left alone)."""
    status: dict[str, Any] = {
        "observedGeneration": seen.generation,
        "replicas": seen.replicas,
        "readyReplicas": seen.ready,
        "desiredReplicas": seen.desired,
        "servers": f"{seen.ready}/{seen.desired}",
        "gateways": f"{seen.gateways_ready}/{seen.gateways_desired}",
        "selector": selector,
        "conditions": render_conditions(seen, previous.get("conditions") or [], now),
    }
    if seen.healthy_nodes is not None:
        status["healthyNodes"] = seen.healthy_nodes
    if seen.connections is not None:
        status["connections"] = seen.connections
    return status
