"""What an operator of the pool relies on at runtime, against a real API server: the
operator's ``/metrics``, the gateways' disruption budget and the per-pool limits reaching the
pods, and two operator replicas of which only the holder of the Lease acts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.support.operator import OperatorProcess, register_nodes, running_operator
from tests.support.pools import GROUP, PLURAL, VERSION, create_pool, pool_manifest, read_pool
from tests.support.redis_server import free_port
from tests.support.waiting import poll_until

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.redis,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("websocketpool_crd"),
]


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the operator's /metrics; none while it is not listening yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except urllib.error.URLError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(port: int, name: str, **labels: str) -> float | None:
    return _metrics(port).get((name, frozenset(labels.items())))


def _observed_generation(api: client.ApiClient, namespace: str, name: str) -> int:
    return int((read_pool(api, namespace, name).get("status") or {}).get("observedGeneration", 0))


async def test_the_operators_metrics_count_reconciles_failures_and_scaling_per_pool(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    port = free_port()
    pool = f"{namespace}/chat"
    # 450 live connections at 100 per node want 5 nodes: the autoscaler adds two.
    await register_nodes(redis_url, f"{namespace}.chat:", [200, 150, 100])
    with running_operator(namespace, "--metrics-port", str(port)):
        create_pool(
            kube_api,
            namespace,
            pool_manifest(
                "chat", redis_url, replicas=3, autoscaling={"targetConnectionsPerNode": 100}
            ),
        )
        # No image in the spec, and the operator has no --image: a reconcile that fails.
        broken = pool_manifest("broken", redis_url)
        del broken["spec"]["image"]
        create_pool(kube_api, namespace, broken)
        poll_until(
            lambda: _sample(port, "wspool_operator_desired_server_nodes", pool=pool) == 5,
            within=30,
            message="5 desired nodes in /metrics",
        )
        poll_until(
            lambda: _sample(
                port, "wspool_operator_reconcile_failures_total", pool=f"{namespace}/broken"
            ),
            within=30,
            message="the broken pool's failed reconcile in /metrics",
        )
        seen = _metrics(port)

    def value(name: str, **labels: str) -> float | None:
        return seen.get((name, frozenset(labels.items())))

    assert value("wspool_operator_reconciles_total", pool=pool) == 1
    assert value("wspool_operator_reconcile_failures_total", pool=pool) == 0
    assert value("wspool_operator_reconciles_total", pool=f"{namespace}/broken") == 1
    decisions = "wspool_operator_scaling_decisions_total"
    assert value(decisions, pool=pool, direction="up") == 1  # 3 -> 5 in one step
    assert value(decisions, pool=pool, direction="down") is None
    assert value("wspool_operator_leader") == 1


async def test_the_gateways_get_a_disruption_budget_and_the_nodes_the_pools_limits(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    limits = {"connectionsPerAddress": 0, "messagesPerSecond": 50}
    balancer = ["130.211.0.0/22", "35.191.0.0/16"]
    manifest = pool_manifest("chat", redis_url, limits=limits, gateway={"trustedProxies": balancer})
    with running_operator(namespace):
        created = create_pool(kube_api, namespace, manifest)
        poll_until(lambda: _observed_generation(kube_api, namespace, "chat") >= 1, within=30)

    policy, apps = client.PolicyV1Api(kube_api), client.AppsV1Api(kube_api)
    budget: Any = policy.read_namespaced_pod_disruption_budget("chat-gateway", namespace)
    owners = [(o.kind, o.uid, o.controller) for o in budget.metadata.owner_references]
    assert owners == [("WebSocketPool", created["metadata"]["uid"], True)]
    assert budget.spec.max_unavailable == 1
    assert budget.spec.selector.match_labels["app.kubernetes.io/component"] == "gateway"

    def env(component: str) -> dict[str, str]:
        deployment: Any = apps.read_namespaced_deployment(f"chat-{component}", namespace)
        return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}

    node, gateway = env("server"), env("gateway")
    assert node["WSPOOL_MAX_CONNECTIONS_PER_IP"] == "0"
    assert node["WSPOOL_MESSAGES_PER_SECOND"] == "50"
    assert node["WSPOOL_TRUSTED_PROXIES"].endswith(",130.211.0.0/22,35.191.0.0/16")
    assert gateway["WSPOOL_TRUSTED_PROXIES"] == "130.211.0.0/22,35.191.0.0/16"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"gateway": {"trustedProxies": ["10.0.0.0/33"]}}, "spec.gateway.trustedProxies"),
        ({"limits": {"connectionsPerAddress": -1}}, "spec.limits.connectionsPerAddress"),
        ({"limits": {"messageBurst": 0}}, "spec.limits.messageBurst"),
    ],
)
def test_a_bad_limit_or_proxy_is_rejected_at_admission_naming_the_field(
    kube_api: client.ApiClient, namespace: str, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        create_pool(kube_api, namespace, pool_manifest("bad", **spec))

    assert rejected.value.status == 422
    assert field in str(rejected.value.body), rejected.value.body


# ---- two replicas, one Lease ----

LEASE = "wspool-operator"


@pytest.fixture
def two_operators(namespace: str) -> Iterator[list[OperatorProcess]]:
    """Two elected operators for ``namespace``, started one after the other."""
    args = ("--leader-election", "--lease-namespace", namespace, "--lease-duration", "4")
    with ExitStack() as stack:
        first = stack.enter_context(running_operator(namespace, *args))
        poll_until(lambda: "took lease" in first.log(), within=30, message="first took the lease")
        second = stack.enter_context(running_operator(namespace, *args))
        poll_until(lambda: "standing by" in second.log(), within=30, message="second stands by")
        yield [first, second]


def _holder(api: client.ApiClient, namespace: str) -> str | None:
    lease: Any = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
    return cast(str | None, lease.spec.holder_identity)


def _reconciles(operator: OperatorProcess) -> int:
    return operator.log().count("Handler 'reconcile' succeeded")


def _reconciled_pool(api: client.ApiClient, namespace: str, redis_url: str) -> None:
    create_pool(api, namespace, pool_manifest("chat", redis_url))
    poll_until(lambda: _observed_generation(api, namespace, "chat") >= 1, within=30)


def _change_strategy(api: client.ApiClient, namespace: str, strategy: str) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"strategy": strategy}}
    )


def test_of_two_operators_only_the_holder_of_the_lease_acts_and_the_other_takes_over(
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    two_operators: list[OperatorProcess],
) -> None:
    active, standby = two_operators
    _reconciled_pool(kube_api, namespace, redis_url)
    holder_before = _holder(kube_api, namespace)

    assert _reconciles(active) == 1
    assert _reconciles(standby) == 0
    assert "reconciling WebSocketPools" not in standby.log()

    assert active.stop() == 0  # SIGTERM: it releases the lease on its way out
    poll_until(lambda: "took lease" in standby.log(), within=15, message="standby took over")
    _change_strategy(kube_api, namespace, "round-robin")
    poll_until(lambda: _observed_generation(kube_api, namespace, "chat") >= 2, within=30)

    assert _reconciles(standby) >= 1
    assert _holder(kube_api, namespace) not in (None, holder_before)
    config: Any = client.CoreV1Api(kube_api).read_namespaced_config_map("chat-config", namespace)
    assert json.loads(config.data["poolConfig.json"])["strategy"] == "round-robin"


def test_a_standby_takes_over_from_an_operator_that_died_once_its_lease_lapses(
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    two_operators: list[OperatorProcess],
) -> None:
    active, standby = two_operators
    _reconciled_pool(kube_api, namespace, redis_url)

    active.kill()  # no release: the lease must lapse (4 s) before anyone else acts
    _change_strategy(kube_api, namespace, "round-robin")
    poll_until(lambda: _observed_generation(kube_api, namespace, "chat") >= 2, within=30)

    assert "took lease" in standby.log()
    assert _reconciles(standby) >= 1
