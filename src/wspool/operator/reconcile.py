"""Reconcile one pool: apply its objects, push its declared config, observe it, write status.

Plain async functions over a :class:`Pool` (the resource, parsed once) and an
:class:`OperatorContext` (settings and the Kubernetes client); the Kopf handlers only call
them. Each step is idempotent: server-side apply of fully rendered objects, a config merge
that writes only on change, and a status merge patch.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wspool.core.autoscale import node_replicas
from wspool.core.manifests import (
    API_GROUP,
    API_VERSION,
    KIND,
    PoolRef,
    key_prefix,
    render_pool,
    selector_string,
)
from wspool.core.operatorconfig import OperatorSettings
from wspool.core.poolspec import PoolSpec, PoolSpecError, parse_pool_spec
from wspool.core.poolstatus import PoolObservation, deployment_counts, render_status
from wspool.operator.kube import Kube
from wspool.operator.stats import PoolStats, read_stats, write_pool_config
from wspool.state.engine import EngineUnavailableError

__all__ = [
    "OperatorContext",
    "Pool",
    "apply_pool",
    "observe",
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
    def from_body(cls, body: Mapping[str, Any], default_image: str) -> Pool:
        """Parse the resource once; :class:`PoolSpecError` names a field it cannot use."""
        metadata = body["metadata"]
        spec = parse_pool_spec(body.get("spec") or {})
        if not spec.image and not default_image:
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
        return await read_stats(await redis_url(context, pool), pool.key_prefix), ""
    except (EngineUnavailableError, OSError, ValueError) as error:
        return None, str(error) or type(error).__name__


async def observe(
    context: OperatorContext,
    pool: Pool,
    stats: PoolStats | None,
    stats_error: str,
    *,
    generation: int | None = None,
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
        connections=stats.connections if stats else None,
        stats_error=stats_error,
    )


async def write_status(
    context: OperatorContext,
    pool: Pool,
    observation: PoolObservation,
    extra: Mapping[str, Any] | None = None,
) -> None:
    await _patch_status(context, pool.ref.namespace, pool.ref.name, pool.status, observation, extra)


async def _patch_status(
    context: OperatorContext,
    namespace: str,
    name: str,
    previous: Mapping[str, Any],
    observation: PoolObservation,
    extra: Mapping[str, Any] | None = None,
) -> None:
    status = render_status(observation, previous, time.time(), selector_string(name))
    status.update(extra or {})
    await context.kube.merge_patch(
        f"{API_GROUP}/{API_VERSION}",
        KIND,
        namespace,
        name,
        {"status": status},
        subresource="status",
    )


async def report_failure(context: OperatorContext, body: Mapping[str, Any], problem: str) -> None:
    """Conditions that say why the pool could not be reconciled (spec error, API refusal)."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    servers = await context.kube.get("apps/v1", "Deployment", namespace, f"{name}-server")
    gateways = await context.kube.get("apps/v1", "Deployment", namespace, f"{name}-gateway")
    observation = PoolObservation.of(
        int(metadata.get("generation", 1)),
        deployment_counts(servers),
        deployment_counts(gateways),
        error=problem,
    )
    await _patch_status(context, namespace, name, body.get("status") or {}, observation)


async def reconcile(context: OperatorContext, pool: Pool) -> None:
    """Bring the cluster and the pool's Redis in line with the spec, then report."""
    await apply_pool(context, pool)
    stats_error = ""
    try:
        await write_pool_config(
            await redis_url(context, pool), pool.key_prefix, pool.spec.pool_config()
        )
    except (EngineUnavailableError, OSError) as error:
        # The objects are in place; the gateways keep their last config until Redis is back,
        # and the status says why (the next reconcile or sync tries again).
        stats_error = str(error) or type(error).__name__
    stats, read_error = await read_pool_stats(context, pool)
    await write_status(
        context, pool, await observe(context, pool, stats, stats_error or read_error)
    )
