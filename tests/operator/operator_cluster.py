"""Helpers of the operator's cluster tests: typed shortcuts for one namespace on the real
API server, and the operator running in-process.

The operator runs in a thread with its own event loop through ``cli.operate`` (the
function ``openfiles operator`` runs once it leads), against the real API server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fixtures.kube import KubeCluster
from fixtures.minio import Bucket

POLICY_NAMESPACE = "openfiles-system"
GROUP, VERSION = "openfiles.io", "v1alpha1"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a 404 while an object is being created, say
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


class Cluster:
    """Typed shortcuts for one test's namespace on the real API server."""

    def __init__(self, kube: KubeCluster, namespace: str) -> None:
        from kubernetes import client

        self.kube = kube
        self.namespace = namespace
        self.api = kube.api_client()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create_volume(self, name: str, spec: dict[str, Any],
                      labels: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OpenFilesVolume",
                "metadata": {"name": name, "labels": labels or {}}, "spec": spec}
        return dict(self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "openfilesvolumes", body))

    def volume(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "openfilesvolumes", name))

    def patch_volume(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "openfilesvolumes", name, patch))

    def delete_volume(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "openfilesvolumes", name)

    def volume_gone(self, name: str) -> bool:
        from kubernetes.client import ApiException

        try:
            self.volume(name)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    def condition(self, name: str, type_: str,
                  body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Condition ``type_`` of the volume (of ``body`` when given, else read now)."""
        body = self.volume(name) if body is None else body
        conditions = (body.get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == type_), None)

    def ready(self, name: str) -> dict[str, Any] | None:
        # One read: a body and a condition from two reads can disagree.
        body = self.volume(name)
        cond = self.condition(name, "Ready", body)
        return body if cond and cond["status"] == "True" else None

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}").items
        return [(e.reason, e.message) for e in items]

    def policy_entries(self) -> dict[str, str]:
        from kubernetes.client import ApiException

        try:
            cm = self.core.read_namespaced_config_map("openfiles-policies", POLICY_NAMESPACE)
        except ApiException:
            return {}
        return dict(cm.data or {})

    def create_pod(self, name: str, claim: str) -> None:
        """A Pod object that uses ``claim``; nothing runs it (there is no kubelet)."""
        self.core.create_namespaced_pod(self.namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "volumes": [{"name": "data",
                                  "persistentVolumeClaim": {"claimName": claim}}]}})

    def delete_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)


def strip_finalizers(env: Cluster) -> None:
    """Leave nothing that a later test's operator would pick up."""
    items = env.custom.list_namespaced_custom_object(
        GROUP, VERSION, env.namespace, "openfilesvolumes")["items"]
    for item in items:
        name = item["metadata"]["name"]
        env.patch_volume(name, {"metadata": {"finalizers": None}})
        if not env.volume_gone(name):
            env.delete_volume(name)


class OperatorThread:
    """``cli.operate`` in a thread with its own event loop; ``stop`` waits for it to end."""

    def __init__(self, kube: KubeCluster, kubeconfig: Path | None = None,
                 **settings: Any) -> None:
        """Runs as the admin unless ``kubeconfig`` names another identity."""
        from openfiles_operator.kube import api_configuration
        from openfiles_operator.settings import Settings

        options = {"bucket_timeout": 3.0, "retry_delay": 1.0, "conflict_delay": 0.5,
                   "pod_wait_delay": 1.0, "resync_interval": 2.0, **settings}
        self.settings = Settings(policy_namespace=POLICY_NAMESPACE, **options)
        self.configuration = api_configuration(str(kubeconfig or kube.kubeconfig))
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        from openfiles_operator.cli import operate

        try:
            asyncio.run(operate(self.configuration, self.settings,
                                self.stop_flag, self.ready_flag))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> OperatorThread:
        self.thread.start()
        assert self.ready_flag.wait(30), "the operator did not become ready"
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the operator did not stop"
        assert self.error is None, f"the operator failed: {self.error!r}"


def volume_spec(bucket: Bucket, prefix: str = "", **extra: Any) -> dict[str, Any]:
    url = f"{bucket.url}/{prefix}" if prefix else bucket.url
    return {"bucket": {"url": url, "endpoint": bucket.endpoint, "region": "us-east-1",
                       "credentialsSecretRef": {"name": "creds"}}, **extra}
