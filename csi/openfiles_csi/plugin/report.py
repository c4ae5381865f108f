"""What an engine knows, as an ``OpenFilesNodeReport`` (docs/OPERATOR.md, "Export state").

One report per (volume, node), named ``<node>-<sha256(volume handle)[:12]>``, in the
node plugin's namespace. Its spec is built here from the engine's control-socket
``status`` (docs/CONTRACTS.md section 2) by :func:`report_spec`, or, for a volume
no longer staged on the node whose cache the mounter keeps (dirty data it could not
export, files in lost+found: the mounter's ``stranded`` markers), from that marker by
:func:`kept_spec`. Units: bytes, seconds, RFC 3339 UTC times. The Event bodies for
conflicts, export errors and kept caches are built here too. Nothing here does I/O;
``reporter.py`` runs the loop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openfiles_csi.logsetup import redact

HANDLE_LABEL = "openfiles.io/volume-handle-hash"
"""Label holding ``sha256(volume handle)[:16]``: handles may exceed a label's 63 bytes."""
STABLE_SECONDS = 3.0
"""``dirtySince`` moving by less than this (the jitter of reading an age) is no change."""
MAX_MESSAGE = 1000
"""Bytes of an Event message (events.k8s.io allows 1 KiB)."""


def handle_hash(volume_handle: str) -> str:
    return hashlib.sha256(volume_handle.encode()).hexdigest()[:16]


def report_name(node: str, volume_handle: str) -> str:
    """A DNS subdomain (at most 253 characters), unique per (node, volume)."""
    return f"{node[:200]}-{hashlib.sha256(volume_handle.encode()).hexdigest()[:12]}"


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Ref:
    """A namespaced object an Event can be about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Target:
    """Where a volume's Events go and what its report names, from its PersistentVolume."""

    pv: str = ""
    claim: Ref | None = None
    volume: Ref | None = None
    """The OpenFilesVolume, for volumes the operator made (None when provisioned)."""

    @property
    def subject(self) -> Ref | None:
        """The object conflict and export Events are about: the OpenFilesVolume, else the claim."""
        return self.volume or self.claim


def target_of(pv: Mapping[str, Any] | None) -> Target:
    """Read the claim (``spec.claimRef``) and the OpenFilesVolume (the labels the operator
    puts on its PVs: openfiles.io/volume-{namespace,name,uid}) from a PV."""
    if pv is None:
        return Target()
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    ref = spec.get("claimRef") or {}
    claim = None
    if ref.get("name") and ref.get("namespace"):
        claim = Ref("v1", "PersistentVolumeClaim", ref["namespace"], ref["name"],
                    ref.get("uid", ""))
    labels = meta.get("labels") or {}
    annotation = (meta.get("annotations") or {}).get("openfiles.io/volume", "")
    volume = None
    if labels.get("openfiles.io/volume-uid") and "/" in annotation:
        namespace, name = annotation.split("/", 1)
        volume = Ref("openfiles.io/v1alpha1", "OpenFilesVolume", namespace, name,
                     labels["openfiles.io/volume-uid"])
    return Target(pv=meta.get("name", ""), claim=claim, volume=volume)


def _identity(node: str, volume_handle: str, target: Target) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "volumeHandle": volume_handle}
    if target.pv:
        spec["pvName"] = target.pv
    for key, ref in (("claim", target.claim), ("volume", target.volume)):
        if ref is not None:
            spec[key] = {"namespace": ref.namespace, "name": ref.name}
    return spec


_KEPT_ONLY = {"cacheKept", "stranded", "strandedSince", "strandedError"}


def report_spec(node: str, volume_handle: str, target: Target, status: Mapping[str, Any] | None,
                previous: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """The report's spec. ``status`` None means the engine does not answer: the counts
    are then the last known ones (``previous``), with ``engineAlive`` false."""
    prev = dict(previous or {})
    spec = _identity(node, volume_handle, target)
    if status is None:
        kept = {k: v for k, v in prev.items()
                if k not in spec and k != "reportTime" and k not in _KEPT_ONLY}
        return {**kept, **spec, "engineAlive": False, "conflictsSinceLastReport": 0}
    conflicts = int(status.get("conflicts") or 0)
    spec.update({
        "engineAlive": True,
        "dirtyFiles": int(status.get("dirty_files") or 0),
        "dirtyBytes": int(status.get("dirty_bytes") or 0),
        "journalEntries": int(status.get("journal_entries") or 0),
        "conflicts": conflicts,
        "conflictsSinceLastReport": max(conflicts - int(prev.get("conflicts", conflicts)), 0),
        "cacheBytes": int(status.get("cache_bytes") or 0),
        "lostFoundFiles": int(status.get("lostfound_files") or 0),
        "lostFoundBytes": int(status.get("lostfound_bytes") or 0),
    })
    delay = (status.get("policy") or {}).get("export_delay")
    if delay is not None:
        spec["exportDelaySeconds"] = int(delay)
    age = float(status.get("oldest_dirty_seconds") or 0)
    if spec["dirtyFiles"]:
        since = now - age
        old = prev.get("dirtySince")
        if old and abs(_unix(old) - since) < STABLE_SECONDS:
            spec["dirtySince"] = old
        else:
            spec["dirtySince"] = rfc3339(since)
    recent = status.get("recent_conflicts") or []
    if recent:
        spec["lastConflictTime"] = rfc3339(float(recent[-1]["time"]))
    elif prev.get("lastConflictTime"):
        spec["lastConflictTime"] = prev["lastConflictTime"]
    events = status.get("events")
    if isinstance(events, dict):
        spec["eventsConnected"] = bool(events.get("connected"))
        if not spec["eventsConnected"] and events.get("error"):
            spec["eventsError"] = clean(str(events["error"]))
    error = status.get("last_export_error")
    if error:
        spec["lastExportError"] = clean(str(error))
        spec["lastExportErrorTime"] = rfc3339(float(status.get("last_export_error_time") or now))
    return spec


def holds_dirty(marker: Mapping[str, Any]) -> bool:
    """Whether a kept cache holds dirty data (or may: unknown counts)."""
    return not (marker.get("dirty_files") == 0 and marker.get("pending_exports") == 0)


def kept_spec(node: str, volume_handle: str, target: Target, marker: Mapping[str, Any],
              previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The report of a volume no longer staged here whose cache this node keeps, from
    the mounter's marker: ``cacheKept`` and ``engineAlive`` false; ``stranded`` when
    dirty data waits (with ``strandedSince``, ``strandedError`` and the dirty counts;
    unknown counts keep the last known ones); the lost+found counts when known. The
    conflict counts of ``previous`` are kept (the engine's are durable)."""
    prev = dict(previous or {})
    spec = _identity(node, volume_handle, target)
    spec.update({"engineAlive": False, "cacheKept": True, "stranded": holds_dirty(marker),
                 "conflictsSinceLastReport": 0})
    for key in ("conflicts", "lastConflictTime", "exportDelaySeconds"):
        if key in prev:
            spec[key] = prev[key]
    counts = (("dirtyFiles", "dirty_files"), ("dirtyBytes", "dirty_bytes"),
              ("journalEntries", None), ("lostFoundFiles", "lostfound_files"),
              ("lostFoundBytes", "lostfound_bytes"))
    for key, field in counts:
        value = marker.get(field) if field else None
        if value is not None:
            spec[key] = int(value)
        elif key in prev and (spec["stranded"] or key.startswith("lostFound")):
            spec[key] = prev[key]
    if not spec["stranded"]:
        spec["dirtyFiles"] = spec["dirtyBytes"] = spec["journalEntries"] = 0
    else:
        spec["strandedSince"] = rfc3339(float(marker.get("since") or 0))
        if marker.get("error"):
            spec["strandedError"] = clean(str(marker["error"]))
    return spec


def kept_event(old: Mapping[str, Any] | None, new: Mapping[str, Any], node: str
               ) -> tuple[str, str] | None:
    """The Event (reason, message) to post when report ``new`` says something ``old``
    did not about a kept cache: dirty data stranded here (``DataStranded``, once per
    ``strandedSince``), or a cache kept for its lost+found only (``LostFoundKept``)."""
    if not new.get("cacheKept"):
        return None
    if new.get("stranded"):
        if old and old.get("stranded") and old.get("strandedSince") == new.get("strandedSince"):
            return None
        return "DataStranded", clean(
            f"node {node} holds {new.get('dirtyBytes', 'an unknown number of')} dirty bytes "
            f"in {new.get('dirtyFiles', 'unknown')} files of this volume in its cache: its "
            f"engine died and the unstage could not export them "
            f"({new.get('strandedError', 'no reason given')}). They are exported when the "
            f"volume is staged on node {node} again.")
    if old and old.get("cacheKept"):
        return None
    return "LostFoundKept", clean(
        f"node {node} keeps this volume's cache after the unstage: its lost+found holds "
        f"{new.get('lostFoundFiles', 'an unknown number of')} files "
        f"({new.get('lostFoundBytes', 'unknown')} bytes), local versions of conflicted "
        f"files found nowhere else. They are visible again in the volume's "
        f".openfiles-lost+found-* directory when it is staged on node {node} again.")


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says something ``old`` did not (the report time aside)."""
    if old is None:
        return True
    strip = {"reportTime", "conflictsSinceLastReport"}
    return ({k: v for k, v in old.items() if k not in strip}
            != {k: v for k, v in new.items() if k not in strip})


def clean(text: str) -> str:
    """One short paragraph with every registered credential masked (logsetup.redact)."""
    text = " ".join(redact(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def conflict_message(node: str, conflict: Mapping[str, Any]) -> str:
    return clean(
        f"{conflict['path']!r} changed in the bucket while node {node} had local changes: "
        f"the bucket's version is at the path, the local version is kept at "
        f"{conflict['lost_path']} in the volume (its original path in the xattr "
        "user.openfiles.original_path). Restore it by copying it back.")


def export_error_message(node: str, error: str) -> str:
    return clean(f"exports from node {node} to the bucket fail, retrying: {error}")


def event_body(subject: Ref, node: str, reason: str, message: str, warning: bool,
               now: float) -> dict[str, Any]:
    """A core/v1 Event about ``subject``, reported by this node's plugin."""
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{subject.name[:200]}.{secrets.token_hex(8)}",
                     "namespace": subject.namespace},
        "involvedObject": {"apiVersion": subject.api_version, "kind": subject.kind,
                           "namespace": subject.namespace, "name": subject.name,
                           "uid": subject.uid},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": "openfiles-csi-node", "host": node},
        "reportingComponent": "csi.openfiles.io/node",
        "reportingInstance": node,
    }


def _unix(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
