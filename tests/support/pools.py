"""WebSocketPool resources in the tests' cluster: install the CRD, create and read pools."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kubernetes_testenv import MissingBinaryError, find_binary
from tests.support.waiting import poll_until

__all__ = [
    "CRD_NAME",
    "CRD_PATH",
    "GROUP",
    "PLURAL",
    "VERSION",
    "condition",
    "create_pool",
    "gone",
    "install_crd",
    "kubectl",
    "kubectl_refused",
    "pool_events",
    "pool_manifest",
    "read_pool",
    "run_tool",
    "tool_refused",
]

REPOSITORY = Path(__file__).resolve().parents[2]
CRD_PATH = REPOSITORY / "crds" / "websocketpools.realtime.acc.io.yaml"
CRD_NAME = "websocketpools.realtime.acc.io"
GROUP = "realtime.acc.io"
VERSION = "v1alpha1"
PLURAL = "websocketpools"


def _run(name: str, args: tuple[str, ...], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        binary = str(find_binary(name))
    except MissingBinaryError:
        binary = shutil.which(name) or name
    return subprocess.run(
        [binary, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ.copy(),
    )


def run_tool(name: str, *args: str, stdin: str | None = None) -> str:
    """Run a control plane tool (from the testenv folder, else PATH) against the session's
    cluster; its stdout, or a failed assertion with its stderr."""
    result = _run(name, args, stdin)
    assert result.returncode == 0, f"{name} {' '.join(args)}: {result.stderr}"
    return result.stdout


def kubectl(*args: str) -> str:
    return run_tool("kubectl", *args)


def tool_refused(name: str, *args: str) -> str:
    """A control plane tool's command that must fail; all it printed (helm reports on both)."""
    result = _run(name, args, None)
    assert result.returncode != 0, f"{name} {' '.join(args)} succeeded: {result.stdout}"
    return result.stdout + result.stderr


def kubectl_refused(*args: str, stdin: str | None = None) -> str:
    """A kubectl command that must fail; what it printed on stderr."""
    result = _run("kubectl", args, stdin)
    assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr


def load_crd() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(CRD_PATH.read_text(encoding="utf-8")))


def install_crd(api: client.ApiClient) -> None:
    """``kubectl apply -f crds/``, as a user installs it, then wait until it is Established."""
    kubectl("apply", "-f", str(CRD_PATH.parent))
    extensions = client.ApiextensionsV1Api(api)

    def established() -> bool:
        status = extensions.read_custom_resource_definition(CRD_NAME).status
        conditions = (status.conditions if status is not None else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    poll_until(established, within=30, message="WebSocketPool CRD Established")


def pool_manifest(name: str, redis_url: str = "redis://redis:6379", **spec: Any) -> dict[str, Any]:
    """A valid pool; keyword arguments replace or add top-level spec fields."""
    body: dict[str, Any] = {
        "image": "acc/websocket-pool:test",
        "redis": {"url": redis_url},
        "auth": {"insecure": True},
    }
    body.update(copy.deepcopy(spec))
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WebSocketPool",
        "metadata": {"name": name},
        "spec": body,
    }


def create_pool(api: client.ApiClient, namespace: str, manifest: Mapping[str, Any]) -> Any:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, dict(manifest)
    )


def read_pool(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        ),
    )


def condition(pool: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in (pool.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return cast(dict[str, Any], entry)
    return None


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def pool_events(api: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """The Events about a pool, oldest first, as ``(type, reason, message)``."""
    listed = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=WebSocketPool,involvedObject.name={name}"
    )
    found = [
        (str(e.event_time or e.metadata.creation_timestamp), e.type, e.reason, e.message)
        for e in listed.items
    ]
    return [(str(kind), str(reason), str(message)) for _, kind, reason, message in sorted(found)]
