"""The node-local cache on real mounts: a full cache disk, LRU eviction, TTL expiry."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fixtures.net import wait_for

from ..conftest import Backend, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(180)]


@pytest.mark.root
def test_full_cache_disk_gives_enospc_and_corrupts_nothing(
        small_tmpfs: Path, mounter: MountFactory, file_backend: Backend) -> None:
    m = mounter(file_backend, "--export-delay", "3600", cache=small_tmpfs / "cache")
    keep = os.urandom(3 * 2**20)
    (m.path / "keep").write_bytes(keep)
    block = os.urandom(2**20)
    with pytest.raises(OSError) as info, open(m.path / "big", "wb") as f:
        for _ in range(64):
            f.write(block)
            f.flush()
    assert info.value.errno == errno.ENOSPC
    assert (m.path / "keep").read_bytes() == keep
    (m.path / "big").unlink()
    assert m.flush()["ok"]
    assert file_backend.read("keep") == keep
    assert "big" not in file_backend.keys()


def test_eviction_under_a_small_cache_size(mounter: MountFactory, backend: Backend) -> None:
    data = os.urandom(24 * 2**20)
    backend.write("large.bin", data)
    m = mounter(backend, "--cache-size", "4Mi")

    def usage() -> int:
        return sum(p.stat().st_blocks * 512 for p in (m.cache / "data").iterdir())

    got = bytearray()
    with open(m.path / "large.bin", "rb") as f:
        while chunk := f.read(2**20):
            got += chunk
            # the bound holds while the file is open and being read
            assert usage() <= 6 * 2**20, usage()
    assert got == data
    wait_for(lambda: m.status()["cache_bytes"] <= 4 * 2**20, timeout=10, what="eviction")
    assert usage() <= 4 * 2**20 + 65536
    # Evicted data comes back from the bucket, and counts as misses.
    assert (m.path / "large.bin").read_bytes() == data
    assert m.status()["hit_ratio"] < 1.0


def test_cold_read_larger_than_the_cache_then_a_local_write(
        mounter: MountFactory, backend: Backend) -> None:
    # 48 MiB through a 16 MiB cache: readahead pieces are written by the GETs'
    # threads while the reader is served from memory; then a write in the
    # middle must fill the file from the bucket and lose nothing.
    data = os.urandom(48 * 2**20)
    backend.write("stream.bin", data)
    m = mounter(backend, "--cache-size", "16Mi")

    def usage() -> int:
        return sum(p.stat().st_blocks * 512 for p in (m.cache / "data").iterdir())

    peak, got = 0, bytearray()
    with open(m.path / "stream.bin", "rb", buffering=0) as f:
        while chunk := f.read(2**20):
            got += chunk
            peak = max(peak, usage())
    assert got == data, "cold read returned other bytes"
    assert peak <= 24 * 2**20, peak
    wait_for(lambda: m.status()["cache_bytes"] <= 16 * 2**20, timeout=10, what="eviction")
    with open(m.path / "stream.bin", "r+b") as f:
        f.seek(30 * 2**20)
        f.write(b"local bytes")
    assert m.flush()["ok"]
    want = data[:30 * 2**20] + b"local bytes" + data[30 * 2**20 + 11:]
    assert backend.read("stream.bin") == want, "the exported file lost bytes"


def test_cache_ttl_expires_clean_data(mounter: MountFactory, file_backend: Backend) -> None:
    file_backend.write("small.txt", b"s" * 1000)
    m = mounter(file_backend, "--cache-ttl", "1s", "--export-delay", "3600")
    (m.path / "dirty.txt").write_bytes(b"d" * 500)
    assert (m.path / "small.txt").read_bytes() == b"s" * 1000
    assert m.status()["cache_bytes"] == 1500
    wait_for(lambda: m.status()["cache_bytes"] == 500, timeout=10, what="TTL expiry")
    assert (m.path / "dirty.txt").read_bytes() == b"d" * 500  # dirty data is never evicted


def test_status_counts_what_a_read_fetched_and_holds(mounter: MountFactory,
                                                      backend: Backend) -> None:
    data = os.urandom(40 * 2**20)
    backend.write("streamed", data)
    m = mounter(backend)
    before = m.status()
    assert before["fetched_bytes"] == before["dropped_bytes"] == before["held_bytes"] == 0
    with open(m.path / "streamed", "rb", buffering=0) as f:
        got = bytearray()
        while chunk := f.read(2**20):
            got += chunk
    assert got == data
    # Every byte went into the cache (nothing dropped), and once the file is whole and
    # closed no fetched data stays in memory.
    wait_for(lambda: m.status()["fetched_bytes"] >= len(data), timeout=10, what="the cache")
    status = m.status()
    assert status["dropped_bytes"] == 0
    wait_for(lambda: m.status()["held_bytes"] == 0, timeout=10, what="held data released")
