"""fence.py: conditional deletes on a real MinIO, which ignores DELETE If-Match."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from openfiles_engine.bucket import fence
from openfiles_engine.bucket.store import Conflict, Store, StoreError
from openfiles_engine.config import Credentials

pytestmark = [pytest.mark.s3, pytest.mark.timeout(60)]


@pytest.fixture
def s3(s3_bucket: Any) -> Store:
    return Store.open(s3_bucket.url, endpoint=s3_bucket.endpoint, region="us-east-1",
                      credentials=Credentials(s3_bucket.env["AWS_ACCESS_KEY_ID"],
                                              s3_bucket.env["AWS_SECRET_ACCESS_KEY"]))


def _fence(store: Store, key: str, etag: str) -> None:
    """The first request of another mount's delete of ``etag`` (its fence), alone."""
    assert store._put(key, fence.FENCE, {"e_tag": etag}, create=False) == fence.FENCE_ETAG


def test_minio_ignores_if_match_on_delete(s3: Store, s3_bucket: Any) -> None:
    """Why the fence exists: the check cannot ride on the DELETE itself."""
    s3.put_bytes("k", b"theirs", if_match=None, create=True)
    s3_bucket.server.admin()._execute("DELETE", s3_bucket.name, "k",
                                      headers={"If-Match": '"0000"'})
    assert s3.etag_or_none("k") is None


def test_a_delete_removes_only_the_version_seen(s3: Store) -> None:
    seen = s3.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    theirs = s3.put_bytes("k", b"theirs", if_match=seen, create=False)
    with pytest.raises(Conflict):
        s3.delete_if("k", seen)
    assert s3.get("k") == b"theirs"
    assert theirs is not None
    s3.delete_if("k", theirs)
    assert s3.head_any("k") is None  # no fence left behind
    s3.delete_if("k", theirs)  # a missing key is not an error


def test_a_write_meeting_a_fence_is_a_conflict_and_the_fence_is_hidden(s3: Store) -> None:
    """The window the fence closes: between its PUT and the DELETE, another mount's
    write of the version it saw fails (so it goes to lost+found), and so does a
    create; no listing or HEAD shows the fence."""
    seen = s3.put_bytes("d/k", b"v1", if_match=None, create=True)
    assert seen is not None
    _fence(s3, "d/k", seen)
    with pytest.raises(Conflict):
        s3.put_bytes("d/k", b"mine", if_match=seen, create=False)
    assert s3.etag_or_none("d/k") is None
    assert s3.list_dir("d/") == ([], [])
    assert [o.key for o in s3.list_all("d/")] == []
    info = s3.head_any("d/k")
    assert info is not None and fence.is_fence(info)
    s3.delete_if("d/k", seen)  # a second delete of the same version: already going
    assert s3.head_any("d/k") is not None  # not ours to remove while fresh


def test_a_create_waits_for_a_fence_to_go(s3: Store) -> None:
    seen = s3.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    _fence(s3, "k", seen)
    owner = threading.Timer(0.3, s3.delete, ("k",))  # the fence's owner finishes
    owner.start()
    started = time.monotonic()
    made = s3.put_bytes("k", b"new file", if_match=None, create=True)
    owner.join()
    assert time.monotonic() - started >= 0.25
    assert made == s3.etag_or_none("k") and s3.get("k") == b"new file"


def test_a_fence_that_stays_is_a_conflict_and_a_stale_one_is_removed(
        s3: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = s3.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    _fence(s3, "k", seen)
    monkeypatch.setattr(fence, "WAIT", 0.2)
    with pytest.raises(Conflict):
        s3.put_bytes("k", b"new", if_match=None, create=True)
    with pytest.raises(Conflict):  # the multipart path's check, and a copy's target
        s3.check("k", if_match=None, create=True)
    s3.put_bytes("src", b"moved", if_match=None, create=True)
    with pytest.raises(Conflict):
        s3.copy_if("src", "k", if_match=None)
    info = s3.head_any("k")
    assert info is not None and fence.is_fence(info)  # nothing overwrote it
    monkeypatch.setattr(fence, "STALE", 0.0)  # left by a delete cut short
    assert s3.put_bytes("k", b"new", if_match=None, create=True) is not None
    assert s3.get("k") == b"new"



def test_a_write_landing_inside_a_delete_is_kept(s3: Store,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Another mount's export lands between the delete's two requests: before the
    fence it was deleted unseen (test_two_mounts lost such a line); now it fails
    and the DELETE removes only the fence."""
    seen = s3.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    other = Store.open(s3.url, endpoint=str(s3._backend.config["endpoint"]),
                       region="us-east-1", credentials=_credentials(s3))
    landed: list[object] = []
    real_delete = s3.delete

    def delete(key: str) -> None:
        try:
            landed.append(other.put_bytes(key, b"v1 + theirs", if_match=seen, create=False))
        except Conflict as exc:
            landed.append(exc)
        real_delete(key)

    monkeypatch.setattr(s3, "delete", delete)
    s3.delete_if("k", seen)
    assert len(landed) == 1 and isinstance(landed[0], Conflict)  # to their lost+found
    assert s3.head_any("k") is None


def test_a_file_made_at_a_copy_target_inside_the_copy_is_not_copied_over(
        s3: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put_bytes("src", b"moved", if_match=None, create=True)
    monkeypatch.setattr(fence, "WAIT", 0.2)
    landed: list[object] = []
    real_copy = s3.copy

    def copy(src: str, dst: str) -> None:
        try:
            landed.append(s3.put_bytes(dst, b"a new file", if_match=None, create=True))
        except Conflict as exc:
            landed.append(exc)
        real_copy(src, dst)

    monkeypatch.setattr(s3, "copy", copy)
    etag = s3.copy_if("src", "dst", if_match=None)
    assert len(landed) == 1 and isinstance(landed[0], Conflict)  # to its lost+found
    assert s3.get("dst") == b"moved" and etag == s3.etag_or_none("dst")
    assert etag == s3.etag_or_none("src")  # the copy keeps the source's ETag


def test_a_fence_whose_delete_failed_goes_at_the_next_try(
        s3: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ours, not another mount's: the next try of the same delete removes it, and a
    rename's copy whose delete failed too copies over its own fence next time."""
    seen = s3.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None
    real_delete = s3.delete

    def unreachable(key: str) -> None:
        raise StoreError("bucket unreachable")

    monkeypatch.setattr(s3, "delete", unreachable)
    with pytest.raises(StoreError):
        s3.delete_if("k", seen)
    info = s3.head_any("k")
    assert info is not None and fence.is_fence(info) and s3.etag_or_none("k") is None
    monkeypatch.setattr(s3, "delete", real_delete)
    s3.delete_if("k", seen)
    assert s3.head_any("k") is None

    s3.put_bytes("src", b"moved", if_match=None, create=True)
    real_copy = s3.copy
    monkeypatch.setattr(s3, "copy", lambda src, dst: unreachable(dst))
    monkeypatch.setattr(s3, "delete", unreachable)
    with pytest.raises(StoreError):
        s3.copy_if("src", "dst", if_match=None)
    info = s3.head_any("dst")
    assert info is not None and fence.is_fence(info)
    monkeypatch.setattr(s3, "copy", real_copy)
    monkeypatch.setattr(s3, "delete", real_delete)
    assert s3.copy_if("src", "dst", if_match=None) == s3.etag_or_none("src")
    assert s3.get("dst") == b"moved"


def test_a_listing_removes_a_stale_fence_and_a_fence_is_no_object(
        s3: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = s3.put_bytes("e/x", b"v1", if_match=None, create=True)
    assert seen is not None
    _fence(s3, "e/x", seen)
    assert not s3.any_under("e/")  # a deleted directory does not come back
    assert s3.list_dir("e/") == ([], []) and s3.head_any("e/x") is not None  # fresh: kept
    monkeypatch.setattr(fence, "STALE", 0.0)
    assert s3.list_dir("e/") == ([], [])
    assert s3.head_any("e/x") is None


def _run(s3: Store, token: str, run: int) -> Store:
    """A store as an engine of cache ``token`` in its run ``run`` has it."""
    store = Store.open(s3.url, endpoint=str(s3._backend.config["endpoint"]),
                       region="us-east-1", credentials=_credentials(s3))
    store.fence_owner = (token, run)
    return store


SIGHTINGS: dict[str, Callable[[Store, str], object]] = {
    "the replayed delete": lambda s, seen: s.delete_if("k", seen),
    "a HEAD": lambda s, seen: s.etag_or_none("k"),
    "a listing": lambda s, seen: s.list_dir(""),
    "a create": lambda s, seen: s.put_bytes("k", b"new", if_match=None, create=True),
    "a copy to it": lambda s, seen: s.copy_if("src", "k", if_match=None),
}


@pytest.mark.parametrize("sighting", SIGHTINGS)
def test_a_fence_a_dead_run_left_goes_when_the_next_run_meets_it(
        s3: Store, monkeypatch: pytest.MonkeyPatch, sighting: str) -> None:
    """An engine killed between its fence PUT and the DELETE: no living process will
    delete that fence. The next run of the same cache knows it by the maker in its
    metadata and removes it wherever it meets it (its journal replays the delete);
    another cache's engine, and the run that put it, leave it (fence.py)."""
    monkeypatch.setattr(fence, "WAIT", 0.2)
    s3.put_bytes("src", b"moved", if_match=None, create=True)
    dead = _run(s3, "cache1", 1)
    seen = dead.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None and dead._put_fence("k", {"e_tag": seen}) == fence.FENCE_ETAG
    for others in (_run(s3, "cache2", 7), _run(s3, "cache1", 1), s3):
        with contextlib.suppress(Conflict):
            SIGHTINGS[sighting](others, seen)
        info = s3.head_any("k")
        assert info is not None and fence.is_fence(info)
    SIGHTINGS[sighting](_run(s3, "cache1", 2), seen)
    info = s3.head_any("k")
    assert info is None or not fence.is_fence(info)
    if sighting in ("a create", "a copy to it"):
        assert s3.get("k") == (b"new" if sighting == "a create" else b"moved")


def test_a_dead_fence_stays_where_removing_it_is_not_ours_to_do(
        s3: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only mount removes no fence; a run that fenced the key again itself
    leaves the fence to its own delete; a removal that fails does not fail the
    HEAD, which still finds nothing there."""
    dead = _run(s3, "cache1", 1)
    seen = dead.put_bytes("k", b"v1", if_match=None, create=True)
    assert seen is not None and dead._put_fence("k", {"e_tag": seen}) == fence.FENCE_ETAG
    info = s3.head_any("k")
    assert info is not None and fence.is_fence(info)
    reader = _run(s3, "cache1", 2)
    reader.read_only = True
    assert not reader.drop_if_dead(info) and reader.etag_or_none("k") is None
    again = _run(s3, "cache1", 2)
    again._mine.add("k")
    assert not again.drop_if_dead(info)

    def unreachable(key: str) -> None:
        raise StoreError("bucket unreachable")

    failing = _run(s3, "cache1", 2)
    monkeypatch.setattr(failing, "delete", unreachable)
    assert failing.etag_or_none("k") is None
    assert s3.head_any("k") is not None  # all three left it
    assert _run(s3, "cache1", 2).drop_if_dead(info) and s3.head_any("k") is None


def _credentials(s3: Store) -> Credentials:
    cfg = s3._backend.config
    return Credentials(str(cfg["access_key_id"]), str(cfg["secret_access_key"]))
