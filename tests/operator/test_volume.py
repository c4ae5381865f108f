"""Spec validation: every field that can be wrong is named in the error."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from openfiles_operator.errors import SpecError
from openfiles_operator.volume import Location, parse_location, parse_volume, volume_handle

UID = "0d3f4a52-8c3b-4b8e-9f0e-2f1c1e7d9a10"


def spec(**changes: Any) -> Any:
    base: dict[str, Any] = {
        "bucket": {"url": "s3://data/team/a", "endpoint": "http://minio:9000",
                   "region": "eu-west-1", "credentialsSecretRef": {"name": "creds"}},
        "cache": {"size": "2Gi", "ttl": "1h", "metadataTTL": "5s"},
        "export": {"delay": "30s"},
        "accessModes": ["ReadWriteMany"], "capacity": "100Gi", "reclaimPolicy": "Retain",
        "mountOptions": {"uid": 1000, "gid": 1000, "fileMode": "644", "dirMode": "0750"},
    }
    for path, value in changes.items():
        node = base
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return base


def test_a_full_spec_parses() -> None:
    volume = parse_volume(spec(), "team", "data", UID)
    assert volume.location == Location("data", "team/a", "http://minio:9000", "eu-west-1")
    assert volume.location.url == "s3://data/team/a"
    assert volume.cache.cache_size == 2 * 2**30
    assert (volume.cache.cache_ttl, volume.cache.metadata_ttl, volume.cache.export_delay) == (
        3600, 5, 30)
    assert volume.cache_text == ("2Gi", "1h", "5s", "30s")
    assert (volume.uid_owner, volume.gid_owner) == (1000, 1000)
    assert (volume.file_mode, volume.dir_mode) == ("0644", "0750")
    assert volume.secret_name == "creds"


def test_defaults_apply_when_the_schema_did_not() -> None:
    minimal = {"bucket": {"url": "s3://data", "credentialsSecretRef": {"name": "c"}}}
    volume = parse_volume(minimal, "ns", "v", UID)  # type: ignore[arg-type]
    assert volume.location.prefix == ""
    assert volume.access_modes == ("ReadWriteMany",)
    assert volume.reclaim_policy == "Retain"
    assert volume.cache_text == ("10Gi", "24h", "10s", "60s")


@pytest.mark.parametrize(("changes", "field"), [
    ({"bucket__url": "file:///data"}, "spec.bucket.url"),
    ({"bucket__url": "gs://data"}, "spec.bucket.region"),  # S3's only
    ({"bucket__url": "az://data", "bucket__region": None}, "spec.bucket.account"),
    ({"bucket__url": "az://da--ta", "bucket__region": None, "bucket__account": "acct"},
     "spec.bucket.url"),
    ({"bucket__url": "az://data", "bucket__region": None, "bucket__account": "Acct_1"},
     "spec.bucket.account"),
    ({"bucket__account": "acct"}, "spec.bucket.account"),  # s3:// takes none
    ({"bucket__url": "s3://Data"}, "spec.bucket.url"),
    ({"bucket__url": "s3://data/a//b"}, "spec.bucket.url"),
    ({"bucket__url": "s3://data/a/../b"}, "spec.bucket.url"),
    ({"bucket__url": None}, "spec.bucket.url"),
    ({"bucket__endpoint": "http://minio:99999"}, "spec.bucket.endpoint"),
    ({"bucket__endpoint": "ftp://minio"}, "spec.bucket.endpoint"),
    ({"bucket__endpoint": "http://key:s3cr3t@minio:9000"}, "spec.bucket.endpoint"),
    ({"bucket__endpoint": "http://key@minio"}, "spec.bucket.endpoint"),
    ({"bucket__region": "EU WEST"}, "spec.bucket.region"),
    ({"bucket__credentialsSecretRef__name": "Bad_Name"}, "spec.bucket.credentialsSecretRef.name"),
    ({"bucket__credentialsSecretRef__namespace": "other"},
     "spec.bucket.credentialsSecretRef.namespace"),
    ({"cache__size": "lots"}, "spec.cache.size"),
    ({"cache__ttl": "1w"}, "spec.cache.ttl"),
    ({"cache__metadataTTL": "-1"}, "spec.cache.metadataTTL"),
    ({"export__delay": "soon"}, "spec.export.delay"),
    ({"capacity": "0"}, "spec.capacity"),
    ({"accessModes": ["ReadWriteAll"]}, "spec.accessModes"),
    ({"accessModes": []}, "spec.accessModes"),
    ({"reclaimPolicy": "Recycle"}, "spec.reclaimPolicy"),
    ({"bucket__url": "s3://data", "reclaimPolicy": "Delete"}, "spec.reclaimPolicy"),
    ({"mountOptions__uid": -1}, "spec.mountOptions.uid"),
    ({"mountOptions__gid": 2**31}, "spec.mountOptions.gid"),
    ({"mountOptions__fileMode": "0999"}, "spec.mountOptions.fileMode"),
    ({"mountOptions__dirMode": "rwx"}, "spec.mountOptions.dirMode"),
])
def test_invalid_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_volume(spec(**changes), "ns", "v", UID)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_credentials_in_the_endpoint_are_refused_without_being_quoted() -> None:
    with pytest.raises(SpecError) as err:
        parse_volume(spec(bucket__endpoint="http://key:s3cr3t@minio:99999"), "ns", "v", UID)
    assert "s3cr3t" not in str(err.value) and "credentials" in str(err.value)


def test_a_secret_may_be_named_in_the_volumes_own_namespace_only() -> None:
    own = parse_volume(spec(bucket__credentialsSecretRef__namespace="ns"), "ns", "v", UID)
    assert own.secret_name == "creds"
    with pytest.raises(SpecError, match="only a Secret in its own namespace 'ns'"):
        parse_volume(spec(bucket__credentialsSecretRef__namespace="kube-system"), "ns", "v", UID)


def test_validation_does_not_modify_the_spec() -> None:
    original = spec()
    parse_volume(copy.deepcopy(original), "ns", "v", UID)
    assert original == spec()


def test_handle_is_stable_and_follows_the_contract() -> None:
    handle = volume_handle("team", "data", UID)
    assert handle == volume_handle("team", "data", UID)
    assert re.fullmatch(r"ofv-team-data-[0-9a-f]{8}", handle)
    assert volume_handle("team", "data", UID.replace("0", "1")) != handle


def test_handle_folds_and_truncates() -> None:
    handle = volume_handle("n" * 63, "my.volume." + "x" * 240, UID)
    assert len(handle) <= 128
    assert re.fullmatch(r"[a-z0-9-]+", handle)
    assert "--" not in handle[-10:]  # no empty part before the hash


def test_gcs_and_azure_locations() -> None:
    gs = parse_volume(spec(bucket__url="gs://my_data/team", bucket__region=None), "ns", "v", UID)
    assert gs.location == Location("my_data", "team", "http://minio:9000", "", scheme="gs")
    assert gs.location.url == "gs://my_data/team"
    az = parse_volume(spec(bucket__url="az://data/team/", bucket__region=None,
                           bucket__account="devstoreaccount1"), "ns", "v", UID)
    assert (az.location.url, az.location.account) == ("az://data/team", "devstoreaccount1")


def test_location_strips_trailing_slash() -> None:
    assert parse_location("s3://data/p/", "", "").prefix == "p"
    assert parse_location("s3://data/", "", "").prefix == ""


def test_the_events_url_reaches_the_volume_attributes() -> None:
    from openfiles_operator.binding import volume_attributes

    base = spec()
    assert parse_volume(base, "ns", "v", UID).events_url == ""
    assert "eventsURL" not in volume_attributes(parse_volume(base, "ns", "v", UID))
    base["events"] = {"natsURL": "nats://nats.messaging:4222"}
    volume = parse_volume(base, "ns", "v", UID)
    assert volume_attributes(volume)["eventsURL"] == "nats://nats.messaging:4222"
    base["events"] = {"natsURL": "off"}
    assert volume_attributes(parse_volume(base, "ns", "v", UID))["eventsURL"] == "off"
    base["events"] = {"natsURL": "nats://user:s3cr3t@nats:4222"}
    with pytest.raises(SpecError) as err:
        parse_volume(base, "ns", "v", UID)
    assert err.value.field == "spec.events.natsURL" and "s3cr3t" not in str(err.value)
