"""The operator's autoscaler against a real API server, with live nodes' entries in a real Redis.

The registry entries are what running nodes write (``server:{id}:info`` with
``activeConnections``, under the pool's key prefix); the operator's sync timer reads them,
decides, and patches the node Deployment.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support.operator import register_nodes, running_operator
from tests.support.pools import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_pool,
    kubectl,
    pool_events,
    pool_manifest,
    read_pool,
)
from tests.support.waiting import poll_until

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.redis,
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("websocketpool_crd"),
]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _node_replicas(api: client.ApiClient, namespace: str) -> int | None:
    try:
        deployment = client.AppsV1Api(api).read_namespaced_deployment("chat-server", namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    assert deployment.spec is not None
    return deployment.spec.replicas


def _scalings(api: client.ApiClient, namespace: str) -> list[tuple[str, str, str]]:
    return [e for e in pool_events(api, namespace, "chat") if e[1].startswith("Scaled")]


def _autoscaling(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    section: dict[str, Any] = (read_pool(api, namespace, "chat").get("status") or {}).get(
        "autoscaling"
    ) or {}
    return section


async def test_live_connections_add_nodes_by_the_step_and_never_beyond_ten(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    # 2,500 connections at 100 per node want 25 nodes: the farm stops at ten.
    await register_nodes(redis_url, f"{namespace}.chat:", [900, 900, 700])
    autoscaling = {"targetConnectionsPerNode": 100, "scaleUpStep": 4}
    seen: set[int] = set()

    def at_ten() -> bool:
        replicas = _node_replicas(kube_api, namespace)
        if replicas is not None:
            seen.add(replicas)
        return replicas == 10

    with running_operator(namespace):
        create_pool(
            kube_api,
            namespace,
            pool_manifest("chat", redis_url, replicas=3, autoscaling=autoscaling),
        )
        poll_until(at_ten, within=30, interval=0.05, message="ten server nodes")
        poll_until(
            lambda: _autoscaling(kube_api, namespace).get("desiredReplicas") == 10,
            within=10,
            message="status.autoscaling at ten",
        )
        status = _autoscaling(kube_api, namespace)
        scalings = poll_until(
            lambda: found if len(found := _scalings(kube_api, namespace)) >= 2 else None,
            within=10,
            message="two ScaledUp events",
        )

    assert scalings == [
        ("Normal", "ScaledUp", "from 3 to 7 nodes: 2500 connections want 10 nodes: scaling up"),
        ("Normal", "ScaledUp", "from 7 to 10 nodes: 2500 connections want 10 nodes: scaling up"),
    ]
    assert seen <= {3, 7, 10}, seen  # 3, then at most 4 more per decision, then the cap
    assert status["desiredReplicas"] == 10
    assert "2500 connections want 10 nodes" in status["reason"]
    assert status["lastScaleTime"]


@pytest.mark.usefixtures("controller_manager")
async def test_an_idle_pool_sheds_its_least_loaded_node_then_waits_for_its_drain(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    core = client.CoreV1Api(kube_api)
    selector = "app.kubernetes.io/instance=chat,app.kubernetes.io/component=server"
    manifest = pool_manifest(
        "chat",
        redis_url,
        replicas=3,
        drainWindow=0,
        autoscaling={
            "enabled": False,
            "targetConnectionsPerNode": 100,
            "scaleDownStabilizationSeconds": 1,
        },
    )

    def annotations() -> dict[str, dict[str, str]]:
        """Each live node pod's annotations, by pod name."""
        found = kube_api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            core.list_namespaced_pod(namespace, label_selector=selector)
        )
        return {
            p["metadata"]["name"]: p["metadata"].get("annotations") or {}
            for p in found["items"]
            if not p["metadata"].get("deletionTimestamp")
        }

    def pods(count: int) -> list[str]:
        names = sorted(annotations())
        return names if len(names) == count else []

    with running_operator(namespace):
        # The nodes are the Deployment's own pods; no kubelet runs them here, so their
        # registry entries are written for them, once their names are known.
        create_pool(kube_api, namespace, manifest)
        names = poll_until(lambda: pods(3), within=30, message="3 pods")
        loads = dict(zip(names, [5, 0, 9], strict=True))  # 14 connections want one node
        await register_nodes(redis_url, f"{namespace}.chat:", list(loads.values()), ids=names)
        idle = next(name for name, load in loads.items() if load == 0)
        client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"autoscaling": {"enabled": True}}}
        )

        poll_until(lambda: _node_replicas(kube_api, namespace) == 2, within=30, message="2 nodes")
        remaining = poll_until(lambda: pods(2), within=30, message="2 pods")
        costs = {name: notes.get(DELETION_COST) for name, notes in annotations().items()}
        poll_until(
            lambda: "drain" in _autoscaling(kube_api, namespace).get("reason", ""),
            within=10,
            message="autoscaler waiting for the drain",
        )
        status = _autoscaling(kube_api, namespace)
        replicas_while_draining = _node_replicas(kube_api, namespace)
        scalings = poll_until(lambda: _scalings(kube_api, namespace), message="a ScaledDown event")

    assert idle not in remaining
    assert {name: costs.get(name) for name in remaining} == {
        name: str(loads[name]) for name in remaining
    }
    assert replicas_while_draining == 2  # one node at a time: the next waits for the drain
    assert status["lastScaleDownTime"]
    assert scalings == [
        (
            "Normal",
            "ScaledDown",
            "from 3 to 2 nodes: 14 connections want 1 node: removing one (it drains first)",
        )
    ]


async def test_kubectl_scale_under_autoscaling_is_overridden_and_the_status_says_so(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    # 150 connections at 100 per node want 2 nodes; the stabilization window keeps 3.
    await register_nodes(redis_url, f"{namespace}.chat:", [50, 50, 50])
    manifest = pool_manifest(
        "chat",
        redis_url,
        replicas=3,
        minReplicas=2,
        autoscaling={"targetConnectionsPerNode": 100},
    )

    def overridden() -> dict[str, Any] | None:
        found = condition(read_pool(kube_api, namespace, "chat"), "AutoscalerOverride")
        return found if found and found["status"] == "True" else None

    with running_operator(namespace):
        create_pool(kube_api, namespace, manifest)
        poll_until(lambda: _autoscaling(kube_api, namespace), message="a first decision")
        applied = condition(read_pool(kube_api, namespace, "chat"), "AutoscalerOverride")
        kubectl("scale", "pool/chat", "--replicas=5", "--namespace", namespace)
        override = poll_until(overridden, message="AutoscalerOverride True")
        told = poll_until(
            lambda: [
                e for e in pool_events(kube_api, namespace, "chat") if e[1] == "AutoscalerOverride"
            ],
            message="an AutoscalerOverride event",
        )
        replicas = _node_replicas(kube_api, namespace)

    assert applied is not None
    assert (applied["status"], applied["reason"]) == ("False", "SpecReplicasApplied")
    assert override is not None
    assert override["reason"] == "SpecReplicasIgnored"
    assert override["message"] == "spec.replicas 5 ignored: autoscaling between 2 and 10 keeps 3"
    assert told == [("Normal", "AutoscalerOverride", override["message"])]
    assert replicas == 3
