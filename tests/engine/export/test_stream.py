"""Upload while written (``export/stream.py``), through a real mount on MinIO.

What MinIO holds is asked with ListMultipartUploads and ListParts: a file written in
order has parts in the bucket before it is closed; a rewrite out of order, a
truncate, an unlink or a rename aborts them; the export then sends what the mount
shows, conditionally as ever.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fixtures.minio import Bucket
from fixtures.net import wait_for
from openfiles_engine.export.stream import LIMIT, PART, START

from ..conftest import Backend, Mount, MountFactory

MiB = 2**20
QUIET = ("--export-delay", "3600", "--metadata-ttl", "3600")
"""Nothing is exported until a close, fsync or flush asks (the stream runs anyway)."""


def block(n: int) -> bytes:
    return bytes([n % 251]) * MiB


def expected(mib: int) -> bytes:
    return b"".join(block(n) for n in range(mib))


def uploads(bucket: Bucket, key: str) -> list[Any]:
    """The multipart uploads in progress at ``key`` (MinIO lists them by key)."""
    result = bucket.server.admin()._list_multipart_uploads(bucket.name, prefix=key)
    return [u for u in result.uploads if u.object_name == key]


def parts(bucket: Bucket, key: str) -> int:
    """Parts the one upload in progress at ``key`` holds (0 without an upload)."""
    found = uploads(bucket, key)
    if len(found) != 1:
        return 0
    listed = bucket.server.admin()._list_parts(bucket.name, key, found[0].upload_id)
    return len(listed.parts)


@contextmanager
def written(path: Path, mib: int) -> Iterator[int]:
    """``path`` opened for writing, ``mib`` MiB written in order in 1 MiB writes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for n in range(mib):
            assert os.write(fd, block(n)) == MiB
        yield fd
    finally:
        os.close(fd)


def in_flight(bucket: Bucket, key: str, count: int) -> None:
    wait_for(lambda: parts(bucket, key) >= count, timeout=60,
             what=f"{count} parts of {key} in the bucket")


def nothing_pending(bucket: Bucket, key: str) -> None:
    wait_for(lambda: not uploads(bucket, key), timeout=30, what=f"no upload left at {key}")


SIZE = (START + 3 * PART) // MiB
pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(180)]


@pytest.fixture
def quiet(mounter: MountFactory, s3_bucket: Bucket) -> tuple[Mount, Backend, Bucket]:
    backend = Backend.on_s3(s3_bucket)
    return mounter(backend, *QUIET), backend, s3_bucket


def test_a_file_written_in_order_is_in_the_bucket_in_parts_before_its_close(
        quiet: tuple[Mount, Backend, Bucket]) -> None:
    m, backend, bucket = quiet
    with written(m.path / "big", SIZE):
        in_flight(bucket, "big", 3)
        assert "big" not in backend.keys()  # parts are not an object until completed
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert backend.read("big") == expected(SIZE)
    assert not uploads(bucket, "big")
    assert m.status()["conflicts"] == 0


def test_fsync_completes_the_upload_while_the_file_stays_open(
        quiet: tuple[Mount, Backend, Bucket]) -> None:
    m, backend, bucket = quiet
    with written(m.path / "big", SIZE) as fd:
        os.fsync(fd)
        assert backend.read("big") == expected(SIZE)  # fsync returned: it is there
        assert not uploads(bucket, "big")
        os.write(fd, block(SIZE))  # an append after the stream completed
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert backend.read("big") == expected(SIZE + 1)


@pytest.mark.parametrize("change", ["rewrite", "truncate", "unlink", "rename"])
def test_a_change_out_of_order_aborts_the_upload_and_the_export_sends_the_file(
        quiet: tuple[Mount, Backend, Bucket], change: str) -> None:
    m, backend, bucket = quiet
    want = bytearray(expected(SIZE))
    with written(m.path / "big", SIZE) as fd:
        in_flight(bucket, "big", 2)
        if change == "rewrite":
            os.pwrite(fd, b"again", 5)
            want[5:10] = b"again"
        elif change == "truncate":
            os.ftruncate(fd, START // 2)
            del want[START // 2:]
        elif change == "unlink":
            os.unlink(m.path / "big")
        else:
            os.rename(m.path / "big", m.path / "moved")
        nothing_pending(bucket, "big")  # aborted while the file is still open
        if change != "unlink":
            os.write(fd, b"tail")  # at the offset the stream had reached: not in order now
            want += bytes(SIZE * MiB - len(want)) + b"tail"  # a truncate left a hole
    assert m.flush()["ok"], m.log_text()[-3000:]
    assert not uploads(bucket, "big") and not uploads(bucket, "moved")
    if change == "unlink":
        assert "big" not in backend.keys()
    else:
        assert backend.read("moved" if change == "rename" else "big") == bytes(want)
    assert m.status()["conflicts"] == 0


def test_a_key_taken_meanwhile_is_a_conflict_and_the_upload_is_aborted(
        quiet: tuple[Mount, Backend, Bucket]) -> None:
    """The complete cannot carry If-None-Match through obstore: the HEAD right before
    it finds the other writer's object, and the bucket keeps theirs."""
    m, backend, bucket = quiet
    with written(m.path / "big", SIZE):
        in_flight(bucket, "big", 2)
        backend.write("big", b"theirs")
    m.flush()
    assert backend.read("big") == b"theirs"
    assert m.status()["conflicts"] == 1
    lost = [p for d in m.path.glob(".openfiles-lost+found-*") for p in d.iterdir()]
    assert len(lost) == 1 and lost[0].read_bytes() == expected(SIZE)
    assert not uploads(bucket, "big")


@pytest.mark.timeout(240)
def test_kill_9_mid_upload_then_the_next_mount_exports_from_the_cache(
        mounter: MountFactory, s3_bucket: Bucket) -> None:
    """Closed, so acknowledged; its upload has parts but no complete when the engine
    dies. The next mount exports the file from the cache; the parts of the dead
    upload are left to the bucket's lifecycle rule (docs/SEMANTICS.md)."""
    backend = Backend.on_s3(s3_bucket)
    m = mounter(backend, *QUIET)
    with written(m.path / "big", SIZE):
        in_flight(s3_bucket, "big", 2)
    m.kill9()
    assert "big" not in backend.keys()
    again = mounter(backend, *QUIET, mountpoint=m.path, cache=m.cache)
    assert again.flush()["ok"], again.log_text()[-3000:]
    assert backend.read("big") == expected(SIZE)
    assert again.status()["conflicts"] == 0


def test_a_rewrite_from_its_start_goes_up_if_match_the_version_seen(
        quiet: tuple[Mount, Backend, Bucket]) -> None:
    """``O_TRUNC`` and a new content in order: the stream's complete replaces the
    version the mount exported (If-Match, checked by the HEAD), no conflict."""
    m, backend, bucket = quiet
    with written(m.path / "big", SIZE):
        pass
    assert m.flush()["ok"], m.log_text()[-3000:]
    with written(m.path / "big", SIZE + 2) as fd:
        in_flight(bucket, "big", 2)
        os.fsync(fd)
    assert backend.read("big") == expected(SIZE + 2)
    assert m.status()["conflicts"] == 0 and not uploads(bucket, "big")


def test_files_past_the_limit_of_streams_are_exported_whole(
        quiet: tuple[Mount, Backend, Bucket]) -> None:
    """LIMIT files stream at once; one more written meanwhile goes the old way."""
    m, backend, bucket = quiet
    names = [f"f{n}" for n in range(LIMIT + 1)]
    fds = [os.open(m.path / name, os.O_WRONLY | os.O_CREAT, 0o644) for name in names]
    try:
        for n in range(SIZE):
            for fd in fds:
                os.write(fd, block(n))
        wait_for(lambda: sum(1 for name in names if uploads(bucket, name)) == LIMIT,
                 timeout=30, what=f"{LIMIT} uploads while written")
        assert not uploads(bucket, names[-1])  # the last to pass START came too late
    finally:
        for fd in fds:
            os.close(fd)
    assert m.flush()["ok"], m.log_text()[-3000:]
    for name in names:
        assert backend.read(name) == expected(SIZE) and not uploads(bucket, name)
