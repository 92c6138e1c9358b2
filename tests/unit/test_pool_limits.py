"""A pool's per-address limits, trusted proxies and disruption budgets, as rendered for its pods.

The environment a Deployment renders is read back with the node's and the gateway's own
settings loaders, so what a test asserts is what the processes in the pods would run with.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from wspool.core.config import GATEWAY_OPTIONS, SERVER_OPTIONS, GatewaySettings, ServerSettings
from wspool.core.options import load_settings
from wspool.operator.model.manifests import PoolRef, render_pool
from wspool.operator.model.poolspec import PoolSpecError, parse_pool_spec

MINIMAL: dict[str, Any] = {"redis": {"url": "redis://redis:6379"}, "auth": {"insecure": True}}
REF = PoolRef("chat", "prod", "uid-1", default_image="acc/websocket-pool:1.0")
POD_FIELDS = {"POD_IP"}  # read by the pod spec itself ($(POD_IP)), not by wspool


def _render(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = render_pool(parse_pool_spec(spec), REF, 3)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def _objects(**fields: Any) -> dict[str, dict[str, Any]]:
    return _render({**MINIMAL, **fields})


def _container(objects: dict[str, dict[str, Any]], component: str) -> dict[str, Any]:
    deployment = objects[f"Deployment/chat-{component}"]
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def _plain_env(objects: dict[str, dict[str, Any]], component: str) -> dict[str, str]:
    """What the process sees: the ConfigMap, then the container's own values (which win)."""
    env = {k: v for k, v in objects["ConfigMap/chat-config"]["data"].items() if k.isupper()}
    for entry in _container(objects, component)["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"].replace("$(POD_IP)", "10.1.2.3")
    return env


def _node_settings(objects: dict[str, dict[str, Any]]) -> ServerSettings:
    return load_settings(ServerSettings, SERVER_OPTIONS, {}, _plain_env(objects, "server"))


def test_a_pool_without_limits_leaves_the_nodes_defaults() -> None:
    security = _node_settings(_objects()).security
    defaults = ServerSettings().security

    assert security.max_connections_per_ip == defaults.max_connections_per_ip == 100
    assert security.connection_attempts_per_ip == defaults.connection_attempts_per_ip
    assert security.messages_per_second == defaults.messages_per_second
    assert security.message_burst == defaults.message_burst
    assert security.max_channels_per_connection == defaults.max_channels_per_connection


def test_the_nodes_run_with_the_limits_the_pool_declares() -> None:
    objects = _objects(
        limits={
            "connectionsPerAddress": 1_000_000,
            "connectionAttemptsPerAddress": 0,
            "messagesPerSecond": 2.5,
            "messageBurst": 10,
            "channelsPerConnection": 500,
        }
    )

    security = _node_settings(objects).security
    assert security.max_connections_per_ip == 1_000_000
    assert security.connection_attempts_per_ip == 0  # 0: no limit
    assert security.messages_per_second == 2.5
    assert security.message_burst == 10
    assert security.max_channels_per_connection == 500


def test_proxies_in_front_of_the_gateways_are_trusted_by_gateways_and_nodes() -> None:
    balancer = ["130.211.0.0/22", "35.191.0.0/16"]
    objects = _objects(gateway={"trustedProxies": balancer})

    gateway_env = _plain_env(objects, "gateway")
    gateway = load_settings(GatewaySettings, GATEWAY_OPTIONS, {}, gateway_env)
    node = _node_settings(objects)
    assert gateway.security.trusted_proxies == tuple(balancer)
    # A node reads the whole chain: the gateways first, then what the gateways stand behind.
    assert node.security.trusted_proxies == (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        *balancer,
    )
    assert "WSPOOL_TRUSTED_PROXIES" not in _plain_env(_objects(), "gateway")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limits": {"connectionsPerAddress": -1}}, "spec.limits.connectionsPerAddress"),
        ({"limits": {"connectionsPerAddress": 1_000_001}}, "spec.limits.connectionsPerAddress"),
        ({"limits": {"connectionsPerAddress": 1.5}}, "spec.limits.connectionsPerAddress"),
        ({"limits": {"connectionsPerAddress": True}}, "spec.limits.connectionsPerAddress"),
        ({"limits": {"connectionAttemptsPerAddress": "20"}}, "spec.limits.connectionAttempts"),
        ({"limits": {"messagesPerSecond": math.nan}}, "spec.limits.messagesPerSecond"),
        ({"limits": {"messagesPerSecond": math.inf}}, "spec.limits.messagesPerSecond"),
        ({"limits": {"messagesPerSecond": -0.1}}, "spec.limits.messagesPerSecond"),
        ({"limits": {"messageBurst": 0}}, "spec.limits.messageBurst"),
        ({"healthCheck": {"interval": math.nan}}, "spec.healthCheck.interval"),
        ({"healthCheck": {"timeout": math.nan}}, "spec.healthCheck.timeout"),
        ({"drainWindow": math.nan}, "spec.drainWindow"),
        ({"publishDelay": math.nan}, "spec.publishDelay"),
        ({"limits": {"channelsPerConnection": -5}}, "spec.limits.channelsPerConnection"),
        ({"limits": "high"}, "spec.limits"),
        ({"gateway": {"trustedProxies": ["10.0.0.0/33"]}}, "spec.gateway.trustedProxies"),
        ({"gateway": {"trustedProxies": "10.0.0.0/8"}}, "spec.gateway.trustedProxies"),
    ],
)
def test_a_bad_limit_or_proxy_is_refused_naming_its_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(PoolSpecError) as raised:
        parse_pool_spec({**MINIMAL, **fields})

    assert raised.value.field.startswith(field)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "spec",
    [
        {
            **MINIMAL,
            "limits": {
                "connectionsPerAddress": 5,
                "connectionAttemptsPerAddress": 5,
                "messagesPerSecond": 5,
                "messageBurst": 5,
                "channelsPerConnection": 5,
            },
            "gateway": {"trustedProxies": ["203.0.113.0/24"]},
        },
        {"redis": {"secretRef": {"name": "r"}}, "auth": {"secretRef": {"name": "keys"}}},
    ],
)
def test_every_variable_the_pods_get_is_an_option_of_the_command_they_run(
    spec: dict[str, Any],
) -> None:
    objects = {
        f"{o['kind']}/{o['metadata']['name']}": o
        for o in render_pool(parse_pool_spec(spec), REF, 3)
    }
    server_variables = {option.env for option in SERVER_OPTIONS}
    gateway_variables = {option.env for option in GATEWAY_OPTIONS}
    shared = {k for k in objects["ConfigMap/chat-config"]["data"] if k.isupper()}

    # Both Deployments load the ConfigMap: each variable is read by one of the two commands.
    assert shared <= server_variables | gateway_variables
    for component, variables in (("server", server_variables), ("gateway", gateway_variables)):
        names = {entry["name"] for entry in _container(objects, component)["env"]}
        assert names - POD_FIELDS <= variables, component


def test_the_gateways_have_a_disruption_budget_of_one_like_the_nodes() -> None:
    objects = _objects(gateway={"replicas": 3})
    budget = objects["PodDisruptionBudget/chat-gateway"]
    gateway_pods = objects["Deployment/chat-gateway"]["spec"]["template"]["metadata"]["labels"]
    server_pods = objects["Deployment/chat-server"]["spec"]["template"]["metadata"]["labels"]

    assert budget["spec"]["maxUnavailable"] == 1
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= gateway_pods.items()
    assert not selector.items() <= server_pods.items()
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
