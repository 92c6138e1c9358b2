"""The tests' Kubernetes control plane is real: it stores, validates, authorizes and collects.

These prove the fixture before any operator test relies on it; they hold on any conformant
cluster too (``WSPOOL_TEST_KUBECONFIG``), so they also check a kind cluster that a developer
points the suite at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.pools import gone, kubectl
from tests.support.waiting import poll_until

# The first test also pays for starting the control plane (up to 90 s on a busy 2-core machine).
pytestmark = [pytest.mark.kubernetes, pytest.mark.timeout(150)]


def _meta(resource: Any) -> client.V1ObjectMeta:
    metadata: client.V1ObjectMeta | None = resource.metadata
    assert metadata is not None, resource
    return metadata


def test_api_server_reports_the_release_its_binary_was_stamped_with(
    kube_api: client.ApiClient,
) -> None:
    version = client.VersionApi(kube_api).get_code()

    assert re.fullmatch(r"v1\.\d+\.\d+\S*", version.git_version), version.git_version
    assert version.major == "1"
    assert version.git_version.startswith(f"v1.{version.minor.rstrip('+')}.")


def test_rbac_forbids_a_user_that_no_role_is_bound_to(kube_api: client.ApiClient) -> None:
    # The admin (system:masters) may impersonate anyone; a stranger has no bindings at all.
    kube_api.default_headers["Impersonate-User"] = f"stranger-{uuid.uuid4().hex[:8]}"

    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(kube_api).list_namespace()

    assert raised.value.status == 403


def test_a_namespace_and_a_configmap_round_trip_through_the_api(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    greeting = client.V1ConfigMap.model_validate(
        {"metadata": {"name": "greeting"}, "data": {"hello": "world"}}
    )

    created = core.create_namespaced_config_map(namespace, greeting)
    read = core.read_namespaced_config_map("greeting", namespace)
    patched = core.patch_namespaced_config_map("greeting", namespace, {"data": {"hello": "again"}})

    status = core.read_namespace(namespace).status
    assert status is not None
    assert status.phase == "Active"
    assert read.data == {"hello": "world"}
    assert _meta(read).uid == _meta(created).uid
    assert _meta(patched).resource_version != _meta(created).resource_version
    assert core.read_namespaced_config_map("greeting", namespace).data == {"hello": "again"}


def test_kubectl_finds_the_cluster_through_the_exported_kubeconfig(namespace: str) -> None:
    assert kubectl("get", "namespace", namespace, "--output=name").strip() == (
        f"namespace/{namespace}"
    )


GADGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
        }
    },
}


@pytest.fixture
def gadget_group(kube_api: client.ApiClient) -> Iterator[str]:
    """The API group of a namespaced ``Gadget`` CRD of its own, whose ``spec.size`` is 1..10."""
    group = f"t{uuid.uuid4().hex[:8]}.testenv.wspool.dev"
    extensions = client.ApiextensionsV1Api(kube_api)
    crd = client.V1CustomResourceDefinition.model_validate(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"gadgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": GADGET_SCHEMA},
                    }
                ],
            },
        }
    )
    extensions.create_custom_resource_definition(crd)
    try:
        yield group
    finally:
        extensions.delete_custom_resource_definition(f"gadgets.{group}")


def test_a_custom_resource_definition_becomes_established_and_validates_its_objects(
    kube_api: client.ApiClient, namespace: str, gadget_group: str
) -> None:
    extensions = client.ApiextensionsV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)

    def established() -> bool:
        status = extensions.read_custom_resource_definition(f"gadgets.{gadget_group}").status
        conditions = status.conditions if status is not None else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    def gadget(name: str, size: int) -> dict[str, Any]:
        return {
            "apiVersion": f"{gadget_group}/v1",
            "kind": "Gadget",
            "metadata": {"name": name},
            "spec": {"size": size},
        }

    poll_until(established, within=30, message="CRD Established")
    created = custom.create_namespaced_custom_object(
        gadget_group, "v1", namespace, "gadgets", gadget("small", 3)
    )
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            gadget_group, "v1", namespace, "gadgets", gadget("huge", 11)
        )
    read = custom.get_namespaced_custom_object(gadget_group, "v1", namespace, "gadgets", "small")

    assert cast(dict[str, Any], read)["spec"] == {"size": 3}
    assert _meta_uid(read) == _meta_uid(created)
    assert rejected.value.status == 422
    assert "spec.size" in str(rejected.value.body)


def _meta_uid(custom_object: object) -> str:
    return str(cast(dict[str, Any], custom_object)["metadata"]["uid"])


@pytest.mark.usefixtures("controller_manager")
def test_deleting_an_owner_garbage_collects_its_dependent(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap.model_validate({"metadata": {"name": "owner"}})
    )
    owned_by = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": _meta(owner).uid}
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap.model_validate(
            {"metadata": {"name": "dependent", "ownerReferences": [owned_by]}}
        ),
    )

    core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )

    poll_until(
        lambda: gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
        within=60,
        message="dependent ConfigMap garbage-collected",
    )
