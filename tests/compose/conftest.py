"""Fixtures of the compose tier: compose.yaml brought up from the checkout, as a user would.

The project runs the image built from the Dockerfile and a Redis image made the same way (the
session's ``built_images``, shared with the e2e tier: nothing is pulled), or, when
``WSPOOL_COMPOSE_IMAGE`` names an image the engine has (CI builds it with docker),
that image and ``WSPOOL_COMPOSE_REDIS_IMAGE`` (default redis:7-alpine). Its secrets come from an
env file of the test's own, its gateways get free ports on 127.0.0.1, and ``down -v`` removes it
at the end whatever happened.

Under ``make test`` (``WSPOOL_REQUIRE_CONTAINERS=1``) an engine that cannot run the file is a
failure; elsewhere the tier is skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster_host import remove_unused_cni_chains
from tests.support.compose import ComposeProject, container_engine, missing
from tests.support.images import TestImages
from tests.support.processes import http_get
from tests.support.waiting import poll_until

SERVERS = ("server-1", "server-2", "server-3")
GATEWAYS = ("gateway-1", "gateway-2")
SERVICES = ("redis", *SERVERS, *GATEWAYS)

COMPOSE_TIMEOUT = 1200
"""Seconds for one test of this tier: the first also waits for the images to be built (minutes
when podman's cache is cold) and for the pool to come up."""


@dataclass(frozen=True)
class Pool:
    """The running project: how to reach its gateways, and the secrets it was given."""

    project: ComposeProject
    gateway_ports: tuple[int, int]
    jwt_secret: str
    admin_token: str

    def gateway_url(self, index: int = 0) -> str:
        return f"ws://127.0.0.1:{self.gateway_ports[index]}/ws"

    def health(self, index: int = 0) -> dict[str, object]:
        """A gateway's ``/health``, through its published port."""
        status, body = http_get(f"http://127.0.0.1:{self.gateway_ports[index]}/health")
        return body if status == 200 else {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _images(request: pytest.FixtureRequest) -> tuple[str, str]:
    given = os.environ.get("WSPOOL_COMPOSE_IMAGE")
    if given:
        return given, os.environ.get("WSPOOL_COMPOSE_REDIS_IMAGE", "redis:7-alpine")
    built: TestImages = request.getfixturevalue("built_images")
    return built.app, built.redis


@pytest.fixture(scope="module")
def compose_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    """compose.yaml up, every service healthy and both gateways seeing all three nodes."""
    engine = container_engine()
    reason = missing(engine)
    if reason is not None:
        if os.environ.get("WSPOOL_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"compose.yaml cannot run here: {reason}", pytrace=False)
        pytest.skip(f"compose.yaml cannot run here: {reason}")
    app, redis = _images(request)
    ports = (_free_port(), _free_port())
    secrets_ = {
        "WSPOOL_TICKET_SECRET": secrets.token_urlsafe(32),
        "WSPOOL_JWT_SECRET": secrets.token_urlsafe(32),
        "WSPOOL_ADMIN_TOKEN": secrets.token_urlsafe(16),
    }
    values = {
        **secrets_,
        "WSPOOL_IMAGE": app,
        "WSPOOL_REDIS_IMAGE": redis,
        "GATEWAY_1_PORT": str(ports[0]),
        "GATEWAY_2_PORT": str(ports[1]),
    }
    env_file = Path(tmp_path_factory.mktemp("compose")) / "env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    env_file.chmod(0o600)
    project = ComposeProject(engine, f"wspool-test-{uuid.uuid4().hex[:8]}", env_file)
    pool = Pool(project, ports, secrets_["WSPOOL_JWT_SECRET"], secrets_["WSPOOL_ADMIN_TOKEN"])
    try:
        project.up()
        try:
            _wait_until_serving(pool)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{project.logs()}") from None
        yield pool
    finally:
        project.down()
        remove_unused_cni_chains()


def _wait_until_serving(pool: Pool) -> None:
    project = pool.project
    poll_until(
        lambda: all(project.healthy(service) for service in SERVICES),
        within=60,
        interval=1,
        message="every service healthy",
    )
    for index, gateway in enumerate(GATEWAYS):
        poll_until(
            lambda index=index: pool.health(index).get("servers") == len(SERVERS),  # type: ignore[misc]
            within=30,
            interval=0.5,
            message=f"{gateway} routing to every node",
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test of the tier gets the tier's timeout."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(COMPOSE_TIMEOUT))
