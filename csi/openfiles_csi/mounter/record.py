"""The mounter's durable records: one JSON file per staged mount point, and one
marker per volume whose cache this node keeps with no engine: dirty data no engine could
export, or files in lost+found.

A record is written with write-to-temporary, fsync, ``os.replace`` and a directory
fsync, so after a crash each record file is either the old or the new version, never
a torn one. Records hold no secrets: the engine's credentials live only in its
environment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

STARTING = "starting"
RUNNING = "running"
DEAD = "dead"


def path_key(path: str) -> str:
    """A short stable name derived from ``path`` (file names, socket names)."""
    return hashlib.sha256(path.encode()).hexdigest()[:16]


@dataclass
class MountRecord:
    """One engine the mounter started (or adopted) for one mount point."""

    volume_id: str
    mountpoint: str
    source: str
    args: list[str]
    cache_dir: str
    control_socket: str
    log_path: str
    pid: int = 0
    #: start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat);
    #: with the pid it identifies the process even after pid reuse.
    start_ticks: int = 0
    state: str = STARTING
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, object]:
        return {"source": self.source, "args": list(self.args)}


class RecordStore:
    """Records under ``<state_dir>/records``; loaded once at start, then written through."""

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "records")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    def _file(self, mountpoint: str) -> str:
        return os.path.join(self.dir, path_key(mountpoint) + ".json")

    def save(self, record: MountRecord) -> None:
        """Durably replace the record of ``record.mountpoint``."""
        write_json(self.dir, self._file(record.mountpoint), asdict(record))

    def delete(self, mountpoint: str) -> None:
        remove(self.dir, self._file(mountpoint))

    def load(self) -> list[MountRecord]:
        """Every readable record; a corrupt file is logged and set aside, never fatal."""
        records = []
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.endswith(".tmp"):
                os.unlink(path)  # an interrupted save; the previous version is intact
                continue
            if not name.endswith(".json"):
                continue
            try:
                with open(path) as f:
                    records.append(MountRecord(**json.load(f)))
            except (OSError, ValueError, TypeError) as exc:
                log.error("unreadable mount record %s (%s); moved aside", path, exc)
                os.replace(path, path + ".corrupt")
        return records



class StrandedStore:
    """Durable markers of caches no engine serves: ``<state_dir>/stranded/<key>.json``.

    One per volume (``key`` = :func:`path_key` of the volume id), written when an unstage
    kept the cache (:func:`~openfiles_csi.mounter.cachedir.settle`): it could not export
    a dead engine's dirty data, or lost+found holds files. Removed once an engine serves
    that cache again (the next stage on this node). Each holds ``volume_id``, ``source``
    (URL, no credentials), ``cache_dir``, ``dirty_files``, ``dirty_bytes``,
    ``pending_exports``, ``lostfound_files``, ``lostfound_bytes`` (each null when
    unknown), ``error`` (why dirty data stays; null when none does) and ``since`` (Unix
    time the cache was first kept).
    """

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "stranded")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    def _file(self, volume_id: str) -> str:
        return os.path.join(self.dir, path_key(volume_id) + ".json")

    def get(self, volume_id: str) -> dict[str, Any] | None:
        try:
            with open(self._file(volume_id)) as f:
                marker: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            return None
        return marker

    def save(self, marker: dict[str, Any]) -> None:
        write_json(self.dir, self._file(str(marker["volume_id"])), marker)

    def delete(self, volume_id: str) -> None:
        remove(self.dir, self._file(volume_id))

    def load(self) -> list[dict[str, Any]]:
        """Every readable marker (a torn one cannot exist: see :func:`write_json`)."""
        markers = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.dir, name)) as f:
                        markers.append(json.load(f))
                except (OSError, ValueError) as exc:
                    log.error("unreadable stranded-data marker %s: %s", name, exc)
        return markers


def write_json(directory: str, final: str, value: Any) -> None:
    """Durably replace ``final`` (in ``directory``) with ``value`` as JSON.

    Temporary file, fsync, ``os.replace``, directory fsync: after a crash the file is
    the old or the new version, never a torn one. Mode 0600.
    """
    tmp = final + ".tmp"
    data = json.dumps(value, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _sync_dir(directory)


def remove(directory: str, path: str) -> None:
    """Durably remove ``path``; absent is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _sync_dir(directory)


def _sync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
