"""A pool's ``status``: what the operator observed, and the conditions a user reads.

Conditions follow the Kubernetes API conventions (``type``, ``status`` ``"True"|"False"``,
a CamelCase ``reason``, a human ``message``, ``lastTransitionTime`` that moves only when
``status`` flips, and the ``observedGeneration`` they describe):

- ``Ready``: the pool serves: at least one server node and one gateway are ready.
- ``Progressing``: the Deployments are still moving towards the spec (rollout, scaling,
  pods not yet ready).
- ``Degraded``: something needs a human: the last reconcile failed, the pool's stats cannot
  be read from Redis, or ready nodes are not healthy in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DeploymentCounts",
    "PoolObservation",
    "deployment_counts",
    "format_time",
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
    connections: int | None = None
    stats_error: str = ""
    error: str = ""
    """Why the last reconcile failed; empty when it succeeded."""

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
    nodes = f"{seen.ready} of {seen.desired} server nodes ready"
    if seen.ready == 0:
        return False, "NoReadyServers", nodes
    gateways = f"{seen.gateways_ready} of {seen.gateways_desired} gateways ready"
    if seen.gateways_ready == 0:
        return False, "NoReadyGateway", f"{nodes}; {gateways}"
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


def render_conditions(
    seen: PoolObservation, previous: Sequence[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """The three conditions, keeping each one's ``lastTransitionTime`` unless it flipped."""
    before = {str(c.get("type")): c for c in previous}
    conditions = []
    for kind, judge in (("Ready", _ready), ("Progressing", _progressing), ("Degraded", _degraded)):
        true, reason, message = judge(seen)
        status = "True" if true else "False"
        old = before.get(kind)
        kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
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
