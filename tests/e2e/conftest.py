"""Fixtures of the end-to-end tier: the product as users meet it, on a real cluster.

The session brings up a real single-node cluster on this machine
(:class:`tests.support.real_cluster.RealCluster`), builds the image from the Dockerfile and
imports it, and ``helm install``s the chart from the checkout; the operator then runs in the
cluster on the chart's service account. Or, when ``WSPOOL_TEST_KUBECONFIG`` names a cluster
(kind in the users' CI), that cluster is used as it is, with the image ``WSPOOL_E2E_IMAGE``
already loaded into it and ``WSPOOL_E2E_REDIS_IMAGE`` for the chart's bundled Redis.

Under ``make test`` (``WSPOOL_REQUIRE_KUBERNETES=1``) a cluster that cannot run is a failure;
elsewhere the tier is skipped with the reason. When a test fails, what the cluster's components
logged during it is shown, with the pods' state.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.cluster_logs import register_cluster, unregister_cluster
from tests.support.e2e_pools import (
    Pool,
    Release,
    applied_pool,
    default_spec,
    install_release,
    uninstall_release,
)
from tests.support.images import TestImages
from tests.support.kubectl import Kubectl
from tests.support.kubernetes_testenv import (
    Cluster,
    ExistingCluster,
    MissingBinaryError,
    find_binary,
)
from tests.support.real_cluster import RealCluster, cluster_prerequisites

HERE = Path(__file__).parent


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("WSPOOL_REQUIRE_KUBERNETES") == "1":
        pytest.fail(f"no cluster for the end-to-end tier: {reason}", pytrace=False)
    pytest.skip(f"no cluster for the end-to-end tier: {reason}")


@dataclass(frozen=True)
class Images:
    app: str
    redis: str


@pytest.fixture(scope="session")
def e2e_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    given = os.environ.get("WSPOOL_TEST_KUBECONFIG")
    if given:
        cluster: Cluster = ExistingCluster(Path(given).expanduser())
        register_cluster(request.config, HERE, cluster)
        yield cluster
        return
    reason = cluster_prerequisites()
    if reason is not None:
        _unavailable(reason)
    real = RealCluster()
    real.start()
    register_cluster(request.config, HERE, real)
    try:
        yield real
    finally:
        unregister_cluster(request.config, HERE)
        real.stop()


def _tool(name: str) -> Path:
    try:
        return find_binary(name)
    except MissingBinaryError:
        found = shutil.which(name)
        if found is None:
            raise
        return Path(found)


@pytest.fixture(scope="session")
def kubectl(e2e_cluster: Cluster) -> Kubectl:
    return Kubectl(_tool("kubectl"), _tool("helm"), e2e_cluster.kubeconfig)


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest, e2e_cluster: Cluster) -> Images:
    """The project's image (and a Redis image) as the cluster knows them."""
    given = os.environ.get("WSPOOL_E2E_IMAGE")
    if given:
        return Images(given, os.environ.get("WSPOOL_E2E_REDIS_IMAGE", "redis:7-alpine"))
    if not isinstance(e2e_cluster, RealCluster):
        pytest.fail("WSPOOL_E2E_IMAGE must name the image loaded into that cluster", False)
    from tests.support.images import load_into_containerd

    built: TestImages = request.getfixturevalue("built_images")
    load_into_containerd(built, e2e_cluster.containerd_address)
    return Images(built.app, built.redis)


@pytest.fixture(scope="session")
def release(kubectl: Kubectl, images: Images) -> Iterator[Release]:
    """The chart installed from the checkout, its operator running, with a bundled Redis."""
    installed = install_release(kubectl, images.app, images.redis)
    try:
        yield installed
    finally:
        if installed.installed:
            uninstall_release(kubectl, installed)


@pytest.fixture(scope="session")
def chat(kubectl: Kubectl, release: Release) -> Iterator[Pool]:
    """A pool of two server nodes and two gateways, shared by the tests that only use it (or
    hurt it and wait for it to heal). Its clients see the reconnects (``seamless`` off):
    the tests that kill its pods check the clients' own failover; test_seamless.py has the
    gateways move clients instead."""
    pool = Pool("chat", "e2e-chat", default_spec(release, seamless=False))
    with applied_pool(kubectl, pool):
        yield pool


E2E_TIMEOUT = 1800
"""Seconds for one test of this tier, its share of the session's setup included: the first
test also waits for the cluster to come up and the image to be built (minutes when cold)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This tier runs after the others (its cluster then costs them nothing, and cheaper tiers
    fail first), the tests that uninstall the release last of all; each test of the tier gets
    the tier's timeout."""
    here = Path(__file__).parent

    def order(item: pytest.Item) -> tuple[bool, bool]:
        ours = here in item.path.parents
        return ours, ours and item.get_closest_marker("uninstalls") is not None

    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))
    items.sort(key=order)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "uninstalls: removes the session's release (runs last)")
