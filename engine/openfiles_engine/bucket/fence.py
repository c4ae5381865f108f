"""Conditional deletes on S3, whose DELETE takes no ``If-Match`` (MinIO ignores it).

A delete of version ``etag`` first replaces that version, with a PUT ``If-Match:
etag``, by a fence: an object of fixed bytes (``FENCE``), then deletes the fence.
The PUT is atomic, so the delete removes the version seen or nothing. Between the
two requests (milliseconds) another mount's conditional write fails: its
``If-Match`` names a version that is gone and its ``If-None-Match`` meets the fence,
so its version goes to lost+found rather than being deleted unseen. Before, the
check was a HEAD just before the DELETE, and a write landing between the two was
deleted (found by ``tests/engine/test_two_mounts.py``).

The engine's listings and HEADs do not show a fence (:func:`is_fence`), so no mount
adopts one as a file. A create at a fenced key waits up to ``WAIT`` seconds for
the fence to go (:func:`clear`). A fence whose DELETE failed is the store's own
(``Store._mine``): the next try of the same change removes it. One left by a crash
between the two requests is removed by whoever meets it once it is older than
``STALE`` (a listing, a create at its key): by then its owner's requests have
ended (the store's client gives up on one within minutes), so the owner no longer
deletes it blindly. A rename's copy takes its target the same way (a fence put
``If-None-Match``, which the copy replaces).

A crash (``kill -9``, a node lost) between the two requests leaves a fence that no
living process will delete, and the journal replays the change after the restart.
Each fence carries its maker in its metadata (``OWNER``: the cache dir's token and
the engine's run number, both kept in the cache's database), so the replay knows a
fence of an earlier run of its own cache and removes it (:func:`left_by_earlier_run`)
instead of taking it for another mount's and leaving the key fenced for ``STALE``
seconds (found by ``tests/engine/test_reference_model.py``: the bucket still held a
fence where a rename's source had been). A fence of the running engine is never
taken for one: its DELETE may still be on the way.

A fence is recognised by its size and its ETag, the MD5 of its bytes, which S3
gives a single-part object. A bucket that gives other ETags (SSE-KMS) returns
another ETag for the fence; the store then deletes the fence at once and goes back
to the HEAD before the DELETE (:meth:`Store.delete_if`).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openfiles_engine.bucket.store import ObjectInfo, Store

FENCE = b"openfiles: this object is being deleted by a mount of the volume\n"
FENCE_ETAG = f'"{hashlib.md5(FENCE).hexdigest()}"'
WAIT = 2.0
"""Seconds a create waits for a fence at its key to go."""
STALE = 900.0
"""Seconds after which a fence is a leftover that anyone may delete (the bucket's
clock, from its Last-Modified, against ours: minutes of skew are tolerated)."""
POLL = 0.05
OWNER = "openfiles-fence"
"""The fence's metadata key naming its maker, ``<cache token>/<run>``."""


def is_fence(info: ObjectInfo) -> bool:
    return info.size == len(FENCE) and info.etag == FENCE_ETAG


def stale(info: ObjectInfo) -> bool:
    return time.time() - info.mtime_ns / 1e9 > STALE


def owner_tag(owner: tuple[str, int] | None) -> dict[str, str]:
    """The attributes of a fence PUT: metadata naming its maker, if known."""
    return {} if owner is None else {OWNER: f"{owner[0]}/{owner[1]}"}


def left_by_earlier_run(tag: str | None, owner: tuple[str, int] | None) -> bool:
    """Whether a fence tagged ``tag`` was put by an earlier run of the engine that is
    ``owner`` now (same cache token, a lower run number): that run is dead, so
    nothing will delete the fence but us."""
    if owner is None or not tag:
        return False
    token, _, run = tag.rpartition("/")
    return token == owner[0] and run.isdigit() and int(run) < owner[1]


def clear(store: Store, key: str) -> ObjectInfo | None:
    """Before a create at ``key``: wait for a fence there to go, removing a dead one.

    Returns what is at ``key`` then (a fence still there after ``WAIT`` seconds
    included), or None if nothing is.
    """
    deadline = time.monotonic() + WAIT
    asked = False
    while True:
        info = store.head_any(key)
        if info is None or not is_fence(info):
            return info
        if stale(info) or not asked:
            asked = True
            if store.drop_if_dead(info):
                continue
        if time.monotonic() > deadline:
            return info
        time.sleep(POLL)
