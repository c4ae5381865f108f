"""Lazy import of keys other tools wrote, including odd ones, on a real MinIO."""

from __future__ import annotations

import io
import os

import pytest

from .conftest import Backend, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(120)]


def put(backend: Backend, key: str, data: bytes) -> None:
    """Write with the MinIO SDK, which (unlike obstore) sends keys as given."""
    backend.bucket.server.admin().put_object(backend.bucket.name, key, io.BytesIO(data),
                                             len(data))


def test_keys_from_other_tools(mounter: MountFactory, s3_backend: Backend) -> None:
    put(s3_backend, "marker/", b"")  # the console's empty-directory marker
    put(s3_backend, "both", b"object")  # a key that is an object ...
    put(s3_backend, "both/child", b"and a prefix")  # ... and a prefix
    put(s3_backend, "sp ace/é.txt", b"unicode")
    put(s3_backend, "deep/a/b/c/d.txt", b"deep")
    m = mounter(s3_backend)
    names = sorted(os.listdir(m.path))
    assert "marker" in names and "deep" in names and "sp ace" in names
    assert os.listdir(m.path / "marker") == []
    assert (m.path / "sp ace" / "é.txt").read_bytes() == b"unicode"
    assert (m.path / "deep/a/b/c/d.txt").read_bytes() == b"deep"
    both = m.path / "both"
    if both.is_dir():  # the store listed both: the directory wins, the object is hidden
        assert (both / "child").read_bytes() == b"and a prefix"
    else:  # MinIO keeps only one of the two visible in listings
        assert both.read_bytes() == b"object"
    assert "cannot be a file name" not in m.log_text()
    assert m.status()["conflicts"] == 0


def test_large_directory_listing(mounter: MountFactory, s3_backend: Backend) -> None:
    import obstore

    store = s3_backend.bucket.store()
    for i in range(1200):  # more than one page of ListObjectsV2 (1000)
        obstore.put(store, f"many/f{i:04d}", b"x")
    m = mounter(s3_backend)
    assert len(os.listdir(m.path / "many")) == 1200
    st = os.stat(m.path / "many" / "f1199")
    assert st.st_size == 1 and st.st_mode & 0o777 == 0o644
