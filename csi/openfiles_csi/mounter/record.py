"""The mounter's durable records: one JSON file per staged mount point.

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
        final = self._file(record.mountpoint)
        tmp = final + ".tmp"
        data = json.dumps(asdict(record), indent=1, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._sync_dir()

    def delete(self, mountpoint: str) -> None:
        try:
            os.unlink(self._file(mountpoint))
        except FileNotFoundError:
            return
        self._sync_dir()

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

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
