"""The WebSocketPool CRD (crds/) as the API server enforces it: admission, defaults, kubectl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.pools import (
    GROUP,
    PLURAL,
    VERSION,
    create_pool,
    kubectl,
    kubectl_refused,
    pool_manifest,
    read_pool,
)

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.timeout(150),
    pytest.mark.usefixtures("websocketpool_crd"),
]


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"strategy": "random"}, "spec.strategy", "Unsupported value"),
        ({"replicas": 11}, "spec.replicas", "less than or equal to 10"),
        ({"maxReplicas": 0}, "spec.maxReplicas", "greater than or equal to 1"),
        ({"minReplicas": 5, "maxReplicas": 2}, "spec.minReplicas", "must not exceed maxReplicas"),
        ({"maxConnections": 0}, "spec.maxConnections", "greater than or equal to 1"),
        ({"healthCheck": {"interval": 0}}, "spec.healthCheck.interval", "greater than 0"),
        ({"healthCheck": {"interval": 2, "timeout": 3}}, "spec.healthCheck.timeout", "interval"),
        ({"redis": {}}, "spec.redis", "exactly one of url and secretRef"),
        ({"redis": {"url": "http://redis"}}, "spec.redis.url", "should match"),
        ({"redis": {"url": "redis+sentinel://s:26379"}}, "spec.redis.url", "should match"),
        (
            {"redis": {"url": "redis+cluster://r:6379", "keyPrefix": "{chat}:"}},
            "spec.redis.keyPrefix",
            "should match",
        ),
        ({"auth": {}}, "spec.auth", "give secretRef"),
        ({"publishDelay": 2}, "spec.publishDelay", "less than or equal to 1"),
        ({"autoscaling": {"targetConnectionsPerNode": 0}}, "targetConnectionsPerNode", ">= 1"),
        ({"replicas": 6, "maxReplicas": 5}, "spec.replicas", "must not exceed maxReplicas"),
        (
            {"resources": {"requests": {"cpu": "lots"}}},
            "spec.resources.requests[cpu]",
            "must be a non-negative quantity",
        ),
        (
            {"resources": {"limits": {"memory": "-1Gi"}}},
            "spec.resources.limits[memory]",
            "must be a non-negative quantity",
        ),
        (
            {"gateway": {"resources": {"limits": {"memory": "1GB"}}}},
            "spec.gateway.resources.limits[memory]",
            "must be a non-negative quantity",
        ),
        (
            {"resources": {"requests": {"cpus": 1}}},
            "spec.resources.requests",
            "resource names are cpu, memory",
        ),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}},
            "spec.resources.requests",
            "a request must not exceed the limit",
        ),
        ({"image": "acc/websocket-pool: 1.0"}, "spec.image", "should match"),
        (
            {"redis": {"secretRef": {"name": "Redis_Conn"}}},
            "spec.redis.secretRef.name",
            "should match",
        ),
    ],
)
def test_a_bad_pool_is_rejected_at_admission_with_the_field_and_the_reason(
    kube_api: client.ApiClient, namespace: str, spec: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        create_pool(kube_api, namespace, pool_manifest("bad", **spec))

    assert rejected.value.status == 422
    body = str(rejected.value.body)
    assert field in body, body
    assert reason.replace(">= 1", "greater than or equal to 1") in body, body
    assert read_pools(kube_api, namespace) == []


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://redis-0:6379,redis-1:6379", "rediss+sentinel://app:pw@s-0:26379/primary"],
)
def test_a_pool_on_a_cluster_or_behind_sentinel_is_admitted(
    kube_api: client.ApiClient, namespace: str, url: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat", url))

    assert read_pool(kube_api, namespace, "chat")["spec"]["redis"]["url"] == url


def read_pools(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])


def test_a_minimal_pool_gets_the_documented_defaults(
    kube_api: client.ApiClient, namespace: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat"))

    spec = read_pool(kube_api, namespace, "chat")["spec"]

    assert spec["strategy"] == "least-connections"
    assert (spec["replicas"], spec["minReplicas"], spec["maxReplicas"]) == (3, 1, 10)
    assert spec["maxConnections"] == 100_000
    assert spec["healthCheck"] == {"interval": 5, "timeout": 3}
    assert spec["autoscaling"] == {
        "enabled": True,
        "targetConnectionsPerNode": 1000,
        "scaleDownStabilizationSeconds": 300,
        "scaleUpStep": 4,
    }
    assert spec["gateway"] == {"replicas": 2, "serviceType": "ClusterIP"}
    assert spec["drainWindow"] == 10
    assert spec["publishDelay"] == 0


def test_kubectl_apply_refuses_a_bad_cpu_request_and_names_the_field(namespace: str) -> None:
    manifest = pool_manifest("chat", resources={"requests": {"cpu": "two cores"}})

    refused = kubectl_refused(
        "apply", "--namespace", namespace, "-f", "-", stdin=json.dumps(manifest)
    )

    assert "spec.resources.requests[cpu]" in refused, refused
    assert "must be a non-negative quantity such as 500m, 2, 512Mi or 1Gi" in refused, refused
    assert "\n" not in refused.strip(), refused


def test_good_quantities_are_accepted_as_strings_or_integers(
    kube_api: client.ApiClient, namespace: str
) -> None:
    resources = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 2}}
    gateway = {"resources": {"requests": {"example.com/gpu": 1, "hugepages-2Mi": "64Mi"}}}

    create_pool(kube_api, namespace, pool_manifest("chat", resources=resources, gateway=gateway))

    spec = read_pool(kube_api, namespace, "chat")["spec"]
    assert spec["resources"] == resources
    assert spec["gateway"]["resources"] == gateway["resources"]


def test_kubectl_get_pool_and_describe_pool_take_the_singular_short_name(
    kube_api: client.ApiClient, namespace: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat", strategy="round-robin"))

    got = kubectl("get", "pool", "chat", "--namespace", namespace)
    described = kubectl("describe", "pool", "chat", "--namespace", namespace)

    assert got.splitlines()[1].split()[:2] == ["chat", "round-robin"]
    assert "Name:         chat" in described
    assert "Kind:         WebSocketPool" in described


def test_kubectl_scale_beyond_max_replicas_is_refused_with_the_reason(
    kube_api: client.ApiClient, namespace: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat", replicas=2, maxReplicas=4))

    refused = kubectl_refused("scale", "pool/chat", "--replicas=5", "--namespace", namespace)

    assert "replicas must not exceed maxReplicas" in refused, refused
    assert read_pool(kube_api, namespace, "chat")["spec"]["replicas"] == 2


def test_kubectl_get_pools_and_wsp_show_strategy_servers_health_connections_and_age(
    kube_api: client.ApiClient, namespace: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat", strategy="weighted"))
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "chat",
        {"status": {"servers": "2/3", "healthyNodes": 2, "connections": 1234}},
    )

    by_short_name = kubectl("get", "pools", "--namespace", namespace)
    by_other_name = kubectl("get", "wsp", "chat", "--namespace", namespace)

    header, row = by_short_name.splitlines()
    columns = ["NAME", "STRATEGY", "SERVERS", "HEALTHY", "CONNECTIONS", "READY", "AGE"]
    assert header.split() == columns
    assert row.split()[:5] == ["chat", "weighted", "2/3", "2", "1234"]
    assert by_other_name.splitlines()[1].split()[:2] == ["chat", "weighted"]


def test_kubectl_scale_sets_the_pools_replicas_through_the_scale_subresource(
    kube_api: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    create_pool(kube_api, namespace, pool_manifest("chat", replicas=2))
    selector = "app.kubernetes.io/instance=chat"
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "chat", {"status": {"replicas": 2, "selector": selector}}
    )

    kubectl("scale", "wsp/chat", "--replicas=5", "--namespace", namespace)
    scale = cast(
        dict[str, Any],
        custom.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "chat"),
    )

    assert read_pool(kube_api, namespace, "chat")["spec"]["replicas"] == 5
    assert scale["spec"]["replicas"] == 5
    assert scale["status"] == {"replicas": 2, "selector": selector}


def test_scaling_a_pool_beyond_ten_nodes_is_refused(
    kube_api: client.ApiClient, namespace: str
) -> None:
    create_pool(kube_api, namespace, pool_manifest("chat"))

    with pytest.raises(ApiException) as rejected:
        client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"replicas": 11}}
        )

    assert rejected.value.status == 422
    assert "spec.replicas" in str(rejected.value.body)
    assert read_pool(kube_api, namespace, "chat")["spec"]["replicas"] == 3


def test_the_documented_example_pool_is_accepted(namespace: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "websocketpool.yaml"

    applied = kubectl("apply", "--dry-run=server", "--namespace", namespace, "-f", str(example))

    assert "websocketpool.realtime.acc.io/chat created (server dry run)" in applied
