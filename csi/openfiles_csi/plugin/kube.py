"""The Kubernetes API, as the node plugin uses it; the plugin's only module that calls it.

The node plugin writes its own ``OpenFilesNodeReport`` objects (server-side apply,
field manager ``openfiles-node``), reads PersistentVolumes to find the claim and the
OpenFilesVolume behind a volume handle, and posts Events. Nothing else: its RBAC in
the chart (``csi-node-rbac.yaml``) allows exactly these calls, and an admission
policy there lets a node write only reports naming itself.

Every call is one REST request on the ``kubernetes`` client's connection pool, run
in a worker thread (``asyncio.to_thread``), so the grpc.aio event loop that serves
kubelet never waits on the API server. Errors propagate as ``ApiException`` (404s
where said otherwise); the caller (report.py) logs them and tries again later.

The client logs response bodies at DEBUG; its REST logger is held at INFO whatever
the plugin's level.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

logging.getLogger("kubernetes.client.rest").setLevel(logging.INFO)

GROUP, VERSION = "openfiles.io", "v1alpha1"
REPORT_KIND, REPORT_PLURAL = "OpenFilesNodeReport", "openfilesnodereports"
FIELD_MANAGER = "openfiles-node"
APPLY = "application/apply-patch+yaml"

Obj = dict[str, Any]


def api_configuration(kubeconfig: str) -> Configuration:
    """A kubeconfig file, or the pod's service account when ``kubeconfig`` is empty.

    In the pod, the token is the kubelet's projected, pod-bound one: it carries the
    node's name, which the admission policy compares with each report's ``nodeName``.
    """
    configuration = Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return configuration


class KubeClient:
    """Typed calls of the node plugin. Safe to share between tasks."""

    def __init__(self, configuration: Configuration, request_timeout: float = 10.0) -> None:
        self._client = ApiClient(configuration)
        self._timeout = request_timeout

    def close(self) -> None:
        self._client.close()
        self._client.rest_client.pool_manager.clear()

    async def _call(self, method: str, path: str, body: object = None,
                    content_type: str = "application/json",
                    query: list[tuple[str, str]] | None = None) -> Obj:
        def call() -> Obj:
            return cast(Obj, self._client.call_api(
                path, method, query_params=query or [], body=body,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                response_type="object", auth_settings=["BearerToken"],
                _return_http_data_only=True, _request_timeout=self._timeout))

        return await asyncio.to_thread(call)

    @staticmethod
    def _report_path(namespace: str, name: str = "") -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{REPORT_PLURAL}"
        return f"{path}/{name}" if name else path

    async def apply_report(self, namespace: str, name: str, labels: dict[str, str],
                           spec: Obj) -> None:
        """Create or replace report ``namespace/name`` by server-side apply."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": REPORT_KIND,
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": spec}
        await self._call("PATCH", self._report_path(namespace, name), body=body,
                         content_type=APPLY,
                         query=[("fieldManager", FIELD_MANAGER), ("force", "true")])

    async def read_report(self, namespace: str, name: str) -> Obj | None:
        """The report, or None when there is none."""
        try:
            return await self._call("GET", self._report_path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_report(self, namespace: str, name: str) -> bool:
        """Delete the report; False when it was already gone."""
        try:
            await self._call("DELETE", self._report_path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def find_pv(self, volume_handle: str) -> Obj | None:
        """The PersistentVolume of ``volume_handle`` (driver csi.openfiles.io), or None.

        An OpenFilesVolume's PV is named after its handle: one GET. A dynamically
        provisioned PV (``pvc-<uid>``) is found by listing.
        """
        try:
            pv = await self._call("GET", f"/api/v1/persistentvolumes/{volume_handle}")
        except ApiException as exc:
            if exc.status != 404:
                raise
        else:
            if _handle(pv) == volume_handle:
                return pv
        listed = await self._call("GET", "/api/v1/persistentvolumes")
        return next((pv for pv in listed.get("items", []) if _handle(pv) == volume_handle),
                    None)

    async def post_event(self, namespace: str, event: Obj) -> None:
        """Create a core/v1 Event in ``namespace`` (its involved object's namespace)."""
        await self._call("POST", f"/api/v1/namespaces/{namespace}/events", body=event)


def _handle(pv: Obj) -> str | None:
    csi = (pv.get("spec") or {}).get("csi") or {}
    return csi.get("volumeHandle") if csi.get("driver") == "csi.openfiles.io" else None
