"""The periodic sync of one pool: read its live connections, scale its nodes, report.

The decision is :func:`wspool.operator.model.autoscale.decide_scale`; this module only gathers its
inputs (the registry in the pool's Redis, the node Deployment, the history kept in
``status.autoscaling``) and carries out the result by patching the node Deployment's
``spec.replicas``. Before removing a node it sets ``controller.kubernetes.io/pod-deletion-cost``
on each node pod to the pod's live connection count, so the ReplicaSet stops the node with the
fewest clients; that node drains on SIGTERM within its termination grace period. Each change
of the node count is a ``ScaledUp`` or ``ScaledDown`` event on the pool, with the load that
caused it.
"""

from __future__ import annotations

import time
from typing import Any

from wspool.operator import events
from wspool.operator.model.autoscale import (
    ScalePolicy,
    autoscaling_status,
    decide_scale,
    read_autoscaling_status,
)
from wspool.operator.model.manifests import grace_period, selector_string
from wspool.operator.model.poolstatus import deployment_counts
from wspool.operator.reconcile import (
    OperatorContext,
    Pool,
    last_failure,
    observe,
    read_pool_stats,
    write_status,
)
from wspool.operator.stats import PoolStats

__all__ = ["DELETION_COST", "sync_pool"]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


async def _mark_deletion_costs(context: OperatorContext, pool: Pool, stats: PoolStats) -> None:
    # Node ids are pod names (the Deployment sets WSPOOL_SERVER_ID from metadata.name).
    load = {node.id: node.active_connections for node in stats.nodes}
    pods = await context.kube.list(
        "v1", "Pod", pool.ref.namespace, selector_string(pool.ref.name, "server")
    )
    for pod in pods:
        name = pod["metadata"]["name"]
        if name not in load:
            continue  # not reporting now: its last known cost stands (none: a new pod)
        cost = str(load[name])
        if (pod["metadata"].get("annotations") or {}).get(DELETION_COST) != cost:
            await context.kube.merge_patch(
                "v1",
                "Pod",
                pool.ref.namespace,
                name,
                {"metadata": {"annotations": {DELETION_COST: cost}}},
            )


async def _autoscale(
    context: OperatorContext, pool: Pool, stats: PoolStats, now: float
) -> dict[str, Any] | None:
    namespace, name = pool.ref.namespace, f"{pool.ref.name}-server"
    deployment = await context.kube.get("apps/v1", "Deployment", namespace, name)
    if deployment is None:
        return None  # not created yet: the next reconcile creates it
    counts = deployment_counts(deployment)
    current = counts.desired
    history, last_scale_down = read_autoscaling_status(pool.status)
    policy = ScalePolicy.of(pool.spec, cooldown=float(grace_period(pool.spec)))
    decision = decide_scale(
        connections=stats.connections,
        current=current,
        policy=policy,
        history=history,
        last_scale_down=last_scale_down,
        now=now,
        # Ready node pods that the registry does not list (node ids are pod names).
        unreported=max(0, counts.ready - len(stats.nodes)),
    )
    if decision.changes(current):
        if decision.replicas < current:
            await _mark_deletion_costs(context, pool, stats)
        await context.kube.merge_patch(
            "apps/v1", "Deployment", namespace, name, {"spec": {"replicas": decision.replicas}}
        )
        events.normal(
            pool.ref,
            "ScaledUp" if decision.replicas > current else "ScaledDown",
            f"from {current} to {decision.replicas} nodes: {decision.reason}",
        )
    return autoscaling_status(decision, current, last_scale_down, now)


async def sync_pool(context: OperatorContext, pool: Pool) -> None:
    """One tick: stats from Redis, an autoscaling decision when enabled, then the status."""
    now = time.time()
    stats, stats_error = await read_pool_stats(context, pool)
    extra: dict[str, Any] = {}
    if not pool.spec.autoscaling.enabled:
        extra["autoscaling"] = None  # a merge patch removes the section of a past autoscaler
    elif stats is not None:
        section = await _autoscale(context, pool, stats, now)
        if section is not None:
            extra["autoscaling"] = section
    # The spec may have changed since the last reconcile, which has yet to apply it: the
    # status keeps describing the generation that was applied.
    applied = int(pool.status.get("observedGeneration", pool.generation))
    observation = await observe(
        context, pool, stats, stats_error, generation=applied, error=last_failure(pool.status)
    )
    await write_status(context, pool, observation, extra)
