"""``Ready`` means served, against a real API server and a real Redis registry.

No kubelet runs here, so the test marks the gateway pods ready as a kubelet would (their
status subresource); the nodes are registry entries as live nodes write them. ``Ready``
follows the registry both ways, and each flip is an event on the pool.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.operator import register_nodes, running_operator
from tests.support.pools import condition, create_pool, pool_events, pool_manifest, read_pool
from tests.support.waiting import poll_until
from wspool.core.keys import Keys
from wspool.core.records import NodeHealth
from wspool.state.redis_engine import RedisEngine

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.redis,
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("websocketpool_crd", "controller_manager"),
]


NODES = "registered server nodes healthy"
PODS = "2 of 2 pods ready"


def _mark_ready(api: client.ApiClient, namespace: str, component: str, count: int) -> bool:
    """Once ``count`` pods of the component exist, report them ready as their kubelet would."""
    core = client.CoreV1Api(api)
    selector = f"app.kubernetes.io/instance=chat,app.kubernetes.io/component={component}"
    listed = core.list_namespaced_pod(namespace, label_selector=selector)
    found = api.sanitize_for_serialization(listed)  # type: ignore[no-untyped-call]
    pods = [str(pod["metadata"]["name"]) for pod in found["items"]]
    if len(pods) != count:
        return False
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    for name in pods:
        core.patch_namespaced_pod_status(
            name, namespace, {"status": {"phase": "Running", "conditions": ready}}
        )
    return True


def _ready_when(
    api: client.ApiClient, namespace: str, status: str, reason: str, message: str
) -> None:
    """Wait until the Ready condition says exactly this (pods and stats arrive in any order)."""
    wanted = (status, reason, message)

    def seen() -> tuple[str, str, str] | None:
        found = condition(read_pool(api, namespace, "chat"), "Ready") or {}
        said = (found.get("status"), found.get("reason"), found.get("message"))
        return wanted if said == wanted else None

    poll_until(seen, within=30, message=f"Ready {wanted}")


def _told(api: client.ApiClient, namespace: str) -> list[tuple[str, str, str]]:
    """The pool's events from the operator itself (not Kopf's log lines)."""
    return [e for e in pool_events(api, namespace, "chat") if e[1] != "Logging"]


async def _mark_down(redis_url: str, prefix: str, node_ids: list[str]) -> None:
    """What a gateway's health monitor writes when a node fails its checks."""
    engine = RedisEngine(redis_url, Keys(prefix))
    try:
        for node_id in node_ids:
            await engine.save_node_health(NodeHealth(node_id, False, time.time()), ttl=120.0)
    finally:
        await engine.close()


async def test_a_pool_is_ready_only_while_a_gateway_is_ready_and_a_node_is_healthy(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    prefix = f"{namespace}.chat:"
    manifest = pool_manifest("chat", redis_url, replicas=2, autoscaling={"enabled": False})
    with running_operator(namespace):
        create_pool(kube_api, namespace, manifest)
        poll_until(lambda: _mark_ready(kube_api, namespace, "gateway", 2), message="gateways")
        poll_until(lambda: _mark_ready(kube_api, namespace, "server", 2), message="node pods")
        # Every pod ready as far as Kubernetes knows, yet no node in the registry: no client
        # could be served.
        _ready_when(kube_api, namespace, "False", "NoHealthyNodes", f"0 of 0 {NODES}; {PODS}")
        nodes = await register_nodes(redis_url, prefix, [0, 0])
        serving = f"2 of 2 {NODES}; 2 of 2 gateways ready"
        _ready_when(kube_api, namespace, "True", "Serving", serving)
        await _mark_down(redis_url, prefix, nodes)
        down = f"0 of 2 {NODES}; {PODS}"
        _ready_when(kube_api, namespace, "False", "NoHealthyNodes", down)
        events = poll_until(
            lambda: found if len(found := _told(kube_api, namespace)) >= 3 else None,
            message="two Ready events after the first config",
        )

    assert events is not None
    assert [e[:2] for e in events] == [
        ("Normal", "PoolConfigPushed"),
        ("Normal", "Serving"),
        ("Warning", "NoHealthyNodes"),
    ]
    assert events[1][2] == serving
    assert events[2][2] == down
