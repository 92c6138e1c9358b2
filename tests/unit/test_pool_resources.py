"""A pool's spec, the objects it renders to, and the status it reports: pure functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wspool.core.poolconfig import StrategyName
from wspool.operator.model.manifests import PoolRef, grace_period, render_pool, selector_string
from wspool.operator.model.poolspec import PoolSpecError, parse_pool_spec
from wspool.operator.model.poolstatus import (
    PoolObservation,
    deployment_counts,
    one_line,
    render_conditions,
    render_status,
)

REPOSITORY = Path(__file__).resolve().parents[2]
MINIMAL: dict[str, Any] = {"redis": {"url": "redis://redis:6379"}, "auth": {"insecure": True}}
REF = PoolRef("chat", "prod", "uid-1", default_image="acc/websocket-pool:1.0")


def _spec(**fields: Any) -> dict[str, Any]:
    return {**MINIMAL, **fields}


def test_a_minimal_spec_gets_the_same_defaults_as_the_crd() -> None:
    spec = parse_pool_spec(MINIMAL)

    assert spec.strategy is StrategyName.LEAST_CONNECTIONS
    assert (spec.replicas, spec.min_replicas, spec.max_replicas) == (3, 1, 10)
    assert spec.max_connections == 100_000
    assert (spec.health_check.interval, spec.health_check.timeout) == (5.0, 3.0)
    assert spec.autoscaling.enabled
    assert spec.autoscaling.target_connections_per_node == 1000
    assert spec.gateway.replicas == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"strategy": "random"}, "spec.strategy"),
        ({"replicas": 11}, "spec.replicas"),
        ({"replicas": True}, "spec.replicas"),
        ({"minReplicas": 6, "maxReplicas": 5}, "spec.minReplicas"),
        ({"maxConnections": 0}, "spec.maxConnections"),
        ({"healthCheck": {"interval": 0}}, "spec.healthCheck.interval"),
        ({"healthCheck": {"interval": 1, "timeout": 2}}, "spec.healthCheck.timeout"),
        ({"redis": {}}, "spec.redis"),
        ({"redis": {"url": "redis://r", "secretRef": {"name": "s"}}}, "spec.redis"),
        ({"redis": {"url": "http://r"}}, "spec.redis.url"),
        ({"auth": {}}, "spec.auth"),
        ({"auth": {"insecure": True, "trustedProxies": ["10.0.0.0/33"]}}, "spec.auth.trusted"),
        ({"drainWindow": -1}, "spec.drainWindow"),
        ({"publishDelay": 1.5}, "spec.publishDelay"),
        ({"autoscaling": {"targetConnectionsPerNode": 0}}, "spec.autoscaling"),
        ({"gateway": {"serviceType": "Ingress"}}, "spec.gateway.serviceType"),
        ({"seamless": "yes"}, "spec.seamless"),
    ],
)
def test_a_spec_the_operator_cannot_use_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(PoolSpecError) as raised:
        parse_pool_spec(_spec(**fields))

    assert raised.value.field.startswith(field), raised.value


def test_the_declared_pool_config_is_what_the_gateways_read() -> None:
    spec = parse_pool_spec(_spec(strategy="weighted", healthCheck={"interval": 2, "timeout": 1}))

    assert spec.pool_config() == {
        "strategy": "weighted",
        "maxConnections": 100_000,
        "healthThreshold": 3,
        "healthCheck": {"interval": 2.0, "timeout": 1.0},
        "seamless": True,
    }
    assert parse_pool_spec(_spec(seamless=False)).pool_config()["seamless"] is False


def _by_kind(spec: dict[str, Any], replicas: int = 3) -> dict[str, dict[str, Any]]:
    objects = render_pool(parse_pool_spec(spec), REF, replicas)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_a_pool_renders_seven_objects_all_owned_by_it_as_their_controller() -> None:
    objects = _by_kind(MINIMAL)

    assert sorted(objects) == [
        "ConfigMap/chat-config",
        "Deployment/chat-gateway",
        "Deployment/chat-server",
        "PodDisruptionBudget/chat-gateway",
        "PodDisruptionBudget/chat-server",
        "Service/chat-gateway",
        "Service/chat-server",
    ]
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "prod"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "realtime.acc.io/v1alpha1",
                "kind": "WebSocketPool",
                "name": "chat",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_rendering_is_deterministic() -> None:
    assert render_pool(parse_pool_spec(MINIMAL), REF, 3) == render_pool(
        parse_pool_spec(MINIMAL), REF, 3
    )


def test_the_grace_period_covers_the_prestop_pause_the_drain_window_and_a_margin() -> None:
    spec = parse_pool_spec(_spec(drainWindow=30.5))
    server = _by_kind(_spec(drainWindow=30.5))["Deployment/chat-server"]
    pod = server["spec"]["template"]["spec"]
    container = pod["containers"][0]

    assert grace_period(spec) == 2 + 31 + 10
    assert pod["terminationGracePeriodSeconds"] == 43
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 2}}}
    # /health says 503 while draining: liveness must not give up before the grace period
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > 43
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8081}


def test_nodes_count_clients_by_the_address_their_gateways_forward() -> None:
    def proxies(spec: dict[str, Any]) -> str:
        server = _by_kind(spec)["Deployment/chat-server"]["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in server["containers"][0]["env"]}
        return str(env["WSPOOL_TRUSTED_PROXIES"])

    assert proxies(MINIMAL) == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
    custom = _spec(auth={"insecure": True, "trustedProxies": ["100.64.0.0/10"]})
    assert proxies(custom) == "100.64.0.0/10"


def test_secrets_reach_the_pods_by_reference_never_by_value() -> None:
    spec = _spec(
        redis={"secretRef": {"name": "redis-conn"}},
        auth={"secretRef": {"name": "pool-keys"}},
    )
    objects = _by_kind(spec)
    server_env = objects["Deployment/chat-server"]["spec"]["template"]["spec"]["containers"][0]
    gateway_env = objects["Deployment/chat-gateway"]["spec"]["template"]["spec"]["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in server_env["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }

    assert refs == {
        "REDIS_URL": {"name": "redis-conn", "key": "url"},
        "WSPOOL_JWT_SECRET": {"name": "pool-keys", "key": "jwtSecret"},
        "WSPOOL_TICKET_SECRET": {"name": "pool-keys", "key": "ticketSecret", "optional": True},
    }
    assert "WSPOOL_ADMIN_TOKEN" in {e["name"] for e in gateway_env["env"]}
    assert "REDIS_URL" not in objects["ConfigMap/chat-config"]["data"]
    assert "WSPOOL_INSECURE" not in objects["ConfigMap/chat-config"]["data"]


def _templates(spec: dict[str, Any]) -> list[dict[str, Any]]:
    objects = _by_kind(spec)
    return [
        objects[f"Deployment/chat-{part}"]["spec"]["template"] for part in ("server", "gateway")
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"strategy": "round-robin"},
        {"maxConnections": 5000},
        {"healthThreshold": 5},
        {"healthCheck": {"interval": 2, "timeout": 1}},
    ],
)
def test_a_change_the_gateways_follow_live_leaves_the_pod_templates_alone(
    change: dict[str, Any],
) -> None:
    changed = _by_kind(_spec(**change))

    assert _templates(_spec(**change)) == _templates(MINIMAL)
    # the ConfigMap still says it, for a gateway that starts with an empty Redis
    assert changed["ConfigMap/chat-config"] != _by_kind(MINIMAL)["ConfigMap/chat-config"]


@pytest.mark.parametrize(
    "change",
    [
        {"image": "acc/websocket-pool:2.0"},
        {"redis": {"url": "redis://other:6379"}},
        {"redis": {"url": "redis://redis:6379", "keyPrefix": "other:"}},
        {"publishDelay": 0.002},
        {"drainWindow": 30},
        {"auth": {"secretRef": {"name": "pool-keys"}}},
    ],
)
def test_a_change_the_pods_read_only_at_start_rolls_them(change: dict[str, Any]) -> None:
    before, after = _templates(MINIMAL), _templates(_spec(**change))

    assert before[0] != after[0]
    assert before[1] != after[1]


def test_the_checksum_moves_when_the_environment_needs_a_restart() -> None:
    key = "realtime.acc.io/config-checksum"
    before = _templates(MINIMAL)[0]["metadata"]["annotations"][key]
    after = _templates(_spec(redis={"url": "redis://other:6379"}))[0]["metadata"]["annotations"]

    assert after[key] != before


def test_the_scale_selector_names_the_server_pods_only() -> None:
    assert selector_string("chat") == (
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=chat,"
        "app.kubernetes.io/name=websocket-pool"
    )


def _seen(**fields: Any) -> PoolObservation:
    values: dict[str, Any] = {
        "generation": 4,
        "desired": 3,
        "replicas": 3,
        "ready": 3,
        "updated": 3,
        "rolled_out": True,
        "gateways_desired": 2,
        "gateways_ready": 2,
        "healthy_nodes": 3,
        "registered_nodes": 3,
        "connections": 42,
        "spec_replicas": 3,
        "autoscaling": (1, 10),
    }
    values.update(fields)
    return PoolObservation(**values)


def _reasons(seen: PoolObservation) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in render_conditions(seen, [], 0.0)]


def test_a_pool_with_a_ready_gateway_and_healthy_nodes_is_ready_stable_and_not_degraded() -> None:
    assert _reasons(_seen()) == [
        ("Ready", "True", "Serving"),
        ("Progressing", "False", "Stable"),
        ("Degraded", "False", "AsExpected"),
        ("AutoscalerOverride", "False", "SpecReplicasApplied"),
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"ready": 0},
            [("Ready", "True", "Serving"), ("Progressing", "True", "WaitingForServers")],
        ),
        (
            {"gateways_ready": 0},
            [("Ready", "False", "NoReadyGateway"), ("Progressing", "True", "WaitingForGateways")],
        ),
        ({"rolled_out": False}, [("Progressing", "True", "RollingOut")]),
        ({"replicas": 4}, [("Progressing", "True", "ScalingDown")]),
        (
            {"stats_error": "refused", "healthy_nodes": None},
            [("Ready", "False", "StatsUnavailable"), ("Degraded", "True", "StatsUnavailable")],
        ),
        (
            {"healthy_nodes": 0},
            [("Ready", "False", "NoHealthyNodes"), ("Degraded", "True", "NoHealthyNodes")],
        ),
        (
            {"error": "forbidden"},
            [("Ready", "False", "ReconcileFailed"), ("Degraded", "True", "ReconcileFailed")],
        ),
    ],
)
def test_conditions_say_what_is_wrong(
    fields: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    reasons = _reasons(_seen(**fields))

    for entry in expected:
        assert entry in reasons


def _condition(seen: PoolObservation, kind: str) -> dict[str, Any]:
    return next(c for c in render_conditions(seen, [], 0.0) if c["type"] == kind)


def test_ready_pods_with_no_healthy_node_in_the_registry_are_not_ready() -> None:
    ready = _condition(_seen(healthy_nodes=0, registered_nodes=2), "Ready")

    assert (ready["status"], ready["reason"]) == ("False", "NoHealthyNodes")
    assert ready["message"] == "0 of 2 registered server nodes healthy; 3 of 3 pods ready"


def test_a_pool_whose_registry_cannot_be_read_is_not_ready() -> None:
    unread = _condition(_seen(healthy_nodes=None, registered_nodes=None), "Ready")
    refused = _condition(_seen(healthy_nodes=None, stats_error="Connection refused"), "Ready")

    assert (unread["status"], unread["reason"]) == ("False", "StatsUnavailable")
    assert refused["message"] == "cannot read the pool's Redis: Connection refused"


def test_ready_says_how_many_nodes_are_healthy_and_how_many_gateways_ready() -> None:
    ready = _condition(_seen(healthy_nodes=2, gateways_ready=1), "Ready")

    assert ready["message"] == "2 of 3 registered server nodes healthy; 1 of 2 gateways ready"


def test_the_status_says_when_the_autoscaler_overrides_spec_replicas() -> None:
    scaled = _condition(_seen(spec_replicas=5, autoscaling=(2, 10)), "AutoscalerOverride")
    manual = _condition(_seen(spec_replicas=5, desired=5, autoscaling=None), "AutoscalerOverride")

    assert (scaled["status"], scaled["reason"]) == ("True", "SpecReplicasIgnored")
    assert scaled["message"] == "spec.replicas 5 ignored: autoscaling between 2 and 10 keeps 3"
    assert (manual["status"], manual["reason"]) == ("False", "AutoscalingDisabled")


def test_a_failure_without_a_spec_keeps_the_last_override_condition() -> None:
    before = render_conditions(_seen(spec_replicas=5), [], 1_000.0)
    failed = render_conditions(_seen(spec_replicas=None, error="spec.image: required"), before, 0)

    kept = [c for c in failed if c["type"] == "AutoscalerOverride"]
    assert kept == [c for c in before if c["type"] == "AutoscalerOverride"]


def test_a_long_multi_line_error_becomes_one_short_line_in_every_condition() -> None:
    dump = "(422)\nReason: Unprocessable Entity\nHTTP response body: " + "x" * 2000

    conditions = render_conditions(_seen(error=dump), [], 0.0)

    for entry in conditions:
        assert "\n" not in entry["message"]
        assert len(entry["message"]) <= 280
    assert conditions[0]["message"].startswith("(422) Reason: Unprocessable Entity")
    assert conditions[0]["message"].endswith("…")


def test_one_line_hides_the_password_of_a_url() -> None:
    text = "Error connecting to redis://app:s3cret@redis.data:6379/0\n"

    assert one_line(text) == "Error connecting to redis://***@redis.data:6379/0"
    assert one_line("short") == "short"


def test_a_conditions_transition_time_moves_only_when_its_status_flips() -> None:
    first = render_conditions(_seen(gateways_ready=0), [], 1_000.0)
    same = render_conditions(_seen(gateways_ready=0, desired=4), first, 2_000.0)
    flipped = render_conditions(_seen(), same, 3_000.0)

    times = [{c["type"]: c["lastTransitionTime"] for c in s} for s in (first, same, flipped)]
    assert times[0]["Ready"] == times[1]["Ready"] == "1970-01-01T00:16:40Z"
    assert times[2]["Ready"] == "1970-01-01T00:50:00Z"
    assert times[2]["Degraded"] == times[0]["Degraded"]
    assert all(c["observedGeneration"] == 4 for c in flipped)


def test_the_status_carries_counts_for_kubectl_and_the_scale_subresource() -> None:
    status = render_status(_seen(ready=2), {}, 0.0, "app=x")

    assert status["servers"] == "2/3"
    assert status["gateways"] == "2/2"
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (3, 2, 3)
    assert (status["healthyNodes"], status["connections"]) == (3, 42)
    assert status["selector"] == "app=x"
    assert "connections" not in render_status(_seen(connections=None), {}, 0.0, "app=x")


def test_deployment_counts_read_a_deployment_and_default_to_nothing() -> None:
    deployment = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 4},
        "status": {"observedGeneration": 2, "replicas": 4, "readyReplicas": 1},
    }

    counts = deployment_counts(deployment)

    assert (counts.desired, counts.replicas, counts.ready, counts.updated) == (4, 4, 1, 0)
    assert not counts.rolled_out
    assert deployment_counts(None).desired == 0


def test_the_chart_carries_the_same_crd_as_crds() -> None:
    crd = REPOSITORY / "crds" / "websocketpools.realtime.acc.io.yaml"
    chart_copy = REPOSITORY / "charts" / "websocket-pool" / "crds" / crd.name

    assert yaml.safe_load(chart_copy.read_text()) == yaml.safe_load(crd.read_text())
