"""The Helm chart: it lints, renders to what the API server accepts, and its RBAC is enough
for the operator to run a pool with the chart's own service account, and no more."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from tests.support.kubernetes_testenv import find_binary
from tests.support.operator import running_operator
from tests.support.pools import create_pool, gone, kubectl, pool_manifest, read_pool, run_tool
from tests.support.waiting import poll_until

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("websocketpool_crd"),
]

CHART = Path(__file__).resolve().parents[2] / "charts" / "websocket-pool"


def _helm(*args: str) -> str:
    return run_tool("helm", *args)


def _kubectl_input(text: str, *args: str) -> str:
    return run_tool("kubectl", *args, stdin=text)


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("--set", "redis.enabled=true", "--set", "examplePool.enabled=true"),
        ("--set", "operator.watchNamespaces={team-a,team-b}"),
        ("--set", "operator.replicas=2", "--set", "operator.metrics.enabled=false"),
    ],
)
def test_helm_lint_passes(values: tuple[str, ...]) -> None:
    output = _helm("lint", str(CHART), "--strict", *values)

    assert "1 chart(s) linted, 0 chart(s) failed" in output


def test_the_rendered_chart_passes_the_api_servers_admission(namespace: str) -> None:
    rendered = _helm(
        "template",
        "demo",
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "--set",
        "redis.enabled=true",
        "--set",
        "examplePool.enabled=true",
    )
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)

    applied = _kubectl_input(
        rendered, "apply", "--server-side", "--dry-run=server", "--namespace", namespace, "-f", "-"
    )

    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Deployment",
        "Service",
        "Service",
        "ServiceAccount",
        "WebSocketPool",
    ]
    assert applied.count("(server dry run)") == len(kinds)


def test_two_operator_replicas_elect_a_leader_through_a_lease_of_their_own(
    namespace: str,
) -> None:
    rendered = _helm(
        "template", "demo", str(CHART), "--namespace", namespace, "--set", "operator.replicas=2"
    )
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}

    applied = _kubectl_input(
        rendered, "apply", "--server-side", "--dry-run=server", "--namespace", namespace, "-f", "-"
    )

    deployment = by_kind[("Deployment", "demo-websocket-pool-operator")]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WSPOOL_LEADER_ELECTION"]["value"] == "true"
    assert env["WSPOOL_LEASE_NAME"]["value"] == "demo-websocket-pool-operator"
    lease_namespace = env["WSPOOL_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert lease_namespace == "metadata.namespace"
    budget = by_kind[("PodDisruptionBudget", "demo-websocket-pool-operator")]
    assert budget["spec"]["minAvailable"] == 1
    assert ("Service", "demo-websocket-pool-operator-metrics") in by_kind
    assert applied.count("(server dry run)") == len(documents)


@pytest.fixture
def installed_chart(namespace: str) -> Iterator[str]:
    """The chart's objects applied for real, scoped to ``namespace``; the release name."""
    release = f"r{uuid.uuid4().hex[:6]}"
    rendered = _helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"operator.watchNamespaces={{{namespace}}}",
        "--set",
        "operator.replicas=2",
    )
    _kubectl_input(rendered, "apply", "--namespace", namespace, "-f", "-")
    try:
        yield release
    finally:
        _kubectl_input(rendered, "delete", "--ignore-not-found", "--wait=false", "-f", "-")


def _service_account_kubeconfig(
    api: client.ApiClient, namespace: str, account: str, folder: Path
) -> Path:
    """A kubeconfig that authenticates as the service account, with a fresh bound token."""
    request = client.AuthenticationV1TokenRequest.model_validate(
        {"spec": {"audiences": [], "expirationSeconds": 3600}}
    )
    issued = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, request
    )
    assert issued.status is not None
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": issued.status.token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }
    path = folder / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _can(account: str, namespace: str, *request: str) -> bool:
    answer = subprocess.run(
        [
            str(find_binary("kubectl")),
            "auth",
            "can-i",
            *request,
            "--namespace",
            namespace,
            "--as",
            account,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=os.environ.copy(),
    )
    return answer.stdout.strip() == "yes"


def test_the_chart_grants_the_operator_its_pools_namespace_and_nothing_more(
    namespace: str, installed_chart: str
) -> None:
    account = f"system:serviceaccount:{namespace}:{installed_chart}-websocket-pool"

    allowed = {
        request: _can(account, namespace, *request.split())
        for request in (
            "patch deployments.apps",
            "create services",
            "patch websocketpools.realtime.acc.io",
            "patch websocketpools.realtime.acc.io/status",
            "get secrets",
            "list secrets",
            "delete deployments.apps",
            "create pods",
            "create poddisruptionbudgets.policy",
            "create events",
            f"update leases.coordination.k8s.io/{installed_chart}-websocket-pool-operator",
            "update leases.coordination.k8s.io/another-lease",
            "delete leases.coordination.k8s.io",
        )
    }

    assert allowed == {
        "patch deployments.apps": True,
        "create services": True,
        "patch websocketpools.realtime.acc.io": True,
        "patch websocketpools.realtime.acc.io/status": True,
        "get secrets": True,
        "list secrets": False,
        "delete deployments.apps": False,
        "create pods": False,
        "create poddisruptionbudgets.policy": True,
        "create events": True,
        f"update leases.coordination.k8s.io/{installed_chart}-websocket-pool-operator": True,
        "update leases.coordination.k8s.io/another-lease": False,
        "delete leases.coordination.k8s.io": False,
    }
    assert not _can(account, "default", "patch", "deployments.apps")


@pytest.mark.redis
def test_the_operator_runs_a_pool_with_nothing_but_the_charts_service_account(
    kube_api: client.ApiClient,
    namespace: str,
    installed_chart: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    account = f"{installed_chart}-websocket-pool"
    kubeconfig = _service_account_kubeconfig(kube_api, namespace, account, tmp_path)
    previous = os.environ["KUBECONFIG"]
    os.environ["KUBECONFIG"] = str(kubeconfig)  # the operator process inherits it
    try:
        # As the chart runs two replicas: elected through the chart's Lease.
        election = (
            "--leader-election",
            "--lease-namespace",
            namespace,
            "--lease-name",
            f"{installed_chart}-websocket-pool-operator",
        )
        with running_operator(namespace, *election) as operator:
            os.environ["KUBECONFIG"] = previous
            create_pool(kube_api, namespace, pool_manifest("chat", redis_url))
            reconciled = poll_until(
                lambda: (
                    "observedGeneration"
                    in (read_pool(kube_api, namespace, "chat").get("status") or {})
                ),
                within=30,
                message="pool reconciled by the chart's service account",
            )
            deployments = client.AppsV1Api(kube_api).list_namespaced_deployment(namespace).items
            kubectl("delete", "websocketpool", "chat", "--namespace", namespace, "--wait=false")
            poll_until(lambda: gone(lambda: read_pool(kube_api, namespace, "chat")), within=30)
            log = operator.log()
    finally:
        os.environ["KUBECONFIG"] = previous

    names = {cast(Any, d.metadata).name for d in deployments}
    assert reconciled
    assert {"chat-server", "chat-gateway"} <= names
    assert "took lease" in log
    assert "Forbidden" not in log, log
