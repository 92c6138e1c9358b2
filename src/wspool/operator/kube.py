"""The operator's Kubernetes I/O: a few generic calls over the asyncio client, on plain dicts.

Objects come from :mod:`wspool.operator.model.manifests` as dicts and go out with server-side apply
(``application/apply-patch+yaml`` under the field manager ``wspool-operator``, forcing
ownership of the fields it renders), so applying the same pool twice changes nothing and
fields that other actors own (the Deployment controller's, an admin's annotation) stay. The
typed per-kind API classes would turn every object into a model and back; the operator only
needs the path of a kind, which :data:`PLURALS` gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

__all__ = ["PLURALS", "ApiException", "Kube", "connect"]

PLURALS = {
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "Lease": "leases",
    "Pod": "pods",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Secret": "secrets",
    "Service": "services",
    "WebSocketPool": "websocketpools",
}

FIELD_MANAGER = "wspool-operator"
REQUEST_TIMEOUT = 30.0

_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"


def _path(api_version: str, kind: str, namespace: str, name: str = "", sub: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}"
    if name:
        path = f"{path}/{name}"
    return f"{path}/{sub}" if sub else path


async def connect() -> Kube:
    """Credentials as kubectl finds them: the pod's service account, else the kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except config.ConfigException:
        await config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return Kube(client.ApiClient(configuration))


class Kube:
    """JSON in, JSON out; errors are the client's ``ApiException`` (``.status`` 404, 409, …)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    async def close(self) -> None:
        await self._api.close()  # type: ignore[no-untyped-call]

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        serialized = await self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = await self._api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
        await response.read()  # type: ignore[no-untyped-call]
        result = self._api.response_deserialize(response, {"200": "object", "201": "object"})
        return cast(dict[str, Any], result.data)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of a whole object (created when missing)."""
        metadata = manifest["metadata"]
        path = _path(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )
        return await self._call(
            "PATCH",
            path,
            body=dict(manifest),
            content_type=_APPLY,
            query=(("fieldManager", FIELD_MANAGER), ("force", "true")),
        )

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; 409 (``ApiException``) when one of that name exists."""
        metadata = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], metadata["namespace"])
        return await self._call("POST", path, body=dict(manifest))

    async def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Replace an object whole; 409 when its ``resourceVersion`` is no longer the latest,
        which is what makes a compare-and-swap (the lease of leader election) safe."""
        metadata = manifest["metadata"]
        path = _path(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )
        return await self._call("PUT", path, body=dict(manifest))

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            return await self._call("GET", _path(api_version, kind, namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        found = await self._call(
            "GET", _path(api_version, kind, namespace), query=(("labelSelector", selector),)
        )
        return cast(list[dict[str, Any]], found.get("items") or [])

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386), e.g. of the pool's ``status`` subresource."""
        return await self._call(
            "PATCH",
            _path(api_version, kind, namespace, name, subresource),
            body=dict(patch),
            content_type=_MERGE,
            query=(("fieldManager", FIELD_MANAGER),),
        )
