"""compose.yaml as compose reads it, with .env.example for its .env: each node's and gateway's
variables are options of its command, taken by that command's own settings loader; the secrets
it requires are the ones .env.example gives; dependencies, health checks and published ports
are as the README says. (tests/compose runs the file.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from wspool.core.config import GATEWAY_OPTIONS, SERVER_OPTIONS, GatewaySettings, ServerSettings
from wspool.core.options import load_settings

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "compose.yaml").read_text()
EXAMPLE = (REPO / ".env.example").read_text()
REFERENCE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
SERVERS = {"server-1", "server-2", "server-3"}
GATEWAYS = {"gateway-1", "gateway-2"}


def _assignments(text: str, *, commented: bool = False) -> dict[str, str]:
    """``NAME=value`` lines of an env file (or those commented out, with ``commented``)."""
    prefix = "# " if commented else ""
    pattern = rf"^{re.escape(prefix)}([A-Z][A-Z0-9_]*)=(.*)$"
    return dict(re.findall(pattern, text, re.M))


def _interpolate(text: str, env: dict[str, str]) -> str:
    """``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, as compose reads them."""

    def value(match: re.Match[str]) -> str:
        name, operator, operand = match.groups()
        if env.get(name):
            return env[name]
        if operator == "?":
            raise LookupError(f"required variable {name} is missing a value: {operand}")
        return operand or ""

    return REFERENCE.sub(value, text)


def _services(env: dict[str, str]) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(_interpolate(TEXT, env))["services"]
    return services


SERVICES = _services(_assignments(EXAMPLE))


def _environment(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[name]["environment"].items()}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_nodes_variables_are_options_wspool_server_reads_and_takes(name: str) -> None:
    environment = _environment(name)

    settings = load_settings(ServerSettings, SERVER_OPTIONS, {}, environment)

    assert set(environment) <= {option.env for option in SERVER_OPTIONS}
    assert (settings.id, settings.advertise_url) == (name, f"ws://{name}:8081/ws")
    assert settings.redis_url == "redis://redis:6379"
    assert settings.ticket_secret
    assert settings.security.jwt_secret is not None


@pytest.mark.parametrize("name", sorted(GATEWAYS))
def test_each_gateways_variables_are_options_wspool_gateway_reads_and_takes(name: str) -> None:
    environment = _environment(name)

    settings = load_settings(GatewaySettings, GATEWAY_OPTIONS, {}, environment)

    assert set(environment) <= {option.env for option in GATEWAY_OPTIONS}
    assert settings.id == name
    assert settings.redis_url == "redis://redis:6379"
    assert settings.ticket_secret
    assert settings.security.jwt_secret is not None
    assert settings.security.admin_token is not None


def test_the_secrets_it_requires_are_those_env_example_sets() -> None:
    required = {name for name, operator, _ in REFERENCE.findall(TEXT) if operator == "?"}
    optional = {name for name, operator, _ in REFERENCE.findall(TEXT) if operator == "-"}

    assert required == set(_assignments(EXAMPLE))
    assert optional == set(_assignments(EXAMPLE, commented=True))
    # What compose says, with .env missing, when it refuses to start.
    messages = {operand for _, operator, operand in REFERENCE.findall(TEXT) if operator == "?"}
    assert messages == {"set in .env (cp .env.example .env)"}


def test_gateways_start_after_healthy_nodes_and_only_they_are_published() -> None:
    healthy = {"condition": "service_healthy"}
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}

    assert set(SERVICES) == {"redis"} | SERVERS | GATEWAYS
    assert all(SERVICES[name]["command"] == ["server"] for name in SERVERS)
    assert all(SERVICES[name]["command"] == ["gateway"] for name in GATEWAYS)
    assert all("healthcheck" in service for service in SERVICES.values())
    assert all(SERVICES[name]["depends_on"] == {"redis": healthy} for name in SERVERS)
    for name in GATEWAYS:
        assert SERVICES[name]["depends_on"] == dict.fromkeys({"redis"} | SERVERS, healthy)
    assert published == {
        "gateway-1": ["127.0.0.1:8080:8080"],
        "gateway-2": ["127.0.0.1:8081:8080"],
    }
