"""Deleting a pool: Kubernetes collects its objects, the operator deletes its Redis keys.

The keys are what a running pool leaves in its Redis (registry entries, the pool config,
channel history, connection records), under the pool's key prefix; another pool's keys in
the same Redis stay. A Redis that does not answer delays the deletion by a few seconds,
never more, and the pool's events say what was left behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from kubernetes import client

from tests.support.operator import register_nodes, running_operator
from tests.support.pools import (
    GROUP,
    PLURAL,
    VERSION,
    create_pool,
    gone,
    pool_events,
    pool_manifest,
    read_pool,
)
from tests.support.waiting import poll_until

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.redis,
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("websocketpool_crd", "controller_manager"),
]


def _reconciled(api: client.ApiClient, namespace: str) -> None:
    poll_until(
        lambda: "observedGeneration" in (read_pool(api, namespace, "chat").get("status") or {}),
        message="the pool reconciled",
    )


def _delete_and_wait(
    api: client.ApiClient, namespace: str, within: float, propagation: str = "Background"
) -> float:
    """Delete the pool as ``kubectl delete`` does; seconds until it was gone."""
    started = time.monotonic()
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", propagation_policy=propagation
    )
    poll_until(
        lambda: gone(lambda: read_pool(api, namespace, "chat")),
        within=within,
        message="the pool gone",
    )
    return time.monotonic() - started


def _event(api: client.ApiClient, namespace: str, reason: str) -> tuple[str, str, str]:
    found = poll_until(
        lambda: [e for e in pool_events(api, namespace, "chat") if e[1] == reason],
        within=10,
        message=f"a {reason} event",
    )
    return found[0]


async def test_deleting_a_pool_deletes_its_redis_keys_and_no_other_pools(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    prefix, other = f"{namespace}.chat:", f"{namespace}.chat-two:"
    await register_nodes(redis_url, prefix, [3, 4])
    await register_nodes(redis_url, other, [5])
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await store.hset(f"{prefix}conn:c1", mapping={"serverId": "node-0"})
        await store.xadd(f"{prefix}hist:{{news}}", {"m": "hello"})
        with running_operator(namespace):
            create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
            _reconciled(kube_api, namespace)
            ours = sorted(await store.keys(f"{prefix}*"))
            _delete_and_wait(kube_api, namespace, within=30)
            deleted = _event(kube_api, namespace, "RedisKeysDeleted")
        left = sorted(await store.keys("*"))
    finally:
        await store.aclose()

    assert ours == sorted(
        f"{prefix}{key}"
        for key in (
            "servers",
            "server:node-0:info",
            "server:node-1:info",
            "pool:config",
            "conn:c1",
            "hist:{news}",
        )
    )
    assert left == sorted([f"{other}servers", f"{other}server:node-0:info"])
    assert deleted == ("Normal", "RedisKeysDeleted", f"deleted 6 keys under {prefix}")


async def test_a_pool_deleted_with_cascade_orphan_keeps_its_keys_for_the_pods_left_running(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    prefix = f"{namespace}.chat:"
    await register_nodes(redis_url, prefix, [3])
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with running_operator(namespace):
            create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
            _reconciled(kube_api, namespace)
            _delete_and_wait(kube_api, namespace, within=30, propagation="Orphan")
            kept = _event(kube_api, namespace, "RedisKeysKept")
        left = sorted(await store.keys("*"))
    finally:
        await store.aclose()
    servers = client.AppsV1Api(kube_api).read_namespaced_deployment("chat-server", namespace)

    assert left == sorted(
        f"{prefix}{key}" for key in ("servers", "server:node-0:info", "pool:config")
    )
    assert kept == ("Normal", "RedisKeysKept", f"objects orphaned: keys under {prefix} kept")
    assert servers.spec is not None
    assert servers.spec.replicas == 3  # left running as it was


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis address that accepts connections and never answers: a partitioned server."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_pool_whose_redis_does_not_answer_is_still_deleted_within_seconds(
    kube_api: client.ApiClient, namespace: str, silent_redis: str
) -> None:
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", silent_redis))
        _reconciled(kube_api, namespace)
        took = _delete_and_wait(kube_api, namespace, within=40)
        failed = _event(kube_api, namespace, "RedisCleanupFailed")

    assert took < 20  # a sync in flight (5 s Redis timeout) plus the bounded cleanup (5 s)
    kind, _, message = failed
    assert kind == "Warning"
    assert message.startswith(f"keys under {namespace}.chat: left in Redis: ")
