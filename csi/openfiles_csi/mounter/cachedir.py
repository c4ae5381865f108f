"""A volume's cache directory once its engine is gone: discarded, or kept under a marker.

At unstage the mounter discards a cache directory only when it holds nothing that
exists nowhere else: no dirty data (all exported) and an empty lost+found (a
conflicted file's local version lives only in this directory; CONTRACTS.md section
2, ``lostfound_files``). Otherwise the directory stays where it is, the next stage
of the volume on this node reuses it (its engine exports the dirty data at once and
shows lost+found again), and a durable marker (:class:`~record.StrandedStore`) says
why it was kept: dirty data no engine could export, files in lost+found, or both.
The mounter's ``list`` returns the markers as ``stranded``; the node plugin reports
them (OpenFilesNodeReport) and the metrics count their dirty data.

What a directory holds comes from the engine: the flush-only engine's answer for a
dead engine (:mod:`recovery`), the live engine's status after its flush otherwise
(:func:`after_flush`). Unknown counts (None) keep the directory: nothing a user
wrote is deleted on a guess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openfiles_csi import jsonline
from openfiles_csi.mounter.record import MountRecord, StrandedStore

log = logging.getLogger(__name__)

DISCARDED = ".discarded-"
"""A discarded cache directory is renamed aside to its name plus this and a timestamp."""


@dataclass
class Left:
    """What a cache directory holds once its engine is gone; None where unknown."""

    dirty_files: int | None
    dirty_bytes: int | None
    pending_exports: int | None
    lostfound_files: int | None
    lostfound_bytes: int | None
    error: str | None

    @property
    def clean(self) -> bool:
        """Nothing waits to be exported."""
        return self.dirty_files == 0 and self.pending_exports == 0

    @property
    def empty(self) -> bool:
        """Nothing but copies of the bucket: the directory may go."""
        return self.clean and self.lostfound_files == 0

    def as_dict(self) -> dict[str, Any]:
        return {"dirty_files": self.dirty_files, "dirty_bytes": self.dirty_bytes,
                "pending_exports": self.pending_exports,
                "lostfound_files": self.lostfound_files,
                "lostfound_bytes": self.lostfound_bytes, "error": self.error}


def unknown(error: str) -> Left:
    return Left(None, None, None, None, None, error)


async def after_flush(record: MountRecord, timeout: float = 10.0) -> Left:
    """What a live engine's cache will hold after its clean exit, asked right after its
    flush (the engine stops next). Dirty data counts as none: a clean exit exports it.
    But then lost+found may still grow, so its counts are unknown unless the engine
    was clean when asked."""
    try:
        reply = await jsonline.arequest(record.control_socket, {"op": "status"}, timeout)
    except jsonline.PeerError as exc:
        return Left(0, 0, 0, None, None, f"the engine did not say what lost+found holds: {exc}")
    status = reply.get("status") if reply.get("ok") else None
    if not isinstance(status, dict) or "lostfound_files" not in status:
        return Left(0, 0, 0, None, None, "the engine did not say what lost+found holds")
    if status.get("dirty_files") or status.get("pending_exports"):
        return Left(0, 0, 0, None, None, "written to after its flush: what lost+found "
                    "holds after the last export is not known")
    return Left(0, 0, 0, int(status["lostfound_files"]), int(status.get("lostfound_bytes") or 0),
                None)


def settle(record: MountRecord, left: Left, markers: StrandedStore) -> dict[str, Any] | None:
    """Decide what becomes of ``record``'s cache directory, its engine being gone.

    Returns None when the directory may be discarded (the volume's marker is removed;
    the caller calls :func:`discard`), else the marker saved, durably: ``volume_id``,
    ``source``, ``cache_dir``, what :class:`Left` says, and ``since`` (Unix time,
    kept from an earlier marker of the volume).
    """
    if left.empty:
        markers.delete(record.volume_id)
        return None
    earlier = markers.get(record.volume_id) or {}
    marker = {"volume_id": record.volume_id, "source": record.source,
              "cache_dir": record.cache_dir, **left.as_dict(),
              "since": earlier.get("since", time.time())}
    markers.save(marker)
    if not left.clean:
        log.error("volume %s: %s dirty files (%s bytes) stay in the cache %s of this node "
                  "until the volume is staged here again: %s", record.volume_id,
                  left.dirty_files, left.dirty_bytes, record.cache_dir, left.error)
    else:
        log.warning("volume %s: cache %s kept for its lost+found (%s files, %s bytes; %s): "
                    "the next stage on this node shows them again", record.volume_id,
                    record.cache_dir, left.lostfound_files, left.lostfound_bytes,
                    left.error or "local versions of conflicted files")
    return marker


async def discard(cache_dir: str) -> None:
    """Delete a cache directory without stalling the mounter.

    A large cache takes long to delete, and meanwhile every other request (stats,
    probes, other volumes) would wait on the event loop. So the directory is renamed
    aside at once (a new mount of the volume starts with a fresh one) and deleted in a
    thread; :func:`leftovers` finds deletions a restart interrupted.
    """
    doomed = f"{cache_dir}{DISCARDED}{time.time_ns()}"
    try:
        os.rename(cache_dir, doomed)
    except FileNotFoundError:
        return
    await asyncio.to_thread(shutil.rmtree, doomed, ignore_errors=True)


def leftovers(cache_root: str) -> Iterator[str]:
    """Directories under ``cache_root`` renamed aside for deletion and not deleted yet."""
    for name in os.listdir(cache_root):
        if DISCARDED in name:
            yield os.path.join(cache_root, name)
