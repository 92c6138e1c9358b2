"""``wspool operator`` against a real API server: what a pool becomes, its status, its lifecycle.

No kubelet runs here, so no pod ever starts: the tests check the objects the operator makes,
who owns them, that doing it again changes nothing, the status and conditions it reports,
and that deleting the pool takes everything with it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from kubernetes import client

from tests.support.operator import register_nodes, running_operator
from tests.support.pools import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_pool,
    gone,
    kubectl,
    pool_events,
    pool_manifest,
    read_pool,
)
from tests.support.waiting import eventually, poll_until

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.redis,
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("websocketpool_crd"),
]


T = TypeVar("T")


def _wait(probe: Callable[[], T | None], message: str, within: float = 30) -> T:
    value = poll_until(probe, within=within, message=message)
    assert value is not None
    return value


async def _await(probe: Callable[[], Awaitable[T | None]], message: str) -> T:
    value = await eventually(probe, within=30, message=message)
    assert value is not None
    return value


def _objects(api: client.ApiClient, namespace: str, pool: str) -> dict[str, Any]:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    policy = client.PolicyV1Api(api)
    return {
        "server": apps.read_namespaced_deployment(f"{pool}-server", namespace),
        "gateway": apps.read_namespaced_deployment(f"{pool}-gateway", namespace),
        "server-service": core.read_namespaced_service(f"{pool}-server", namespace),
        "gateway-service": core.read_namespaced_service(f"{pool}-gateway", namespace),
        "config": core.read_namespaced_config_map(f"{pool}-config", namespace),
        "pdb": policy.read_namespaced_pod_disruption_budget(f"{pool}-server", namespace),
    }


def _all_made(api: client.ApiClient, namespace: str, pool: str) -> dict[str, Any] | None:
    try:
        return _objects(api, namespace, pool)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _reconciled(
    api: client.ApiClient, namespace: str, name: str, generation: int = 1
) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        pool = read_pool(api, namespace, name)
        status = pool.get("status") or {}
        return pool if status.get("observedGeneration", 0) >= generation else None

    return _wait(seen, f"pool {name} reconciled at generation {generation}")


def _attempts(api: client.ApiClient, namespace: str) -> int:
    """How often Kopf has run the pool's reconcile handler for its current change."""
    notes = read_pool(api, namespace, "chat")["metadata"].get("annotations") or {}
    progress = json.loads(notes.get("realtime.acc.io/reconcile", "{}"))
    return int(progress.get("retries", 0))


def _describe(namespace: str, pool: str = "chat") -> str:
    return kubectl("describe", "pool", pool, "--namespace", namespace)


def _env(deployment: Any) -> dict[str, Any]:
    container = deployment.spec.template.spec.containers[0]
    return {e.name: e.value if e.value is not None else e.value_from for e in container.env}


def test_a_pool_becomes_deployments_services_a_configmap_and_a_pdb_that_it_owns(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    with running_operator(namespace):
        created = create_pool(kube_api, namespace, pool_manifest("chat", redis_url, replicas=3))
        made = _wait(lambda: _all_made(kube_api, namespace, "chat"), "the pool's objects")

    uid = created["metadata"]["uid"]
    for name, obj in made.items():
        owners = obj.metadata.owner_references
        assert [(o.kind, o.name, o.uid, o.controller) for o in owners] == [
            ("WebSocketPool", "chat", uid, True)
        ], name
        assert obj.metadata.labels["app.kubernetes.io/instance"] == "chat", name
    server, gateway = made["server"], made["gateway"]
    assert server.spec.replicas == 3
    assert gateway.spec.replicas == 2
    node = server.spec.template.spec.containers[0]
    assert (node.image, node.args) == ("acc/websocket-pool:test", ["server"])
    assert gateway.spec.template.spec.containers[0].args == ["gateway"]
    assert node.readiness_probe.http_get.path == "/health"
    assert node.lifecycle.pre_stop.sleep.seconds == 2
    # preStop pause + the 10 s drain window + a margin to deregister and exit
    assert server.spec.template.spec.termination_grace_period_seconds == 22
    assert _env(server)["WSPOOL_ADVERTISE_URL"] == "ws://$(POD_IP):8081/ws"
    config = made["config"].data
    assert config["REDIS_URL"] == redis_url
    assert config["WSPOOL_KEY_PREFIX"] == f"{namespace}.chat:"
    assert json.loads(config["poolConfig.json"])["strategy"] == "least-connections"
    assert made["server-service"].spec.cluster_ip == "None"
    assert made["gateway-service"].spec.ports[0].port == 8080
    assert made["pdb"].spec.max_unavailable == 1


async def test_status_reports_nodes_connections_conditions_and_generation(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    prefix = f"{namespace}.chat:"
    await register_nodes(redis_url, prefix, [120, 30])
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url, replicas=2))

        async def counted() -> dict[str, Any] | None:
            pool = read_pool(kube_api, namespace, "chat")
            status = pool.get("status") or {}
            return pool if status.get("connections") == 150 else None

        pool = await _await(counted, "status counts 150 connections")

    status = pool["status"]
    assert status["observedGeneration"] == 1
    assert (status["desiredReplicas"], status["readyReplicas"], status["servers"]) == (2, 0, "0/2")
    assert status["healthyNodes"] == 2
    assert status["selector"] == (
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=chat,"
        "app.kubernetes.io/name=websocket-pool"
    )
    ready, progressing, degraded = (
        condition(pool, k) for k in ("Ready", "Progressing", "Degraded")
    )
    assert ready is not None
    assert progressing is not None
    assert degraded is not None
    # both nodes are healthy in the registry, but no gateway runs here to reach them
    assert (ready["status"], ready["reason"]) == ("False", "NoReadyGateway")
    assert ready["message"] == "0 of 2 gateways ready; 2 of 2 registered server nodes healthy"
    assert progressing["status"] == "True"
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in (ready,))


def _generations(api: client.ApiClient, namespace: str, pool: str) -> dict[str, int]:
    """Each Deployment's generation: it moves when its spec (the pod template) changes."""
    objects = _objects(api, namespace, pool)
    return {part: objects[part].metadata.generation for part in ("server", "gateway")}


async def test_a_strategy_change_reaches_the_gateways_through_redis_without_rolling_a_pod(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    store = aioredis.Redis.from_url(redis_url, decode_responses=True)
    change = {"strategy": "round-robin", "healthCheck": {"interval": 2, "timeout": 1}}
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
        _reconciled(kube_api, namespace, "chat")
        before = _generations(kube_api, namespace, "chat")
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "chat", {"spec": change}
        )
        _reconciled(kube_api, namespace, "chat", generation=2)
        after = _generations(kube_api, namespace, "chat")
        pushed = _wait(
            lambda: [
                e for e in pool_events(kube_api, namespace, "chat") if e[1] == "PoolConfigPushed"
            ][1:],
            "a second PoolConfigPushed event",
        )

    try:
        shared = json.loads(await store.get(f"{namespace}.chat:pool:config") or "{}")
    finally:
        await store.aclose()
    assert shared["strategy"] == "round-robin"
    assert shared["healthCheck"]["interval"] == 2
    assert after == before  # no pod template changed: nothing rolls
    assert _objects(kube_api, namespace, "chat")["config"].data["WSPOOL_STRATEGY"] == "round-robin"
    assert pushed == [
        (
            "Normal",
            "PoolConfigPushed",
            "strategy least-connections -> round-robin; healthCheck.interval 5 -> 2;"
            " healthCheck.timeout 3 -> 1",
        )
    ]


def test_an_image_change_rolls_both_deployments(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
        _reconciled(kube_api, namespace, "chat")
        before = _generations(kube_api, namespace, "chat")
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"image": "acc/websocket-pool:2"}}
        )
        _reconciled(kube_api, namespace, "chat", generation=2)
        after = _generations(kube_api, namespace, "chat")

    assert after == {part: generation + 1 for part, generation in before.items()}


def _versions(api: client.ApiClient, namespace: str, pool: str) -> dict[str, str]:
    """What changes when something writes an object's spec or data: the generation where
    there is one (controllers write the status of Deployments and PDBs at any time), else
    the resourceVersion (Services and ConfigMaps have no status here)."""
    return {
        k: str(v.metadata.generation or v.metadata.resource_version)
        for k, v in _objects(api, namespace, pool).items()
    }


def test_a_restarted_operator_takes_up_changes_made_meanwhile_and_rewrites_nothing_else(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with running_operator(namespace) as operator:
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
        _reconciled(kube_api, namespace, "chat")
        before = _versions(kube_api, namespace, "chat")
        assert operator.stop() == 0  # SIGTERM: a clean exit
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "chat", {"spec": {"gateway": {"replicas": 3}}}
    )

    with running_operator(namespace):
        _reconciled(kube_api, namespace, "chat", generation=2)
        after = _versions(kube_api, namespace, "chat")
        gateway = _objects(kube_api, namespace, "chat")["gateway"]

    assert gateway.spec.replicas == 3
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"gateway"}


def test_a_pool_the_operator_cannot_run_says_why_in_its_conditions_and_events(
    kube_api: client.ApiClient, namespace: str
) -> None:
    manifest = pool_manifest("chat", "redis://127.0.0.1:9")  # nothing listens on port 9
    del manifest["spec"]["image"]  # and the operator has no --image to fall back on

    with running_operator(namespace):
        create_pool(kube_api, namespace, manifest)

        def reported() -> dict[str, Any] | None:
            found = condition(read_pool(kube_api, namespace, "chat"), "Degraded")
            return found if found and found["status"] == "True" else None

        degraded = _wait(reported, "Degraded condition")
        described = _wait(
            lambda: text if "InvalidSpec" in (text := _describe(namespace)) else None,
            "an InvalidSpec event in kubectl describe",
        )

    assert degraded["reason"] == "ReconcileFailed"
    assert "spec.image" in degraded["message"]
    assert "invalid spec.image: is required (the operator has no --image)" in described
    assert _all_made(kube_api, namespace, "chat") is None


def test_an_api_server_refusal_is_one_line_in_the_status_and_one_event_across_retries(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    # A Service of that name already has a cluster IP, which cannot become None (headless).
    client.CoreV1Api(kube_api).create_namespaced_service(
        namespace,
        client.V1Service.model_validate(
            {
                "metadata": {"name": "chat-server"},
                "spec": {"ports": [{"port": 8081}], "selector": {"app": "other"}},
            }
        ),
    )

    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url))

        def failed() -> dict[str, Any] | None:
            found = condition(read_pool(kube_api, namespace, "chat"), "Degraded")
            return found if found and found["reason"] == "ReconcileFailed" else None

        degraded = _wait(failed, "Degraded ReconcileFailed")
        # Kopf retries every 5 s and counts the attempts in its progress annotation.
        _wait(lambda: _attempts(kube_api, namespace) >= 3, "two retries", within=20)
        told = [e for e in pool_events(kube_api, namespace, "chat") if e[1] == "ReconcileFailed"]

    message = degraded["message"]
    assert message.startswith('the API server answered 422: Service "chat-server" is invalid:')
    assert "\n" not in message
    assert "HTTP response" not in message
    assert told == [("Warning", "ReconcileFailed", message)]


def test_a_pool_whose_redis_is_away_is_not_ready_and_degraded_but_its_objects_exist(
    kube_api: client.ApiClient, namespace: str
) -> None:
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", "redis://127.0.0.1:9"))
        pool = _reconciled(kube_api, namespace, "chat")

    ready, degraded = condition(pool, "Ready"), condition(pool, "Degraded")
    assert ready is not None
    assert degraded is not None
    assert (ready["status"], ready["reason"]) == ("False", "StatsUnavailable")
    assert (degraded["status"], degraded["reason"]) == ("True", "StatsUnavailable")
    assert "\n" not in ready["message"]
    assert _all_made(kube_api, namespace, "chat") is not None


@pytest.mark.usefixtures("controller_manager")
def test_deleting_a_pool_garbage_collects_everything_it_made(
    kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    with running_operator(namespace):
        create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
        poll_until(lambda: _all_made(kube_api, namespace, "chat"), within=30)
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "chat")
        # the operator stops the pool's sync timer and releases its finalizer
        poll_until(lambda: gone(lambda: read_pool(kube_api, namespace, "chat")), within=30)

    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    reads = [
        lambda: apps.read_namespaced_deployment("chat-server", namespace),
        lambda: apps.read_namespaced_deployment("chat-gateway", namespace),
        lambda: core.read_namespaced_service("chat-server", namespace),
        lambda: core.read_namespaced_service("chat-gateway", namespace),
        lambda: core.read_namespaced_config_map("chat-config", namespace),
        lambda: client.PolicyV1Api(kube_api).read_namespaced_pod_disruption_budget(
            "chat-server", namespace
        ),
    ]
    poll_until(
        lambda: all(gone(read) for read in reads), within=45, message="pool's objects collected"
    )
