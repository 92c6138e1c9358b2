"""Reconcile one pool: apply its objects, push its declared config, observe it, write status.

Plain async functions over a :class:`Pool` (the resource, parsed once) and an
:class:`OperatorContext` (settings and the Kubernetes client); the Kopf handlers only call
them. Each step is idempotent: server-side apply of fully rendered objects, a config merge
that writes only on change, and a status merge patch. What changed is also told as an event
on the pool (:mod:`wspool.operator.events`): the config pushed to Redis, a failure (once per
distinct message, not on every retry), ``Ready`` flipping, the autoscaler overriding
``spec.replicas``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wspool.operator import events
from wspool.operator.kube import Kube
from wspool.operator.model.autoscale import node_replicas
from wspool.operator.model.manifests import (
    API_GROUP,
    API_VERSION,
    KIND,
    PoolRef,
    key_prefix,
    render_pool,
    selector_string,
)
from wspool.operator.model.poolspec import PoolSpec, PoolSpecError, parse_pool_spec
from wspool.operator.model.poolstatus import (
    PoolObservation,
    deployment_counts,
    one_line,
    render_status,
)
from wspool.operator.model.settings import OperatorSettings
from wspool.operator.stats import PoolStats, pool_store, read_stats, write_pool_config
from wspool.state.engine import EngineUnavailableError

__all__ = [
    "OperatorContext",
    "Pool",
    "apply_pool",
    "last_failure",
    "observe",
    "push_pool_config",
    "reconcile",
    "redis_url",
    "report_failure",
    "write_status",
]


@dataclass(frozen=True, slots=True)
class OperatorContext:
    settings: OperatorSettings
    kube: Kube


@dataclass(frozen=True, slots=True)
class Pool:
    """A ``WebSocketPool`` as the operator acts on it."""

    ref: PoolRef
    generation: int
    spec: PoolSpec
    status: Mapping[str, Any]

    @classmethod
    def from_body(
        cls, body: Mapping[str, Any], default_image: str, *, require_image: bool = True
    ) -> Pool:
        """Parse the resource once; :class:`PoolSpecError` names a field it cannot use."""
        metadata = body["metadata"]
        spec = parse_pool_spec(body.get("spec") or {})
        if require_image and not spec.image and not default_image:
            raise PoolSpecError("spec.image", "is required (the operator has no --image)")
        ref = PoolRef(metadata["name"], metadata["namespace"], metadata["uid"], default_image)
        return cls(ref, int(metadata.get("generation", 1)), spec, body.get("status") or {})

    @property
    def key_prefix(self) -> str:
        return key_prefix(self.spec, self.ref)


async def redis_url(context: OperatorContext, pool: Pool) -> str:
    """The operator's ``--redis-url``, else the pool's URL, else the key of its Secret."""
    if context.settings.redis_url:
        return context.settings.redis_url
    if pool.spec.redis.url:
        return pool.spec.redis.url
    ref = pool.spec.redis.secret
    assert ref is not None  # parse_pool_spec requires one of the two
    secret = await context.kube.get("v1", "Secret", pool.ref.namespace, ref.name)
    encoded = ((secret or {}).get("data") or {}).get(ref.key)
    if encoded is None:
        raise EngineUnavailableError(f"Secret {ref.name} has no key {ref.key!r}")
    return base64.b64decode(encoded).decode()


async def _server_deployment(context: OperatorContext, pool: Pool) -> dict[str, Any] | None:
    return await context.kube.get(
        "apps/v1", "Deployment", pool.ref.namespace, f"{pool.ref.name}-server"
    )


async def apply_pool(context: OperatorContext, pool: Pool) -> None:
    """Create or update every object of the pool (server-side apply, owned by the pool)."""
    live = deployment_counts(await _server_deployment(context, pool))
    current = live.desired if live.desired else None
    for manifest in render_pool(pool.spec, pool.ref, node_replicas(pool.spec, current)):
        await context.kube.apply(manifest)


async def read_pool_stats(context: OperatorContext, pool: Pool) -> tuple[PoolStats | None, str]:
    """The pool's stats, or None and why they cannot be read."""
    try:
        async with pool_store(await redis_url(context, pool), pool.key_prefix) as store:
            return await read_stats(store, store), ""
    except (EngineUnavailableError, OSError, ValueError) as error:
        return None, events.describe(error)


async def observe(
    context: OperatorContext,
    pool: Pool,
    stats: PoolStats | None,
    stats_error: str,
    *,
    generation: int | None = None,
    error: str = "",
) -> PoolObservation:
    """What the cluster and Redis say about the pool, as of the spec ``generation`` applied
    last (the pool's own generation right after a reconcile)."""
    namespace, name = pool.ref.namespace, pool.ref.name
    servers = await _server_deployment(context, pool)
    gateways = await context.kube.get("apps/v1", "Deployment", namespace, f"{name}-gateway")
    return PoolObservation.of(
        pool.generation if generation is None else generation,
        deployment_counts(servers),
        deployment_counts(gateways),
        healthy_nodes=stats.healthy if stats else None,
        registered_nodes=len(stats.nodes) if stats else None,
        connections=stats.connections if stats else None,
        stats_error=stats_error,
        error=error,
        spec_replicas=pool.spec.replicas,
        autoscaling=(
            (pool.spec.min_replicas, pool.spec.max_replicas)
            if pool.spec.autoscaling.enabled
            else None
        ),
    )


async def write_status(
    context: OperatorContext,
    pool: Pool,
    observation: PoolObservation,
    extra: Mapping[str, Any] | None = None,
) -> None:
    await _patch_status(context, pool.ref, pool.status, observation, extra)


def _by_type(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in status.get("conditions") or []}


def last_failure(status: Mapping[str, Any]) -> str:
    """Why the last reconcile failed, as the status says; empty when it did not. A sync
    between Kopf's retries keeps saying it, so the conditions do not flap."""
    degraded = _by_type(status).get("Degraded") or {}
    return str(degraded.get("message", "")) if degraded.get("reason") == "ReconcileFailed" else ""


def _announce(ref: PoolRef, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Events for the conditions a user acts on: Ready flipping, an override appearing."""
    old, new = _by_type(before), _by_type(after)
    ready, was = new.get("Ready"), old.get("Ready")
    if ready and was and ready["status"] != was["status"]:
        if ready["status"] == "True":
            events.normal(ref, "Serving", str(ready["message"]))
        elif ready["reason"] != "ReconcileFailed":  # report_failure tells that one
            events.warning(ref, str(ready["reason"]), str(ready["message"]))
    override, was = new.get("AutoscalerOverride"), old.get("AutoscalerOverride")
    if override and override["status"] == "True":
        ignored = str(override["message"]).split(":", 1)[0]  # "spec.replicas 5 ignored"
        if not was or not str(was.get("message", "")).startswith(ignored):
            events.normal(ref, "AutoscalerOverride", str(override["message"]))


async def _patch_status(
    context: OperatorContext,
    ref: PoolRef,
    previous: Mapping[str, Any],
    observation: PoolObservation,
    extra: Mapping[str, Any] | None = None,
) -> None:
    status = render_status(observation, previous, time.time(), selector_string(ref.name))
    status.update(extra or {})
    await context.kube.merge_patch(
        f"{API_GROUP}/{API_VERSION}",
        KIND,
        ref.namespace,
        ref.name,
        {"status": status},
        subresource="status",
    )
    _announce(ref, previous, status)


async def report_failure(
    context: OperatorContext,
    body: Mapping[str, Any],
    problem: str,
    reason: str = "ReconcileFailed",
) -> None:
    """Conditions that say why the pool could not be reconciled (spec error, API refusal),
    and a Warning event with ``reason`` unless the conditions already said the same."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    ref = PoolRef(name, namespace, metadata["uid"])
    previous = body.get("status") or {}
    said = _by_type(previous).get("Degraded") or {}
    if (said.get("reason"), said.get("message")) != ("ReconcileFailed", one_line(problem)):
        events.warning(ref, reason, problem)
    servers = await context.kube.get("apps/v1", "Deployment", namespace, f"{name}-server")
    gateways = await context.kube.get("apps/v1", "Deployment", namespace, f"{name}-gateway")
    observation = PoolObservation.of(
        int(metadata.get("generation", 1)),
        deployment_counts(servers),
        deployment_counts(gateways),
        error=problem,
    )
    await _patch_status(context, ref, previous, observation)


async def push_pool_config(context: OperatorContext, pool: Pool) -> str:
    """Merge the declared pool config into Redis; why it could not, or empty."""
    try:
        async with pool_store(await redis_url(context, pool), pool.key_prefix) as store:
            changes = await write_pool_config(store, pool.spec.pool_config())
    except (EngineUnavailableError, OSError) as error:
        # The objects are in place; the gateways keep their last config until Redis is back,
        # and the status says why (the next change of the pool, or a restart, tries again).
        problem = events.describe(error)
        events.warning(pool.ref, "PoolConfigNotPushed", problem)
        return problem
    if changes:
        events.normal(pool.ref, "PoolConfigPushed", "; ".join(changes))
    return ""


async def reconcile(context: OperatorContext, pool: Pool) -> None:
    """Bring the cluster and the pool's Redis in line with the spec, then report."""
    await apply_pool(context, pool)
    stats_error = await push_pool_config(context, pool)
    stats, read_error = await read_pool_stats(context, pool)
    await write_status(
        context, pool, await observe(context, pool, stats, stats_error or read_error)
    )
