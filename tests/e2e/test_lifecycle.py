"""A pool's life after it serves: live config changes, deletion, and the chart's removal.

A strategy or pool-config change in the resource reaches every gateway without restarting a
pod. Deleting a pool removes everything it owned, its Redis keys included. ``helm uninstall``
leaves nothing of the release behind (the CRD stays, as Helm does with every chart's CRDs).
"""

from __future__ import annotations

import json

import pytest

from tests.support.e2e_pools import (
    Pool,
    Release,
    applied_pool,
    default_spec,
    redis_keys,
    wait_until_ready,
)
from tests.support.kubectl import Kubectl
from tests.support.waiting import poll_until

pytestmark = pytest.mark.kubernetes


def _pods(kubectl: Kubectl, pool: Pool) -> dict[str, int]:
    """Each pod of the pool (by uid) and its containers' restart count."""
    pods = kubectl.items("pods", pool.namespace, f"app.kubernetes.io/instance={pool.name}")
    return {
        pod["metadata"]["uid"]: sum(
            c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", [])
        )
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
    }


def _gateway_configs(kubectl: Kubectl, pool: Pool) -> list[dict[str, object]]:
    """``GET /api/v1/pool/config`` of every gateway pod, through the API server's pod proxy."""
    configs = []
    for pod in kubectl.items("pods", pool.namespace, pool.gateways_selector()):
        name = pod["metadata"]["name"]
        path = f"/api/v1/namespaces/{pool.namespace}/pods/{name}:8080/proxy/api/v1/pool/config"
        configs.append(json.loads(kubectl("get", "--raw", path)))
    return configs


def test_a_strategy_change_reaches_every_gateway_live_without_restarting_a_pod(
    kubectl: Kubectl, chat: Pool
) -> None:
    wait_until_ready(kubectl, chat)
    before = _pods(kubectl, chat)
    assert all(c["strategy"] == "least-connections" for c in _gateway_configs(kubectl, chat))
    kubectl.patch_pool(
        chat.name, chat.namespace, {"strategy": "round-robin", "maxConnections": 777}
    )
    poll_until(
        lambda: all(
            c["strategy"] == "round-robin" and c["maxConnections"] == 777
            for c in _gateway_configs(kubectl, chat)
        ),
        within=30,
        message="every gateway on round-robin",
    )
    assert _pods(kubectl, chat) == before, "no pod restarted or replaced"
    kubectl.patch_pool(
        chat.name, chat.namespace, {"strategy": "least-connections", "maxConnections": 100000}
    )


def test_deleting_a_pool_removes_its_objects_and_its_redis_keys(
    kubectl: Kubectl, release: Release
) -> None:
    pool = Pool("doomed", "e2e-doomed", default_spec(release, replicas=1, minReplicas=1))
    pool.spec["gateway"] = {"replicas": 1, "serviceType": "NodePort"}
    with applied_pool(kubectl, pool):
        assert redis_keys(kubectl, release, f"{pool.key_prefix}*"), "the pool wrote to Redis"
        kubectl("delete", "websocketpool", pool.name, "-n", pool.namespace, "--timeout=120s")
        kinds = "deployments,services,configmaps,poddisruptionbudgets,pods"
        poll_until(
            lambda: (
                not kubectl(
                    "get",
                    kinds,
                    "-n",
                    pool.namespace,
                    "-l",
                    f"app.kubernetes.io/instance={pool.name}",
                    "-o",
                    "name",
                ).strip()
            ),
            within=120,
            message="every object of the pool gone",
        )
        poll_until(
            lambda: not redis_keys(kubectl, release, f"{pool.key_prefix}*"),
            within=60,
            message="the pool's Redis keys gone",
        )


@pytest.mark.uninstalls
def test_helm_uninstall_leaves_nothing_of_the_release(kubectl: Kubectl, release: Release) -> None:
    # Pools go first, while the operator runs to finalize them (docs/operator.md).
    kubectl("delete", "websocketpools", "--all", "--all-namespaces", "--timeout=180s")
    kubectl.helm("uninstall", release.name, "--namespace", release.namespace, "--wait")
    release.installed = False
    selector = f"app.kubernetes.io/instance={release.name}"
    namespaced = "all,configmaps,secrets,serviceaccounts,roles,rolebindings,leases"

    def left() -> str:
        return kubectl(
            "get", namespaced, "-n", release.namespace, "-l", selector, "-o", "name"
        ).strip()

    try:
        poll_until(lambda: not left(), within=120, message="nothing of the release left")
    except AssertionError as error:
        raise AssertionError(f"{error}: {left()}") from None
    cluster_wide = kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name")
    assert not cluster_wide.strip(), cluster_wide
    leases = kubectl("get", "leases", "-n", release.namespace, "-o", "name")
    assert f"{release.name}-operator" not in leases, leases
