"""PV and PVC bodies: pre-bound to each other, labelled, and free of credentials."""

from __future__ import annotations

from openfiles_operator.binding import (
    DRIVER,
    LABEL_UID,
    belongs_to,
    pv_body,
    pvc_body,
    volume_attributes,
)
from openfiles_operator.volume import parse_volume

UID = "6c1e0d2e-0b55-4f3a-a1f1-5e4b7f0d7b11"
SPEC = {
    "bucket": {"url": "s3://data/p", "endpoint": "http://minio:9000",
               "credentialsSecretRef": {"name": "creds"}},
    "cache": {"size": "1Gi", "ttl": "1h", "metadataTTL": "5s"},
    "export": {"delay": "30s"},
    "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
    "capacity": "5Gi",
    "mountOptions": {"uid": 7, "gid": 8, "fileMode": "0600", "dirMode": "0700"},
}
VOLUME = parse_volume(SPEC, "team", "vol", UID)  # type: ignore[arg-type]


def test_attributes_follow_contracts_section_3() -> None:
    assert volume_attributes(VOLUME) == {
        "url": "s3://data/p", "endpoint": "http://minio:9000", "cacheSize": "1Gi",
        "cacheTTL": "1h", "metadataTTL": "5s", "exportDelay": "30s", "uid": "7", "gid": "8",
        "fileMode": "0600", "dirMode": "0700",
    }  # no region: it was not given, and empty values are left out


def test_pv_is_prebound_and_names_the_secret() -> None:
    pv = pv_body(VOLUME)
    assert pv["metadata"]["name"] == VOLUME.handle
    spec = pv["spec"]
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "team", "name": "vol"}
    assert spec["storageClassName"] == ""
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["capacity"] == {"storage": "5Gi"}
    assert spec["accessModes"] == ["ReadWriteMany", "ReadOnlyMany"]
    assert spec["csi"]["driver"] == DRIVER == "csi.openfiles.io"
    assert spec["csi"]["volumeHandle"] == VOLUME.handle
    assert spec["csi"]["nodeStageSecretRef"] == {"name": "creds", "namespace": "team"}
    assert belongs_to(pv["metadata"]["labels"], UID)


def test_pvc_is_bound_to_the_pv_and_owned_by_the_volume() -> None:
    pvc = pvc_body(VOLUME)
    assert (pvc["metadata"]["name"], pvc["metadata"]["namespace"]) == ("vol", "team")
    assert pvc["spec"]["volumeName"] == VOLUME.handle
    assert pvc["spec"]["storageClassName"] == ""
    assert pvc["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    (owner,) = pvc["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "openfiles.io/v1alpha1", "kind": "OpenFilesVolume",
                     "name": "vol", "uid": UID, "controller": True}
    assert pvc["metadata"]["labels"][LABEL_UID] == UID


def test_belongs_to_needs_the_same_uid() -> None:
    assert not belongs_to(None, UID)
    assert not belongs_to({LABEL_UID: "other"}, UID)


def test_long_names_give_valid_label_values() -> None:
    long_volume = parse_volume(SPEC, "team", "v." + "x" * 200, UID)  # type: ignore[arg-type]
    value = pv_body(long_volume)["metadata"]["labels"]["openfiles.io/volume-name"]
    assert len(value) <= 63 and value[-1].isalnum()
