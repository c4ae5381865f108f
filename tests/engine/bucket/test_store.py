"""store.py against obstore's MemoryStore and LocalStore, and a container on a real
Azurite (marker ``azure``); one FUSE test. The GCS store: test_store_gcs.py."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from openfiles_engine.bucket import store as store_mod
from openfiles_engine.bucket.store import Changed, Conflict, ObjectNotFound, Store, StoreError
from openfiles_engine.config import Credentials

from ..conftest import Backend, MountFactory, fresh


def az_store(container: Any) -> Store:
    """The engine's store on a fixtures.azurite.Container, with the account key."""
    env = container.env
    return Store.open(container.url, endpoint=container.endpoint,
                      credentials=Credentials(azure_account_name=env["AZURE_STORAGE_ACCOUNT_NAME"],
                                              azure_account_key=env["AZURE_STORAGE_ACCOUNT_KEY"]))


@pytest.fixture(params=["memory", "file", pytest.param("az", marks=pytest.mark.azure)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "az":
        return az_store(request.getfixturevalue("az_container"))
    url = "memory://" if request.param == "memory" else f"file://{tmp_path}/bucket"
    return Store.open(url)


def _range(store: Store, key: str, start: int, end: int, **kw: Any) -> bytes:
    return b"".join(store.get_chunks(key, start, end, **kw))


def test_conditional_puts(store: Store) -> None:
    etag = store.put_bytes("k", b"v1", if_match=None, create=True)
    with pytest.raises(Conflict):
        store.put_bytes("k", b"again", if_match=None, create=True)
    with pytest.raises(Conflict):
        store.put_bytes("k", b"v2", if_match='"not-it"', create=False)
    assert etag is not None
    etag2 = store.put_bytes("k", b"v2", if_match=etag, create=False)
    assert store.get("k") == b"v2" and etag2 != etag
    with pytest.raises(Conflict):
        store.put_bytes("missing", b"x", if_match=etag2, create=False)


def test_capability_is_reported(store: Store) -> None:
    assert store.conditional == ("create-only" if store.kind == "file" else "full")


def test_list_head_range_copy_delete(store: Store) -> None:
    for key in ("d/a", "d/b", "d/sub/c", "top"):
        store.put_bytes(key, key.encode(), if_match=None, create=False)
    objects, prefixes = store.list_dir("d/")
    assert [o.key for o in objects] == ["d/a", "d/b"] and prefixes == ["d/sub"]
    assert sorted(o.key for o in store.list_all("d/")) == ["d/a", "d/b", "d/sub/c"]
    assert store.head("top").size == 3
    assert _range(store, "d/sub/c", 2, 5) == b"sub"
    store.copy("top", "top2")
    store.delete("top")
    store.delete("top")  # idempotent
    with pytest.raises(ObjectNotFound):
        store.head("top")
    assert store.get("top2") == b"top"


def test_multipart_path_checks_preconditions(store: Store, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "MULTIPART_THRESHOLD", 1000)
    monkeypatch.setattr(store_mod, "PART_SIZE", 5 * 2**20)
    src = tmp_path / "big"
    src.write_bytes(b"z" * 6 * 2**20)
    etag = store.put_file("big", str(src), if_match=None, create=True)
    assert store.head("big").size == 6 * 2**20
    with pytest.raises(Conflict):
        store.put_file("big", str(src), if_match=None, create=True)
    with pytest.raises(Conflict):
        store.put_file("big", str(src), if_match='"stale"', create=False)
    store.put_file("big", str(src), if_match=etag, create=False)


def test_a_range_of_a_replaced_version_is_refused(store: Store) -> None:
    store.put_bytes("v", b"first version", if_match=None, create=False)
    etag = store.head("v").etag
    assert _range(store, "v", 6, 13, if_match=etag) == b"version"
    assert _range(store, "v", 6, 99, if_match=etag) == b"version"  # cut at the end
    store.put_bytes("v", b"other content", if_match=None, create=False)
    with pytest.raises(Changed):
        _range(store, "v", 6, 13, if_match=etag)
    assert _range(store, "v", 6, 13) == b"content"  # without a version: whatever is there


def _chunks_of(store: Store) -> None:
    data = bytes(range(256)) * (12 * 2**12)  # 12 MiB
    store.put_bytes("c", data, if_match=None, create=False)
    etag = store.head("c").etag
    chunks = store.get_chunks("c", 100, 5 * 2**20 + 7, if_match=etag, chunk=2**20)
    assert b"".join(chunks) == data[100:5 * 2**20 + 7]
    # Exactly a chunk each (a direct write of one starts on a block when the range
    # does), all views of the one buffer the GET was read into: none is a copy.
    assert [len(c) for c in chunks] == [2**20] * 4 + [2**20 + 7 - 100]
    assert len({id(c.obj) for c in chunks}) == 1
    seen: list[tuple[int, bytes]] = []
    sunk = store.get_chunks("c", 100, 5 * 2**20 + 7, if_match=etag, chunk=2**20,
                            sink=lambda at, buf: seen.append((at, bytes(buf))))
    assert [b for _, b in seen] == [bytes(c) for c in sunk]  # each buffer, as it came
    assert [at for at, _ in seen] == [100 + sum(map(len, sunk[:i])) for i in range(len(sunk))]

    def full(at: int, buf: memoryview) -> None:
        raise OSError(28, "no space")

    with pytest.raises(OSError, match="no space"):  # as the sink raised it, not a StoreError
        store.get_chunks("c", 0, 2**20, sink=full)
    tail = store.get_chunks("c", 11 * 2**20, 99 * 2**20, if_match=etag)  # cut at the end
    assert b"".join(tail) == data[11 * 2**20:]
    assert store.get_chunks("c", 7, 7) == [b""]
    store.put_bytes("c", b"other", if_match=None, create=False)
    with pytest.raises(Changed):
        store.get_chunks("c", 0, 2**20, if_match=etag)


def test_a_range_comes_in_buffers_of_a_chunk(store: Store) -> None:
    _chunks_of(store)


@pytest.mark.s3
def test_a_range_comes_in_buffers_of_a_chunk_from_minio(s3_bucket: Any) -> None:
    creds = s3_bucket.env
    _chunks_of(Store.open(s3_bucket.url, endpoint=s3_bucket.endpoint, region="us-east-1",
                          credentials=Credentials(creds["AWS_ACCESS_KEY_ID"],
                                                  creds["AWS_SECRET_ACCESS_KEY"])))



def test_bad_urls_fail_clearly() -> None:
    with pytest.raises(StoreError, match="unsupported URL scheme"):
        Store.open("ftp://host/x")
    with pytest.raises(StoreError, match="absolute path"):
        Store.open("file://relative/dir")


def test_az_needs_the_account_name() -> None:
    with pytest.raises(StoreError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        Store.open("az://container/prefix", credentials=Credentials(azure_account_key="K"))


def test_credentials_repr_shows_no_secret() -> None:
    creds = Credentials("AKID", "S3-SECRET", "S3-TOKEN", gcs_service_account_key="GCS-KEY",
                        azure_account_name="acct", azure_account_key="AZ-KEY",
                        azure_sas_token="AZ-SAS")
    for secret in ("AKID", "S3-SECRET", "S3-TOKEN", "GCS-KEY", "AZ-KEY", "AZ-SAS"):
        assert secret not in repr(creds)


@pytest.mark.azure
def test_az_with_a_sas_token(az_container: Any) -> None:
    """A SAS token instead of the account key; Azurite checks its signature and rights."""
    def with_sas(token: str) -> Store:
        return Store.open(az_container.url, endpoint=az_container.endpoint, credentials=Credentials(
            azure_account_name="devstoreaccount1", azure_account_key="bm90IHRoZSBrZXk=",
            azure_sas_token=token))

    store = with_sas("?" + az_container.sas_token())  # as the portal shows it
    etag = store.put_bytes("k", b"v1", if_match=None, create=True)
    with pytest.raises(Conflict):
        store.put_bytes("k", b"v2", if_match='"stale"', create=False)
    assert store.get("k") == b"v1" and store.head("k").etag == etag
    read_only = with_sas(az_container.sas_token("rl"))
    assert read_only.get("k") == b"v1"
    with pytest.raises(StoreError, match="PermissionDenied") as info:
        read_only.put_bytes("k", b"v3", if_match=etag, create=False)
    assert "sig=" not in str(info.value)
    forged = with_sas(az_container.sas_token(key=base64.b64encode(b"x" * 64).decode()))
    with pytest.raises(StoreError, match="PermissionDenied"):
        forged.head("k")


def test_s3_url_never_carries_secrets() -> None:
    s = Store.open("s3://bucket/pre/fix", endpoint="http://127.0.0.1:1",
                   credentials=Credentials("AKID", "SECRET-XYZ"))
    assert s.url == "s3://bucket/pre/fix"
    with pytest.raises(StoreError) as info:
        s.head("k")  # nothing listens on port 1
    assert "SECRET-XYZ" not in str(info.value)


def test_a_name_of_255_bytes_is_written_copied_and_kept_conditional(store: Store,
                                                                     tmp_path: Path) -> None:
    """LocalStore stages a PUT or a copy at ``<name>#<n>``, which passes NAME_MAX for
    a 255-byte name: the store writes through a short temporary name of its own."""
    name = "d/" + "n" * 255
    etag = store.put_bytes(name, b"v1", if_match=None, create=True)
    assert etag == store.head(name).etag
    with pytest.raises(Conflict):
        store.put_bytes(name, b"again", if_match=None, create=True)
    with pytest.raises(Conflict):
        store.put_bytes(name, b"v2", if_match='"stale"', create=False)
    src = tmp_path / "src"
    src.write_bytes(b"v2")
    etag2 = store.put_file(name, str(src), if_match=etag, create=False)
    assert store.get(name) == b"v2" and etag2 == store.head(name).etag
    store.copy(name, "e/" + "c" * 255)
    assert store.get("e/" + "c" * 255) == b"v2"
    objects, _ = store.list_dir("d/")
    assert [o.key for o in objects] == [name]
    assert store.list_all(".openfiles-meta/") == []  # no temporary object is left behind


def test_a_key_too_long_for_a_file_bucket_is_not_found(tmp_path: Path) -> None:
    """A 255-byte name's sidecar key (``<name>.meta``) cannot exist on file://: a HEAD,
    GET or delete finds nothing; a PUT there is still an error."""
    store = Store.open(f"file://{tmp_path}/bucket")
    store.put_bytes(".openfiles-meta/x.meta", b"{}", if_match=None, create=True)
    key = ".openfiles-meta/" + "é" * 127 + "x.meta"
    for read in (store.head, store.get):
        with pytest.raises(ObjectNotFound):
            read(key)
    store.delete(key)
    store.delete_if(key, '"any"')
    with pytest.raises(StoreError) as exc:
        store.put_bytes(key, b"{}", if_match=None, create=True)
    assert not isinstance(exc.value, ObjectNotFound)


@pytest.mark.fuse
def test_a_255_byte_name_exports_to_a_file_bucket(mounter: MountFactory,
                                                  file_backend: Backend) -> None:
    name = "é" * 127 + "x"  # 255 bytes
    m = mounter(file_backend)
    (m.path / name).write_bytes(b"long name")
    assert m.flush()["ok"]
    other = fresh(mounter, file_backend)
    assert (other.path / name).read_bytes() == b"long name"


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3),
                        pytest.param("az", marks=pytest.mark.azure)])
def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A file:// store, a MinIO bucket and an Azurite container: stores whose delete
    and copy the engine sends without If-Match."""
    if request.param == "file":
        return Store.open(f"file://{tmp_path}/bucket")
    if request.param == "az":
        return az_store(request.getfixturevalue("az_container"))
    bucket = request.getfixturevalue("s3_bucket")
    return Store.open(bucket.url, endpoint=bucket.endpoint, region="us-east-1",
                      credentials=Credentials(bucket.env["AWS_ACCESS_KEY_ID"],
                                              bucket.env["AWS_SECRET_ACCESS_KEY"]))


def test_delete_and_copy_only_the_version_seen(real_store: Store) -> None:
    store = real_store
    seen = store.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    store.put_bytes("k", b"theirs", if_match=None, create=False)
    with pytest.raises(Conflict):
        store.delete_if("k", seen)
    with pytest.raises(Conflict):
        store.copy_if("k", "k2", if_match=seen)
    assert store.get("k") == b"theirs" and store.etag_or_none("k2") is None
    now = store.etag_or_none("k")
    assert now is not None
    copied = store.copy_if("k", "k2", if_match=now)
    assert copied == store.etag_or_none("k2") and store.get("k2") == b"theirs"
    with pytest.raises(Conflict):  # the target exists
        store.copy_if("k", "k2", if_match=now)
    with pytest.raises(ObjectNotFound):
        store.copy_if("gone", "k3", if_match=None)
    store.delete_if("k", now)
    store.delete_if("k", now)  # a missing key is not an error
    assert store.etag_or_none("k") is None


def test_parts_as_they_come_complete_only_if_the_precondition_holds(real_store: Store) -> None:
    """``put_parts``: the upload while written of ``export/stream.py``. On s3 the
    bytes of the iterable become the object, If-Match / If-None-Match checked before
    the complete; a refused one leaves the bucket as it was. Elsewhere: Unsupported."""
    part = 5 * 2**20  # S3's smallest part
    data = [bytes([n]) * part for n in range(3)] + [b"end"]
    if real_store.kind != "s3":
        with pytest.raises(store_mod.Unsupported):
            real_store.put_parts("p", iter(data), if_match=None, create=True,
                                 part_size=part, concurrency=2)
        assert real_store.etag_or_none("p") is None
        return
    etag = real_store.put_parts("p", iter(data), if_match=None, create=True,
                                part_size=part, concurrency=2)
    assert real_store.get("p") == b"".join(data) and etag == real_store.head("p").etag
    for if_match, create in ((None, True), ('"other"', False)):
        with pytest.raises(Conflict):
            real_store.put_parts("p", iter([b"x" * part, b"y"]), if_match=if_match,
                                 create=create, part_size=part, concurrency=2)
    assert real_store.get("p") == b"".join(data)
    again = real_store.put_parts("p", iter([b"new"]), if_match=etag, create=False,
                                 part_size=part, concurrency=2)
    assert real_store.get("p") == b"new" and again != etag
