"""A pool applied with kubectl serves clients through its gateway Service.

The path a user takes: ``helm install`` (the session's release), ``kubectl apply`` a
``WebSocketPool``, ``kubectl get pools`` until it is Ready, then clients connect to the gateway
Service, subscribe, and receive what a client on another server node publishes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.e2e_pools import (
    Pool,
    Release,
    applied_pool,
    condition,
    default_spec,
    gateway_url,
)
from tests.support.kubectl import Kubectl
from tests.support.waiting import poll_until
from wspool.client import Client
from wspool.client.messages import Data

pytestmark = pytest.mark.kubernetes


def test_the_operator_runs_in_the_cluster_on_the_charts_service_account(
    kubectl: Kubectl, release: Release
) -> None:
    pods = kubectl.items("pods", release.namespace, release.operator_selector)
    assert pods, "the chart made no operator pod"
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == release.name
        ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
        assert ready, pod["status"]
        assert ready[0]["status"] == "True", pod["status"]
        restarts = [c["restartCount"] for c in pod["status"]["containerStatuses"]]
        assert restarts == [0], f"the operator restarted: {pod['status']}"
    bindings = kubectl.get(
        "clusterrolebindings", selector=f"app.kubernetes.io/instance={release.name}"
    )["items"]
    subjects = [
        {key: subject.get(key) for key in ("kind", "name", "namespace")}
        for binding in bindings
        for subject in binding.get("subjects", [])
    ]
    account = {"kind": "ServiceAccount", "name": release.name, "namespace": release.namespace}
    assert account in subjects, subjects


def test_kubectl_shows_the_pool_ready_with_its_nodes_and_gateways(
    kubectl: Kubectl, chat: Pool
) -> None:
    table = kubectl("get", "pools", "-n", chat.namespace)
    header, row = table.splitlines()[:2]
    assert "READY" in header, table
    assert row.split()[0] == chat.name, table
    assert "True" in row.split(), table
    described = kubectl("describe", "pool", chat.name, "-n", chat.namespace)
    assert f"Name:         {chat.name}" in described
    assert "Serving" in described  # the Ready condition's reason
    servers = kubectl.items("pods", chat.namespace, chat.servers_selector())
    gateways = kubectl.items("pods", chat.namespace, chat.gateways_selector())
    assert len(servers) == 2
    assert len(gateways) == 2


def test_ready_is_true_only_while_the_gateways_see_healthy_nodes(
    kubectl: Kubectl, release: Release
) -> None:
    """A pool whose nodes cannot reach Redis has pods but serves nobody: not Ready, with a
    one-line reason."""
    broken = Pool("no-redis", "e2e-no-redis", default_spec(release, replicas=1, minReplicas=1))
    broken.spec["redis"] = {"url": "redis://nowhere.invalid:6379"}
    broken.spec["gateway"] = {"replicas": 1, "serviceType": "NodePort"}
    with applied_pool(kubectl, broken, ready=False):
        poll_until(
            lambda: len(kubectl.items("pods", broken.namespace, broken.servers_selector())) == 1,
            within=120,
            message="the broken pool's server pod",
        )
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen.append(condition(kubectl, broken))
            time.sleep(1)
        assert all(c.get("status") != "True" for c in seen), seen
        ready = seen[-1]
        assert ready["status"] == "False", ready
        assert ready["message"], ready
        assert "\n" not in ready["message"], ready


async def test_a_subscriber_receives_what_a_client_on_another_node_publishes(
    kubectl: Kubectl, chat: Pool
) -> None:
    url = gateway_url(kubectl, chat)
    async with Client(url) as subscriber:
        await subscriber.subscribe("e2e:news")
        publishers = [Client(url) for _ in range(3)]
        try:
            for publisher in publishers:
                await publisher.connect()
            other = next(p for p in publishers if p.server_id != subscriber.server_id)
            for number in range(20):
                await other.publish("e2e:news", {"n": number})
            received: list[int] = []
            async with asyncio.timeout(20):
                async for message in subscriber.messages():
                    if isinstance(message, Data):
                        received.append(message.payload["n"])
                    if len(received) == 20:
                        break
        finally:
            for publisher in publishers:
                await publisher.close()
    assert received == list(range(20))
    assert other.server_id != subscriber.server_id
