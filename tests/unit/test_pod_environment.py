"""The variables a pool's pods get are exactly the variables of the options they set.

Each pod's environment is resolved as the kubelet would (the ConfigMap, then the container's
values, field references and Secret keys) and read back with the command's own settings
loader, so what a test asserts is what the processes in the pods run with.
"""

from __future__ import annotations

from typing import Any

from wspool.core.config import GATEWAY_OPTIONS, SERVER_OPTIONS, GatewaySettings, ServerSettings
from wspool.core.options import Option, Secret, load_settings, variable
from wspool.operator.model.manifests import PoolRef, render_pool
from wspool.operator.model.podenv import LIVE_KEYS, POD_IP
from wspool.operator.model.poolspec import parse_pool_spec

REF = PoolRef("chat", "prod", "uid-1", default_image="acc/websocket-pool:1.0")
SECRETS = {
    ("redis-conn", "url"): "redis://redis.data:6379/2",
    ("pool-keys", "jwtSecret"): "j" * 40,
    ("pool-keys", "adminToken"): "admin-token",
    ("pool-keys", "ticketSecret"): "t" * 40,
}
FULL: dict[str, Any] = {
    "redis": {"secretRef": {"name": "redis-conn"}, "keyPrefix": "chat:"},
    "auth": {"secretRef": {"name": "pool-keys"}},
    "strategy": "weighted",
    "maxConnections": 5000,
    "drainWindow": 30,
    "publishDelay": 0.002,
    "limits": {
        "connectionsPerAddress": 5,
        "connectionAttemptsPerAddress": 6,
        "messagesPerSecond": 7.5,
        "messageBurst": 8,
        "channelsPerConnection": 9,
    },
    "gateway": {"trustedProxies": ["203.0.113.0/24"]},
}
OPEN: dict[str, Any] = {"redis": {"url": "redis://redis:6379"}, "auth": {"insecure": True}}


def _objects(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = render_pool(parse_pool_spec(spec), REF, 3)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def _container_env(objects: dict[str, dict[str, Any]], component: str) -> list[dict[str, Any]]:
    deployment = objects[f"Deployment/chat-{component}"]
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def _resolve(entry: dict[str, Any], pod: str) -> str:
    if "value" in entry:
        return str(entry["value"]).replace(f"$({POD_IP})", "10.1.2.3")
    source = entry["valueFrom"]
    if "fieldRef" in source:
        return {"metadata.name": pod, "status.podIP": "10.1.2.3"}[source["fieldRef"]["fieldPath"]]
    ref = source["secretKeyRef"]
    return SECRETS[(ref["name"], ref["key"])]


def _environment(objects: dict[str, dict[str, Any]], component: str) -> dict[str, str]:
    """What the process sees: the ConfigMap, then the container's own variables (which win)."""
    env = {k: v for k, v in objects["ConfigMap/chat-config"]["data"].items() if k.isupper()}
    pod = f"chat-{component}-7d4f9-x2x9q"
    for entry in _container_env(objects, component):
        env[entry["name"]] = _resolve(entry, pod)
    return env


def _variables(options: tuple[Option, ...], *fields: str) -> set[str]:
    return {variable(options, field) for field in fields}


SHARED = ("key_prefix", "log_format", "redis_url")
SERVER_FIELDS = _variables(
    SERVER_OPTIONS,
    *SHARED,
    "drain_window",
    "publish_delay",
    "id",
    "port",
    "advertise_url",
    "security.trusted_proxies",
    "security.max_connections_per_ip",
    "security.connection_attempts_per_ip",
    "security.messages_per_second",
    "security.message_burst",
    "security.max_channels_per_connection",
    "security.jwt_secret",
    "ticket_secret",
)
GATEWAY_FIELDS = _variables(
    GATEWAY_OPTIONS,
    *SHARED,
    "strategy",
    "max_connections",
    "id",
    "port",
    "security.trusted_proxies",
    "security.jwt_secret",
    "security.admin_token",
    "ticket_secret",
)


def test_the_variables_of_each_pod_are_exactly_those_of_the_options_the_operator_sets() -> None:
    objects = _objects(FULL)
    server, gateway = _environment(objects, "server"), _environment(objects, "gateway")
    shared = {k for k in objects["ConfigMap/chat-config"]["data"] if k.isupper()}
    server_read = {option.env for option in SERVER_OPTIONS}
    gateway_read = {option.env for option in GATEWAY_OPTIONS}

    # The ConfigMap feeds both Deployments: each of its variables is read by one command at
    # least, and a pod ignores those only the other command reads.
    assert shared <= server_read | gateway_read
    assert set(server) - {POD_IP} - (shared - server_read) == SERVER_FIELDS
    assert set(gateway) - (shared - gateway_read) == GATEWAY_FIELDS


def test_an_open_pool_sets_insecure_by_its_variable_and_no_secret() -> None:
    objects = _objects(OPEN)
    insecure = variable(SERVER_OPTIONS, "security.insecure")
    assert insecure == variable(GATEWAY_OPTIONS, "security.insecure")
    secrets = _variables(SERVER_OPTIONS, "security.jwt_secret", "ticket_secret") | _variables(
        GATEWAY_OPTIONS, "security.admin_token"
    )

    for component in ("server", "gateway"):
        env = _environment(objects, component)
        assert env[insecure] == "true"
        assert not secrets & set(env)


def test_the_pods_run_with_what_the_spec_declares() -> None:
    objects = _objects(FULL)

    node = load_settings(ServerSettings, SERVER_OPTIONS, {}, _environment(objects, "server"))
    gateway = load_settings(GatewaySettings, GATEWAY_OPTIONS, {}, _environment(objects, "gateway"))

    for settings in (node, gateway):
        assert settings.redis_url == "redis://redis.data:6379/2"
        assert settings.key_prefix == "chat:"
        assert settings.log_format == "json"
        assert settings.ticket_secret == "t" * 40
        assert settings.security.jwt_secret == Secret("j" * 40)
        assert not settings.security.insecure
    assert (node.id, node.port) == ("chat-server-7d4f9-x2x9q", 8081)
    assert node.advertise_url == "ws://10.1.2.3:8081/ws"
    assert node.drain_window == 30.0
    assert node.publish_delay == 0.002
    assert node.security.trusted_proxies[-1] == "203.0.113.0/24"
    assert (gateway.id, gateway.port) == ("chat-gateway-7d4f9-x2x9q", 8080)
    assert (gateway.strategy, gateway.max_connections) == ("weighted", 5000)
    assert gateway.security.admin_token == Secret("admin-token")
    assert gateway.security.trusted_proxies == ("203.0.113.0/24",)


def test_what_the_gateways_follow_live_is_named_by_their_options() -> None:
    assert {"poolConfig.json"} | _variables(
        GATEWAY_OPTIONS, "strategy", "max_connections"
    ) == LIVE_KEYS
