"""The chart release and the pools of the end-to-end tier, made the way a user makes them.

``helm install`` of the chart from the checkout (the operator, its service account and RBAC,
the CRD, a bundled Redis), then ``kubectl apply`` of ``WebSocketPool`` resources. Clients reach a
pool through its gateway Service as a NodePort on the node's address, which the machine that
runs the tests can reach both on the tests' own cluster and on kind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.e2e_traffic import history_numbers
from tests.support.kubectl import CommandError, Kubectl
from tests.support.waiting import poll_until

__all__ = [
    "Pool",
    "Release",
    "applied_pool",
    "condition",
    "default_spec",
    "gateway_url",
    "install_release",
    "pool_manifest",
    "published_numbers",
    "redis_cli",
    "redis_keys",
    "uninstall_release",
    "wait_until_ready",
]

CHART = Path(__file__).resolve().parents[2] / "charts" / "websocket-pool"
RELEASE = "websocket-pool"
RELEASE_NAMESPACE = "wspool-system"
GROUP = "realtime.acc.io"


@dataclass
class Release:
    name: str
    namespace: str
    image: str
    installed: bool = True

    @property
    def redis_url(self) -> str:
        return f"redis://{self.name}-redis.{self.namespace}.svc.cluster.local:6379"

    @property
    def operator_selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"


def _split_image(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


def install_release(kubectl: Kubectl, image: str, redis_image: str, **values: str) -> Release:
    """``helm install`` the chart from the checkout and wait until the operator runs."""
    repository, tag = _split_image(image)
    settings = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "IfNotPresent",
        "redis.enabled": "true",
        "redis.image": redis_image,
        "operator.syncInterval": "2",
        **values,
    }
    arguments = [f"{key}={value}" for key, value in settings.items()]
    kubectl.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        *(part for argument in arguments for part in ("--set", argument)),
        "--wait",
        "--timeout",
        "4m",
    )
    return Release(RELEASE, RELEASE_NAMESPACE, image)


def uninstall_release(kubectl: Kubectl, release: Release) -> None:
    kubectl.helm("uninstall", release.name, "--namespace", release.namespace, "--wait")
    release.installed = False


@dataclass
class Pool:
    """A pool applied by a test, in a namespace of its own."""

    name: str
    namespace: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def key_prefix(self) -> str:
        return f"{self.namespace}.{self.name}:"

    def servers_selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=server"

    def gateways_selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=gateway"


def pool_manifest(pool: Pool) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "WebSocketPool",
        "metadata": {"name": pool.name, "namespace": pool.namespace},
        "spec": pool.spec,
    }


def default_spec(release: Release, **overrides: Any) -> dict[str, Any]:
    """A small pool that starts fast on two cores: insecure auth, quick health checks."""
    spec: dict[str, Any] = {
        "image": release.image,
        "strategy": "least-connections",
        "replicas": 2,
        "minReplicas": 2,
        "maxReplicas": 4,
        "healthCheck": {"interval": 1, "timeout": 1},
        "drainWindow": 2,
        "redis": {"url": release.redis_url},
        "auth": {"insecure": True},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        "autoscaling": {"targetConnectionsPerNode": 1000, "scaleDownStabilizationSeconds": 0},
        "gateway": {"replicas": 2, "serviceType": "NodePort"},
    }
    spec.update(overrides)
    return spec


def condition(kubectl: Kubectl, pool: Pool, kind: str = "Ready") -> dict[str, Any]:
    """The pool's condition ``kind`` as the operator wrote it ({} while there is none)."""
    body = kubectl.get("websocketpool", pool.name, pool.namespace)
    for entry in (body.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def wait_until_ready(kubectl: Kubectl, pool: Pool, within: float = 240) -> float:
    """Seconds until the pool's ``Ready`` condition is True (it says clients can be served)."""
    started = time.monotonic()
    poll_until(
        lambda: condition(kubectl, pool).get("status") == "True",
        within=within,
        interval=0.5,
        message=f"pool {pool.namespace}/{pool.name} Ready",
    )
    return time.monotonic() - started


def gateway_url(kubectl: Kubectl, pool: Pool) -> str:
    """``ws://NODE:NODEPORT/ws`` of the pool's gateway Service."""
    service = kubectl.get("service", f"{pool.name}-gateway", pool.namespace)
    port = service["spec"]["ports"][0]["nodePort"]
    nodes = kubectl.get("nodes")["items"]
    addresses = nodes[0]["status"]["addresses"]
    address = next(a["address"] for a in addresses if a["type"] == "InternalIP")
    return f"ws://{address}:{port}/ws"


def redis_cli(kubectl: Kubectl, release: Release, *args: str) -> str:
    """``redis-cli ARGS`` in the release's Redis pod, as an operator would run it."""
    try:
        return kubectl(
            "exec",
            "-n",
            release.namespace,
            f"deploy/{release.name}-redis",
            "--",
            "redis-cli",
            *args,
        )
    except CommandError as error:
        raise AssertionError(f"cannot read the release's Redis: {error}") from error


def published_numbers(kubectl: Kubectl, release: Release, pool: Pool, channel: str) -> list[int]:
    """The ``n`` of each message in the channel's history, in order: what the pool accepted."""
    output = redis_cli(kubectl, release, "XRANGE", f"{pool.key_prefix}hist:{{{channel}}}", "-", "+")
    return history_numbers(output)


def redis_keys(kubectl: Kubectl, release: Release, pattern: str) -> list[str]:
    """Keys of the release's Redis that match ``pattern``."""
    output = redis_cli(kubectl, release, "--scan", "--pattern", pattern)
    return [line for line in output.splitlines() if line]


@contextlib.contextmanager
def applied_pool(kubectl: Kubectl, pool: Pool, *, ready: bool = True) -> Iterator[Pool]:
    """``pool`` applied in a namespace of its own (Ready first, unless told not to wait), and
    the namespace deleted afterwards."""
    kubectl("create", "namespace", pool.namespace)
    try:
        kubectl.apply(pool_manifest(pool))
        if ready:
            seconds = wait_until_ready(kubectl, pool)
            print(f"\n[e2e] {pool.name}: kubectl apply -> Ready: {seconds:.1f} s")
        yield pool
    finally:
        kubectl("delete", "namespace", pool.namespace, "--wait=false")
