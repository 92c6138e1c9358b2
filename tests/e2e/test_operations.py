"""What an operator of the pool relies on, checked on the real cluster.

Events on the pool for its decisions, the API server refusing bad resources with the field
named, a status that says when the autoscaler overrides ``kubectl scale``, disruption budgets
for both kinds of pods, the operator's own ``/metrics``, two operator replicas of which one
acts, per-pool limits that let a pool behind an address-rewriting load balancer take more
than the default 100 connections from one address, and a pool's publish delay reaching its
node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from tests.support.e2e_pools import (
    CHART,
    Pool,
    Release,
    applied_pool,
    condition,
    default_spec,
    gateway_url,
    pool_manifest,
)
from tests.support.kubectl import CommandError, Kubectl
from tests.support.waiting import poll_until
from tests.support.wsclient import TestClient
from wspool.client import Client
from wspool.client.messages import Data

pytestmark = pytest.mark.kubernetes


def _events(kubectl: Kubectl, pool: Pool) -> list[dict[str, str]]:
    listed = kubectl.items("events", pool.namespace)
    return [
        {"reason": e.get("reason", ""), "message": e.get("message", ""), "type": e["type"]}
        for e in listed
        if e["involvedObject"]["kind"] == "WebSocketPool"
        and e["involvedObject"]["name"] == pool.name
    ]


def test_the_pool_has_events_for_its_decisions(kubectl: Kubectl, chat: Pool) -> None:
    kubectl.patch_pool(chat.name, chat.namespace, {"healthThreshold": 4})
    poll_until(
        lambda: any("healthThreshold" in e["message"] for e in _events(kubectl, chat)),
        within=30,
        message="an event naming the pushed config change",
    )
    described = kubectl("describe", "pool", chat.name, "-n", chat.namespace)
    assert "Events:" in described
    assert "healthThreshold" in described


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resources": {"requests": {"cpu": "two cores"}}}, "spec.resources.requests[cpu]"),
        ({"replicas": 9, "maxReplicas": 4}, "spec.replicas"),
    ],
)
def test_the_api_server_refuses_a_bad_pool_naming_the_field(
    kubectl: Kubectl, release: Release, change: dict[str, object], field: str
) -> None:
    pool = Pool("refused", "default", default_spec(release, **change))
    with pytest.raises(CommandError) as refused:
        kubectl.apply(pool_manifest(pool))
    assert field in refused.value.stderr
    assert not kubectl.exists("websocketpool", "refused", "default")


def test_the_status_says_when_the_autoscaler_overrides_kubectl_scale(
    kubectl: Kubectl, chat: Pool
) -> None:
    kubectl("scale", "pool", chat.name, "-n", chat.namespace, "--replicas=3")
    poll_until(
        lambda: condition(kubectl, chat, "AutoscalerOverride").get("status") == "True",
        within=30,
        message="an AutoscalerOverride condition",
    )
    override = condition(kubectl, chat, "AutoscalerOverride")
    assert "3" in override["message"], override
    kubectl("scale", "pool", chat.name, "-n", chat.namespace, "--replicas=2")


def test_servers_and_gateways_both_have_a_disruption_budget(kubectl: Kubectl, chat: Pool) -> None:
    budgets = {
        b["metadata"]["name"]: b["spec"]
        for b in kubectl.items("poddisruptionbudgets", chat.namespace)
    }
    assert f"{chat.name}-server" in budgets
    assert f"{chat.name}-gateway" in budgets


def test_the_operator_serves_its_metrics(kubectl: Kubectl, release: Release, chat: Pool) -> None:
    pod = kubectl.items("pods", release.namespace, release.operator_selector)[0]
    path = (
        f"/api/v1/namespaces/{release.namespace}/pods/{pod['metadata']['name']}:8000/proxy/metrics"
    )
    text = kubectl("get", "--raw", path)
    pool = f'pool="{chat.namespace}/{chat.name}"'
    reconciles = [
        line
        for line in text.splitlines()
        if line.startswith("wspool_operator_reconciles_total") and pool in line
    ]
    assert reconciles, text[:2000]
    assert float(reconciles[0].split()[-1]) >= 1


def test_two_operator_replicas_never_both_act(
    kubectl: Kubectl, release: Release, chat: Pool
) -> None:
    def replicas(count: int) -> None:
        kubectl.helm(
            "upgrade",
            release.name,
            str(CHART),
            "--namespace",
            release.namespace,
            "--reuse-values",
            "--set",
            f"operator.replicas={count}",
            "--wait",
        )

    replicas(2)
    try:

        def leaders() -> list[float] | None:
            values = []
            pods = kubectl.items("pods", release.namespace, release.operator_selector)
            if len(pods) != 2:
                return None
            for pod in pods:
                path = (
                    f"/api/v1/namespaces/{release.namespace}/pods/"
                    f"{pod['metadata']['name']}:8000/proxy/metrics"
                )
                try:
                    text = kubectl("get", "--raw", path)
                except CommandError:
                    return None
                line = next(x for x in text.splitlines() if x.startswith("wspool_operator_leader"))
                values.append(float(line.split()[-1]))
            return values

        values = poll_until(leaders, within=120, interval=1.0, message="two operator pods up")
        assert values is not None
        assert sorted(values) == [0.0, 1.0], values
    finally:
        replicas(1)


PUBLISH_DELAY = 0.5
"""The ``tuned`` pool's ``spec.publishDelay``: long enough that no delivery on loopback comes
close to it by itself."""


@pytest.fixture(scope="module")
def tuned(kubectl: Kubectl, release: Release) -> Iterator[Pool]:
    """One node and one gateway with per-pool settings a user tunes: the limits of a pool
    behind an address-rewriting load balancer, and a node that spaces its publishes."""
    pool = Pool(
        "tuned",
        "e2e-tuned",
        default_spec(
            release,
            replicas=1,
            minReplicas=1,
            limits={"connectionsPerAddress": 1000, "connectionAttemptsPerAddress": 1000},
            publishDelay=PUBLISH_DELAY,
            gateway={"replicas": 1, "serviceType": "NodePort"},
        ),
    )
    with applied_pool(kubectl, pool):
        yield pool


async def test_per_pool_limits_let_one_address_open_more_than_the_default_100(
    kubectl: Kubectl, tuned: Pool
) -> None:
    url = gateway_url(kubectl, tuned)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(TestClient(url)) for _ in range(150)]
        assert len({c.connection_id for c in clients}) == 150


async def test_a_pools_publish_delay_holds_what_follows_a_publish_for_one_later_batch(
    kubectl: Kubectl, tuned: Pool
) -> None:
    url = gateway_url(kubectl, tuned)
    arrived: list[tuple[int, float]] = []
    async with Client(url) as subscriber, Client(url) as publisher:
        await subscriber.subscribe("e2e:burst")
        inbox = subscriber.messages()

        async def receive(count: int) -> None:
            async with asyncio.timeout(20):
                while len(arrived) < count:
                    message = await anext(inbox)
                    if isinstance(message, Data):
                        arrived.append((message.payload["n"], time.monotonic()))

        # After a quiet spell a message goes at once; what follows within the delay after
        # that publish waits for it, and goes in one batch.
        sent = time.monotonic()
        await publisher.publish("e2e:burst", {"n": 0})
        await receive(1)
        for number in range(1, 10):
            await publisher.publish("e2e:burst", {"n": number})
        await receive(10)
    assert [number for number, _ in arrived] == list(range(10))
    first, last = arrived[0][1], arrived[-1][1]
    assert last - sent >= PUBLISH_DELAY, arrived
    assert last - first >= PUBLISH_DELAY / 2, arrived
