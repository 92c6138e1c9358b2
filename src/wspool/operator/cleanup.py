"""What deleting a pool does besides garbage collection: its Redis keys go too.

Kubernetes removes the pool's objects through their ownerReferences; the keys under the
pool's key prefix in its Redis (node registry, pool config, channel history, connection
records) are the operator's to remove, from the pool's finalizer. The pods stop first: a
running gateway would write the pool config back and a running node would re-register, so
both Deployments are scaled to zero and the operator waits until their pods are gone (each
node drains its clients as it would under garbage collection), then deletes the keys.

Every step is bounded: pods that outlast :data:`POD_WAIT_LIMIT` or a Redis that does not
answer within :data:`REDIS_TIMEOUT` are reported as a Warning event on the pool, and the
deletion goes on; a pool is never stuck because its Redis is gone. A pool deleted with
``--cascade=orphan`` keeps its keys, since its pods keep running on them.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from typing import Any

from wspool.core.redisurl import parse_redis_url
from wspool.operator import events
from wspool.operator.kube import ApiException
from wspool.operator.model.manifests import grace_period, selector_string
from wspool.operator.model.poolspec import PoolSpec
from wspool.operator.reconcile import OperatorContext, Pool, redis_url
from wspool.state.redis_client import close, connect

__all__ = ["POD_WAIT_LIMIT", "REDIS_TIMEOUT", "delete_keys", "forget_pool"]

REDIS_TIMEOUT = 5.0
"""Seconds the key deletion may take, connecting included."""
POD_WAIT_LIMIT = 60.0
"""Seconds at most to wait for the pool's pods to stop, whatever the drain window."""
_BATCH = 500
_GLOB = re.compile(r"([*?\[\]\\])")


async def delete_keys(url: str, prefix: str) -> int:
    """Delete every key that starts with ``prefix``; how many there were."""
    timeout = REDIS_TIMEOUT
    if not prefix:
        raise ValueError("an empty key prefix would match every key of the Redis")
    client = connect(parse_redis_url(url), socket_timeout=timeout)  # a cluster: every primary
    deleted = 0
    try:
        async with asyncio.timeout(timeout):
            batch: list[str] = []
            async for key in client.scan_iter(match=_GLOB.sub(r"\\\1", prefix) + "*", count=_BATCH):
                batch.append(key)
                if len(batch) >= _BATCH:
                    deleted += await client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await client.unlink(*batch)
    finally:
        await close(client)
    return deleted


async def _running_pods(context: OperatorContext, pool: Pool) -> int:
    count = 0
    for component in ("server", "gateway"):
        selector = selector_string(pool.ref.name, component)
        count += len(await context.kube.list("v1", "Pod", pool.ref.namespace, selector))
    return count


async def _stop_pods(context: OperatorContext, pool: Pool, limit: float) -> int:
    """Scale both Deployments to zero; the pods still there after ``limit`` seconds."""
    for component in ("server", "gateway"):
        try:
            await context.kube.merge_patch(
                "apps/v1",
                "Deployment",
                pool.ref.namespace,
                f"{pool.ref.name}-{component}",
                {"spec": {"replicas": 0}},
            )
        except ApiException as error:
            if error.status != 404:
                raise
    for _ in range(math.ceil(limit)):
        if not await _running_pods(context, pool):
            return 0
        await asyncio.sleep(1.0)
    return await _running_pods(context, pool)


async def _orphaned(context: OperatorContext, pool: Pool, metadata: Mapping[str, Any]) -> bool:
    """Deleted with ``--cascade=orphan``: the API server's orphan finalizer is still there, or
    the garbage collector already took the pool's ownerReference off its node Deployment."""
    if "orphan" in (metadata.get("finalizers") or []):
        return True
    try:
        servers = await context.kube.get(
            "apps/v1", "Deployment", pool.ref.namespace, f"{pool.ref.name}-server"
        )
    except (ApiException, OSError, TimeoutError):
        return False
    owners = ((servers or {}).get("metadata") or {}).get("ownerReferences") or []
    return servers is not None and all(o.get("uid") != pool.ref.uid for o in owners)


def _pod_wait(spec: PoolSpec) -> float:
    # The gateways' grace period is 30 s; the nodes' covers their drain.
    return min(POD_WAIT_LIMIT, max(30, grace_period(spec)) + 5.0)


async def forget_pool(context: OperatorContext, pool: Pool, metadata: Mapping[str, Any]) -> None:
    """Stop the pool's pods and delete its Redis keys; tells each outcome as an event and
    raises nothing but a cancellation, so the finalizer always lets the pool go."""
    prefix = pool.key_prefix
    if await _orphaned(context, pool, metadata):
        events.normal(pool.ref, "RedisKeysKept", f"objects orphaned: keys under {prefix} kept")
        return
    try:
        left = await _stop_pods(context, pool, _pod_wait(pool.spec))
        if left:
            problem = f"{left} pods still stopping; they may write keys under {prefix} again"
            events.warning(pool.ref, "PodsNotStopped", problem)
    except (ApiException, OSError, TimeoutError) as error:  # the API server away
        events.warning(pool.ref, "PodsNotStopped", events.describe(error))
    try:
        url = await redis_url(context, pool)
        deleted = await delete_keys(url, prefix)
    except Exception as error:  # whatever it was, the pool must not stay stuck in deletion
        problem = events.describe(error) if str(error) else "no answer in time"
        events.warning(
            pool.ref,
            "RedisCleanupFailed",
            f"keys under {prefix} left in Redis: {problem}",
        )
        return
    events.normal(pool.ref, "RedisKeysDeleted", f"deleted {deleted} keys under {prefix}")
