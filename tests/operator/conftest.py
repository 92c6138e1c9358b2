"""Fixtures of the operator tier: a real Kubernetes API server, started once per session.

The control plane comes from ``tests.support.kubernetes_testenv``: local etcd, kube-apiserver and
kube-controller-manager processes built by ``make testenv``, or the existing cluster whose
kubeconfig ``WSPOOL_TEST_KUBECONFIG`` names. Its kubeconfig is exported as ``KUBECONFIG`` for the
session, so kubectl, helm and the operator started by a test find it. When no control plane can
be had, the tests fail under ``make test`` (``WSPOOL_REQUIRE_KUBERNETES=1``) and are skipped,
with the reason, elsewhere. When a test fails, what each component logged during it is shown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.cluster_logs import register_cluster, unregister_cluster
from tests.support.kubernetes_testenv import (
    Cluster,
    ControlPlane,
    ExistingCluster,
    MissingBinaryError,
)
from tests.support.pools import install_crd

HERE = Path(__file__).parent


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("WSPOOL_REQUIRE_KUBERNETES") == "1":
        pytest.fail(f"no Kubernetes control plane: {reason}", pytrace=False)
    pytest.skip(f"no Kubernetes control plane: {reason}")


@pytest.fixture(scope="session")
def kubernetes_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running cluster for the whole session; ``KUBECONFIG`` points at its admin credentials."""
    given = os.environ.get("WSPOOL_TEST_KUBECONFIG")
    plane: ControlPlane | None = None
    cluster: Cluster
    if given:
        cluster = ExistingCluster(Path(given).expanduser())
    else:
        plane = ControlPlane()
        try:
            plane.start()
        except MissingBinaryError as error:
            _unavailable(str(error))
        cluster = plane
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    register_cluster(request.config, HERE, cluster)
    try:
        yield cluster
    finally:
        unregister_cluster(request.config, HERE)
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        if plane is not None:
            plane.stop()


@pytest.fixture
def controller_manager(kubernetes_cluster: Cluster) -> None:
    """For tests that need controllers (garbage collection, Deployment -> ReplicaSet)."""
    if not kubernetes_cluster.has_controller_manager:
        _unavailable("kube-controller-manager is not running (`make testenv` builds it)")


@pytest.fixture
def kube_api(kubernetes_cluster: Cluster) -> Iterator[client.ApiClient]:
    """An API client with the cluster's admin credentials."""
    # The kubeconfig loader is an untyped corner of the client.
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubernetes_cluster.kubeconfig)
    )
    with api:
        yield api


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace of this test's own, deleted afterwards (without waiting for it)."""
    core = client.CoreV1Api(kube_api)
    name = f"wspool-test-{uuid.uuid4().hex[:8]}"
    labels = {"wspool.test/owner": "pytest"}
    core.create_namespace(
        client.V1Namespace.model_validate({"metadata": {"name": name, "labels": labels}})
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture(scope="session")
def websocketpool_crd(kubernetes_cluster: Cluster) -> None:
    """The WebSocketPool CRD from crds/, installed once per session (it is cluster-wide)."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubernetes_cluster.kubeconfig)
    )
    with api:
        install_crd(api)
