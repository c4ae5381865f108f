"""What the scenarios apply: Secrets, volumes, StorageClasses and pods, as users write them.

Pods run the OpenFiles image itself with a shell command (it has bash,
coreutils and Python, and it is on the node already: no registry is needed).
Each manifest is a plain dict, applied with ``Kubectl.apply``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from e2e.kubectl import Kubectl, wait_for
from e2e.release import SYSTEM_NS, ObjectStore, chart_app_version
from fixtures.minio import REGION
from fixtures.server import ServerBucket

DRIVER = "csi.openfiles.io"


def image() -> str:
    return f"localhost/openfiles:{chart_app_version()}"


def secret(name: str, namespace: str, bucket: ServerBucket, **override: str) -> dict[str, Any]:
    """The bucket's credentials under the keys the operator and the CSI plugin read."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {**bucket.secret, **override},
    }


def volume(
    name: str,
    namespace: str,
    store: ObjectStore,
    bucket_url: str,
    secret_name: str,
    *,
    export_delay: str = "1s",
    reclaim: str = "Retain",
    labels: dict[str, str] | None = None,
    endpoint: str | None = None,
    location: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An OpenFilesVolume on ``bucket_url`` (``s3://bucket/prefix``); ``location``, when
    given, replaces the endpoint and region of MinIO (``az://``: endpoint and account)."""
    where = location or {"endpoint": endpoint or store.cluster_endpoint, "region": REGION}
    return {
        "apiVersion": "openfiles.io/v1alpha1",
        "kind": "OpenFilesVolume",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "bucket": {
                "url": bucket_url,
                **where,
                "credentialsSecretRef": {"name": secret_name},
            },
            "cache": {"size": "2Gi", "ttl": "1h", "metadataTTL": "2s"},
            "export": {"delay": export_delay},
            "accessModes": ["ReadWriteMany"],
            "reclaimPolicy": reclaim,
        },
    }


def pod(
    name: str, namespace: str, claim: str, script: str, *, restart: str = "Never"
) -> dict[str, Any]:
    """A pod that runs ``script`` (bash, ``set -euo pipefail``) with the claim at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": image(),
                    "imagePullPolicy": "Never",
                    "command": ["/bin/bash", "-c", "set -euo pipefail\n" + script],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind``, or None."""
    for cond in (obj or {}).get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def wait_volume_ready(
    kube: Kubectl, name: str, namespace: str, timeout: float = 120
) -> dict[str, Any]:
    """Wait until the OpenFilesVolume is Ready and its claim is Bound; return the volume."""

    def probe() -> dict[str, Any] | None:
        ofv = kube.get("openfilesvolume", name, namespace)
        ready = condition(ofv, "Ready")
        if ofv is None or ready is None or ready.get("status") != "True":
            return None
        pvc = kube.get("pvc", name, namespace)
        return ofv if pvc and pvc.get("status", {}).get("phase") == "Bound" else None

    return wait_for(f"OpenFilesVolume {namespace}/{name} Ready and its PVC Bound", probe, timeout)


def run_pod(kube: Kubectl, manifest: dict[str, Any], timeout: float = 300) -> str:
    """Apply a run-once pod, wait until it Succeeded, return its log (the pod is kept)."""
    kube.apply(manifest)
    meta = manifest["metadata"]
    kube.wait_pod(meta["name"], meta["namespace"], ["Succeeded"], timeout)
    return kube.logs(meta["name"], meta["namespace"])


def wait_keys(
    bucket: ServerBucket, expected: set[str], prefix: str = "", timeout: float = 120
) -> list[str]:
    """Wait until every key of ``expected`` is in the bucket; return all keys under ``prefix``."""
    return wait_for(
        f"keys {sorted(expected)[:5]}... in {bucket.name}",
        lambda: keys if expected <= set(keys := bucket.keys(prefix)) else None,
        timeout,
        every=1.0,
    )


def engine_status(kube: Kubectl, state_dir: str, source_prefix: str) -> dict[str, Any]:
    """``openfiles status --json`` of the engine whose source starts with ``source_prefix``,
    asked in the mounter pod on the node (the single node here), through its control socket."""
    mounters = kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=mounter")
    assert mounters, "no mounter pod"
    program = (
        "import glob, json, subprocess\n"
        "out = {}\n"
        f"for s in glob.glob({state_dir + '/sockets/*.sock'!r}):\n"
        "    p = subprocess.run(['openfiles', 'status', '--json', '--control-socket', s, '/'],"
        " capture_output=True, text=True)\n"
        "    if p.returncode == 0:\n"
        "        out[s] = json.loads(p.stdout)\n"
        "print(json.dumps(out))\n"
    )
    text = kube.exec(
        mounters[0]["metadata"]["name"], SYSTEM_NS, "python3", "-c", program, container="mounter"
    )
    found = [
        st
        for st in json.loads(text).values()
        if str(st.get("source", "")).startswith(source_prefix)
    ]
    assert len(found) == 1, f"want one engine on {source_prefix}, found {len(found)}: {text[:2000]}"
    return dict(found[0])


def pause(seconds: float) -> None:
    """Let time pass on purpose (a TTL or a delay is part of what is tested)."""
    time.sleep(seconds)
