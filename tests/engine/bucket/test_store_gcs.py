"""store.py's ``gs://`` store against a real GCS emulator (fixtures/gcs.py).

fake-gcs-server v1.56.1 serves obstore's reads, listings and deletes; the
uploads, copies and If-Match GETs come from tools/gcsemulator's additions to it.
Objects seeded through the JSON API stand for writes by another client.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from openfiles_engine.bucket.store import Changed, Conflict, ObjectNotFound, Store, StoreError
from openfiles_engine.config import Credentials

pytestmark = pytest.mark.gcs


def gs_store(bucket: Any, prefix: str = "") -> Store:
    """The engine's store on a fixtures.gcs.Bucket, as ``openfiles mount`` opens it."""
    return Store.open(f"{bucket.url}/{prefix}" if prefix else bucket.url,
                      endpoint=bucket.endpoint,
                      credentials=Credentials(
                          gcs_service_account_key=bucket.env["GOOGLE_SERVICE_ACCOUNT_KEY"]))


def test_reads_lists_and_deletes(gcs_bucket: Any) -> None:
    gcs_bucket.seed("vol/d/a", b"alpha")
    gcs_bucket.seed("vol/d/sub/b", b"beta")
    gcs_bucket.seed("vol/top", b"0123456789")
    gcs_bucket.seed("other/x", b"not in the volume")
    store = gs_store(gcs_bucket, "vol")
    objects, prefixes = store.list_dir("d/")
    assert [o.key for o in objects] == ["d/a"] and prefixes == ["d/sub"]
    assert sorted(o.key for o in store.list_all("")) == ["d/a", "d/sub/b", "top"]
    head = store.head("top")
    assert head.size == 10 and store.get("top") == b"0123456789"
    assert b"".join(store.get_chunks("top", 2, 6, if_match=head.etag)) == b"2345"
    # One object, one ETag, whether a listing or a HEAD saw it.
    assert {o.key: o.etag for o in store.list_all("")}["top"] == head.etag
    store.delete("top")
    store.delete("top")  # idempotent
    with pytest.raises(ObjectNotFound):
        store.head("top")
    assert gcs_bucket.keys() == ["other/x", "vol/d/a", "vol/d/sub/b"]


def test_conditional_writes_are_create_only(gcs_bucket: Any) -> None:
    """obstore's conditional update on GCS needs the generation, which the engine does
    not keep: an update is checked by a HEAD first (SEMANTICS.md)."""
    assert gs_store(gcs_bucket).conditional == "create-only"


PEM = "-----BEGIN PRIVATE KEY-----\nPRIVATE-XYZ\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("key", [
    json.dumps({"client_email": "a@b", "private_key_id": "ID-XYZ", "private_key": PEM}),
    "{not json PRIVATE-XYZ",
])
def test_a_bad_key_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(StoreError, match="cannot open gs://b/p") as info:
        Store.open("gs://b/p", endpoint="http://127.0.0.1:1",
                   credentials=Credentials(gcs_service_account_key=key))
    assert "XYZ" not in str(info.value)


def test_an_upload_round_trips(gcs_bucket: Any) -> None:
    store = gs_store(gcs_bucket)
    etag = store.put_bytes("k", b"v1", if_match=None, create=True)
    assert store.get("k") == b"v1" and etag == store.head("k").etag
    # The listing's ETag (JSON API, bare) is the HEAD's (XML API, quoted) once quoted.
    assert {o.key: o.etag for o in store.list_all("")}["k"] == etag


def test_a_create_over_an_existing_key_conflicts(gcs_bucket: Any) -> None:
    gcs_bucket.seed("k", b"someone else's")
    with pytest.raises(Conflict):
        gs_store(gcs_bucket).put_bytes("k", b"mine", if_match=None, create=True)
    assert gcs_bucket.get("k") == b"someone else's"


def test_an_update_is_checked_against_the_etag_seen(gcs_bucket: Any) -> None:
    """create-only: the HEAD before the plain PUT refuses a version replaced meanwhile."""
    store = gs_store(gcs_bucket)
    etag = store.put_bytes("k", b"v1", if_match=None, create=True)
    assert etag is not None
    new = store.put_bytes("k", b"v2", if_match=etag, create=False)
    assert new != etag and store.get("k") == b"v2"
    gcs_bucket.seed("k", b"another client's v3")
    with pytest.raises(Conflict):
        store.put_bytes("k", b"v4", if_match=new, create=False)
    assert store.get("k") == b"another client's v3"


def test_copy_if_absent_and_delete_if(gcs_bucket: Any) -> None:
    store = gs_store(gcs_bucket, "vol")
    etag = store.put_bytes("a", b"alpha", if_match=None, create=True)
    assert store.copy_if("a", "b", if_match=etag) == store.head("b").etag
    assert store.get("b") == b"alpha"
    with pytest.raises(Conflict):
        store.copy_if("a", "b", if_match=etag)  # the target exists
    with pytest.raises(Conflict):
        store.delete_if("a", '"not-the-etag"')
    store.delete_if("a", etag)
    assert gcs_bucket.keys() == ["vol/b"]


def test_a_range_of_a_replaced_version_is_refused(gcs_bucket: Any) -> None:
    gcs_bucket.seed("v", b"first version")
    store = gs_store(gcs_bucket)
    etag = store.head("v").etag
    gcs_bucket.seed("v", b"other content")
    with pytest.raises(Changed):
        store.get_chunks("v", 0, 5, if_match=etag)
