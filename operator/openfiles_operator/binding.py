"""The PersistentVolume and the pre-bound PersistentVolumeClaim made for a volume.

Binding is done by the bodies themselves: the PV's ``claimRef`` names the
claim and the claim's ``volumeName`` names the PV, both with the empty storage
class, so no provisioner is involved and the pair is unambiguous even before
(or without) the PV controller marking them Bound.

The PV is cluster-scoped and cannot carry an owner reference to a namespaced
object; it carries labels naming its volume instead. The claim carries both.
The operator deletes both itself; it never relies on garbage collection.
"""

from __future__ import annotations

from typing import Any

from openfiles_operator.body import GROUP, VERSION
from openfiles_operator.volume import Volume

DRIVER = "csi.openfiles.io"
LABEL_NAME = f"{GROUP}/volume-name"
LABEL_NAMESPACE = f"{GROUP}/volume-namespace"
LABEL_UID = f"{GROUP}/volume-uid"
MANAGED_BY = {"app.kubernetes.io/managed-by": "openfiles-operator"}


def labels(volume: Volume) -> dict[str, str]:
    """Labels on every object made for ``volume``; ``kubectl get pv -l`` finds them."""
    return {
        **MANAGED_BY,
        LABEL_NAME: volume.name[:63].rstrip("-."),
        LABEL_NAMESPACE: volume.namespace,
        LABEL_UID: volume.uid,
    }


def volume_attributes(volume: Volume) -> dict[str, str]:
    """The CSI volume context of docs/CONTRACTS.md section 3. Never holds a credential.

    Cache values are the volume's own; the effective policy reaches the node through the
    policy ConfigMap and overrides them live.
    """
    size, ttl, metadata_ttl, export_delay = volume.cache_text
    attrs = {
        "url": volume.location.url,
        "endpoint": volume.location.endpoint,
        "region": volume.location.region,
        "account": volume.location.account,
        "cacheSize": size,
        "cacheTTL": ttl,
        "metadataTTL": metadata_ttl,
        "exportDelay": export_delay,
        "uid": str(volume.uid_owner),
        "gid": str(volume.gid_owner),
        "fileMode": volume.file_mode,
        "dirMode": volume.dir_mode,
        "eventsURL": volume.events_url,
    }
    return {key: value for key, value in attrs.items() if value}


def pv_body(volume: Volume) -> dict[str, Any]:
    """The PersistentVolume, named after the volume handle, pre-bound to the claim.

    Its reclaim policy is Retain: the operator, not the PV controller, decides what
    happens to the data (OpenFilesVolume.spec.reclaimPolicy).
    """
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume.handle,
            "labels": labels(volume),
            "annotations": {f"{GROUP}/volume": f"{volume.namespace}/{volume.name}"},
        },
        "spec": {
            "capacity": {"storage": volume.capacity},
            "accessModes": list(volume.access_modes),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": volume.namespace,
                "name": volume.name,
            },
            "csi": {
                "driver": DRIVER,
                "volumeHandle": volume.handle,
                "volumeAttributes": volume_attributes(volume),
                "nodeStageSecretRef": {"name": volume.secret_name, "namespace": volume.namespace},
            },
        },
    }


def pvc_body(volume: Volume) -> dict[str, Any]:
    """The claim pods use: same name and namespace as the volume, owned by it, bound to the PV."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": volume.name,
            "namespace": volume.namespace,
            "labels": labels(volume),
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "OpenFilesVolume",
                    "name": volume.name,
                    "uid": volume.uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "accessModes": list(volume.access_modes),
            "resources": {"requests": {"storage": volume.capacity}},
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "volumeName": volume.handle,
        },
    }


def belongs_to(obj_labels: dict[str, str] | None, volume_uid: str) -> bool:
    """True when an existing PV or PVC was made for the volume with this uid."""
    return (obj_labels or {}).get(LABEL_UID) == volume_uid
