"""The Kubernetes API, as the operator uses it; the only module that calls it.

Every call goes through ``_call``: one REST request on the ``kubernetes``
client's connection pool, run in a worker thread so the event loop never
blocks. Bodies are plain dicts (see body.py for the typed views). A 409 becomes
ConflictError; any other API error propagates as ``ApiException`` and kopf
retries the handler with backoff.

Events go through kopf's poster (``kopf.event``), which batches and never fails
a handler.

The ``kubernetes`` client logs every response body at DEBUG, and a Secret's body
holds the bucket credentials (base64 is not a disguise). Its REST logger is held
at INFO whatever the root level, so ``openfiles operator --verbose`` never logs
them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from openfiles_contracts.store import StoreSpecError
from openfiles_operator.binding import belongs_to
from openfiles_operator.body import (
    GROUP,
    POLICY_PLURAL,
    REPORT_PLURAL,
    VERSION,
    VOLUME_PLURAL,
    NodeReportBody,
    PolicyBody,
    VolumeBody,
)
from openfiles_operator.credentials import Credentials, credentials_from_data
from openfiles_operator.errors import ClaimTakenError, ConflictError, CredentialsError
from openfiles_operator.volume import Location

# See the module docstring: the client's DEBUG lines carry response bodies, Secrets included.
logging.getLogger("kubernetes.client.rest").setLevel(logging.INFO)

MERGE = "application/merge-patch+json"
#: Label of a node report: sha256(volume handle)[:16] (csi/openfiles_csi/plugin/report.py).
REPORT_HANDLE_LABEL = f"{GROUP}/volume-handle-hash"
_CRD = f"/apis/{GROUP}/{VERSION}"
#: Pod phases in which a pod no longer holds its volumes.
_FINISHED = {"Succeeded", "Failed"}

Obj = dict[str, Any]


def api_configuration(kubeconfig: str | None) -> Configuration:
    """Where the API server is and how to authenticate: a kubeconfig, else the pod's account."""
    configuration = Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return configuration


def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """The same credentials as ``configuration``, for kopf's own API client."""
    auth = (configuration.api_key or {}).get("authorization", "")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=auth.removeprefix("Bearer ") or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class Kube:
    """Typed operations on the API server. Safe to share between handlers."""

    @classmethod
    def connect(cls, configuration: Configuration) -> Kube:
        return cls(ApiClient(configuration))

    def close(self) -> None:
        """Close the connection pool. The object is unusable afterwards."""
        self._client.close()
        self._client.rest_client.pool_manager.clear()

    def __init__(self, client: ApiClient, request_timeout: float = 30.0) -> None:
        self._client = client
        self._timeout = request_timeout

    async def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Obj:
        def call() -> Obj:
            return cast(
                Obj,
                self._client.call_api(
                    path,
                    method,
                    query_params=query or [],
                    body=body,
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    response_type="object",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=self._timeout,
                ),
            )

        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"{method} {path}: conflict ({exc.reason})") from exc
            raise

    async def _get_or_none(self, path: str) -> Obj | None:
        try:
            return await self._call("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _delete_if_present(self, path: str, uid: str | None = None) -> bool:
        """DELETE ``path``; False when already gone. ``uid`` guards against a recreated object."""
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await self._call("DELETE", path, body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- Secrets -------------------------------------------------------------------------

    async def read_credentials(self, namespace: str, name: str, location: Location) -> Credentials:
        """Decode the bucket credentials from Secret ``namespace/name`` and check them for
        ``location``'s store. Raises CredentialsError naming the Secret and the key."""
        secret = await self._get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            raise CredentialsError(f"Secret {namespace}/{name} not found")
        data = {
            key: base64.b64decode(value).decode("utf-8", "replace")
            for key, value in (secret.get("data") or {}).items()
        }
        data.update(secret.get("stringData") or {})
        try:
            return credentials_from_data(
                data, location.scheme, endpoint=location.endpoint, account=location.account
            )
        except StoreSpecError as exc:
            raise CredentialsError(f"Secret {namespace}/{name}: {exc}") from None

    # --- PV and PVC ----------------------------------------------------------------------

    async def ensure(self, body: Obj, volume_uid: str) -> tuple[Obj, bool]:
        """Create the PV or PVC ``body`` unless it exists; return (object, created).

        Idempotent: an existing object made for the same volume (by label) is returned as
        is, so a restart mid-reconcile never duplicates. One that belongs to something
        else raises ClaimTakenError.
        """
        meta = body["metadata"]
        if body["kind"] == "PersistentVolume":
            collection, what = "/api/v1/persistentvolumes", "PersistentVolume"
        else:
            collection = f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims"
            what = "PersistentVolumeClaim"
        try:
            return await self._call("POST", collection, body=body), True
        except ConflictError:
            existing = await self._get_or_none(f"{collection}/{meta['name']}")
            if existing is None:
                raise  # deleted in between: retry
        if not belongs_to(existing["metadata"].get("labels"), volume_uid):
            raise ClaimTakenError(
                f"{what} {meta['name']} already exists and was not made for this volume"
            )
        return existing, False

    async def delete_claim(self, namespace: str, name: str, volume_uid: str) -> bool:
        """Delete the PVC if it was made for this volume. Returns whether a delete was sent."""
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
        return await self._delete_owned(path, volume_uid)

    async def delete_pv(self, name: str, volume_uid: str) -> bool:
        """Delete the PV if it was made for this volume. Returns whether a delete was sent."""
        return await self._delete_owned(f"/api/v1/persistentvolumes/{name}", volume_uid)

    async def _delete_owned(self, path: str, volume_uid: str) -> bool:
        obj = await self._get_or_none(path)
        if obj is None or not belongs_to(obj["metadata"].get("labels"), volume_uid):
            return False
        if obj["metadata"].get("deletionTimestamp"):
            return False  # deleted by an earlier call: nothing sent now
        return await self._delete_if_present(path, obj["metadata"]["uid"])

    async def pair_exists(self, namespace: str, claim: str, pv: str, volume_uid: str) -> bool:
        """True when both the PV and the claim made for the volume exist and are not deleting."""
        for path in (
            f"/api/v1/persistentvolumes/{pv}",
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}",
        ):
            obj = await self._get_or_none(path)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return False
            if not belongs_to(obj["metadata"].get("labels"), volume_uid):
                return False
        return True

    async def read_claim(self, namespace: str, name: str) -> Obj | None:
        return await self._get_or_none(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
        )

    async def pods_using_claim(self, namespace: str, claim: str) -> list[str]:
        """Names of pods in ``namespace`` that mount ``claim`` and have not finished."""
        pods = await self._call("GET", f"/api/v1/namespaces/{namespace}/pods")
        users = []
        for pod in pods.get("items", []):
            if (pod.get("status") or {}).get("phase") in _FINISHED:
                continue
            for vol in (pod.get("spec") or {}).get("volumes") or []:
                if (vol.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                    users.append(pod["metadata"]["name"])
                    break
        return sorted(users)

    # --- Custom objects and namespaces ---------------------------------------------------

    async def list_volumes(self) -> list[VolumeBody]:
        result = await self._call("GET", f"{_CRD}/{VOLUME_PLURAL}")
        return cast(list[VolumeBody], result.get("items", []))

    async def list_policies(self) -> list[PolicyBody]:
        result = await self._call("GET", f"{_CRD}/{POLICY_PLURAL}")
        return cast(list[PolicyBody], result.get("items", []))

    async def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Labels of every namespace, by name."""
        result = await self._call("GET", "/api/v1/namespaces")
        return {
            ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
            for ns in result.get("items", [])
        }

    async def namespace_terminating(self, namespace: str) -> bool:
        """True when ``namespace`` is being deleted (or already gone). A list by name, not a
        get: the operator's role may list namespaces but not get them."""
        result = await self._call(
            "GET", "/api/v1/namespaces", query=[("fieldSelector", f"metadata.name={namespace}")]
        )
        items = result.get("items", [])
        return not items or bool(items[0]["metadata"].get("deletionTimestamp"))

    async def read_volume(self, namespace: str, name: str) -> VolumeBody | None:
        path = f"{_CRD}/namespaces/{namespace}/{VOLUME_PLURAL}/{name}"
        return cast(VolumeBody | None, await self._get_or_none(path))

    # --- Node reports (written by the CSI node plugins) ----------------------------------

    async def list_reports(self, namespace: str, volume_handle: str) -> list[NodeReportBody]:
        """The OpenFilesNodeReports of ``volume_handle`` (label: a hash of the handle)."""
        digest = hashlib.sha256(volume_handle.encode()).hexdigest()[:16]
        result = await self._call(
            "GET", f"{_CRD}/namespaces/{namespace}/{REPORT_PLURAL}",
            query=[("labelSelector", f"{REPORT_HANDLE_LABEL}={digest}")])
        items = cast(list[NodeReportBody], result.get("items", []))
        return [r for r in items if r["spec"]["volumeHandle"] == volume_handle]

    async def delete_report(self, namespace: str, name: str, uid: str) -> bool:
        path = f"{_CRD}/namespaces/{namespace}/{REPORT_PLURAL}/{name}"
        return await self._delete_if_present(path, uid)

    async def node_exists(self, name: str) -> bool:
        return await self._get_or_none(f"/api/v1/nodes/{name}") is not None

    async def patch_volume_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        path = f"{_CRD}/namespaces/{namespace}/{VOLUME_PLURAL}/{name}/status"
        await self._call("PATCH", path, body={"status": dict(status)}, content_type=MERGE)

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        path = f"{_CRD}/{POLICY_PLURAL}/{name}/status"
        await self._call("PATCH", path, body={"status": dict(status)}, content_type=MERGE)

    # --- The policy ConfigMap (docs/CONTRACTS.md section 4) ------------------------------

    async def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = await self._get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        return None if cm is None else dict(cm.get("data") or {})

    async def patch_config_map(
        self,
        namespace: str,
        name: str,
        entries: Mapping[str, str | None],
        labels: Mapping[str, str],
    ) -> None:
        """Set (str) or remove (None) keys of ConfigMap ``namespace/name``; create it if absent.

        A JSON merge patch touches only the named keys, so concurrent writers of different
        volumes never overwrite each other.
        """
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        try:
            await self._call("PATCH", path, body={"data": dict(entries)}, content_type=MERGE)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        data = {key: value for key, value in entries.items() if value is not None}
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "data": data,
        }
        await self._call("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)

    # --- Leases (leader election) --------------------------------------------------------

    async def read_lease(self, namespace: str, name: str) -> Obj | None:
        return await self._get_or_none(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        )

    async def create_lease(self, namespace: str, body: Obj) -> Obj:
        return await self._call(
            "POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body=body
        )

    async def replace_lease(self, namespace: str, name: str, body: Obj) -> Obj:
        """PUT carrying the body's resourceVersion: ConflictError when someone else wrote first."""
        return await self._call(
            "PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", body=body
        )


def event(body: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> None:
    """Post an Event about ``body`` (never blocks; kopf posts it in the background)."""
    kopf.event(
        cast(Any, dict(body)),
        type="Warning" if warning else "Normal",
        reason=reason,
        message=message,
    )
